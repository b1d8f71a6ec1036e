// SPDX-License-Identifier: Apache-2.0
// A small JVM program using the SDK: connects (over wss:// when the URL says so), prints the
// live "home" list, tracks a click on its first item and waits for the acknowledgement and the
// re-ranked list, then closes. Run it with
//   mvn -q -f client-sdk/kotlin test-compile exec:java -Dexec.args="wss://host:port/ws [ca.pem]"
// `ca.pem` is optional: without it the platform's trust store decides (as in production).
package io.rankcast.client.examples

import io.rankcast.client.ConnectionState
import io.rankcast.client.Encoding
import io.rankcast.client.Event
import io.rankcast.client.EventKind
import io.rankcast.client.LogLevel
import io.rankcast.client.MemoryEventStore
import io.rankcast.client.RankcastClient
import io.rankcast.client.RankcastOptions
import io.rankcast.client.SubscribeOptions
import java.io.File
import java.security.KeyStore
import java.security.cert.CertificateFactory
import javax.net.ssl.SSLContext
import javax.net.ssl.TrustManagerFactory
import javax.net.ssl.X509TrustManager
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import okhttp3.OkHttpClient

fun main(args: Array<String>) = runBlocking {
    val url = args.getOrNull(0) ?: "ws://127.0.0.1:8080/ws"
    val client = RankcastClient(
        RankcastOptions(
            url = url,
            encoding = Encoding.MSGPACK,
            okHttpClient = args.getOrNull(1)?.let { trusting(File(it)) },
            eventStore = MemoryEventStore(),
            logger = { level, message, _ -> if (level >= LogLevel.INFO) System.err.println("[rankcast] $level $message") },
        ),
    )
    try {
        withTimeout(10_000) { client.state.first { it == ConnectionState.OPEN } }
        println("connected as ${client.user} to node ${client.welcome?.node}")
        val home = client.subscribe("home", SubscribeOptions(k = 5))
        val list = withTimeout(10_000) { home.first() }
        list.items.forEach { println("  ${it.item}  ${it.name ?: ""}  — ${it.why}") }
        val id = withTimeout(10_000) { client.track(Event(EventKind.CLICK, item = list.items.first().item, surface = "home")) }
        println("click $id acknowledged")
        val next = withTimeout(10_000) { home.first() }
        println("home list version ${next.version}")
    } finally {
        client.closeAndJoin()
    }
}

/** An OkHttpClient that trusts the CA certificates of a PEM file (a private CA, a test server). */
private fun trusting(pem: File): OkHttpClient {
    val ks = KeyStore.getInstance(KeyStore.getDefaultType()).apply { load(null, null) }
    pem.inputStream().use { input ->
        CertificateFactory.getInstance("X.509").generateCertificates(input).forEachIndexed { i, c -> ks.setCertificateEntry("ca$i", c) }
    }
    val tm = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm()).apply { init(ks) }
        .trustManagers.filterIsInstance<X509TrustManager>().first()
    val ctx = SSLContext.getInstance("TLS").apply { init(null, arrayOf(tm), null) }
    return OkHttpClient.Builder().sslSocketFactory(ctx.socketFactory, tm).build()
}
