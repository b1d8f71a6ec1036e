// SPDX-License-Identifier: Apache-2.0
// wss:// against the real binary started with --tls-cert/--tls-key (a CA made for the test):
// both encodings end to end, the platform's trust store refusing the test CA, certificate
// pinning (the right pin connects, a wrong one fails), the JVM example program over wss, and
// tokens: Authorization on the upgrade, automatic refresh with `auth` ahead of `exp` on the live
// session, and a refused token answered by asking the provider again (UNAUTHORIZED).
package io.rankcast.client

import java.io.ByteArrayOutputStream
import java.io.PrintStream
import java.util.Collections
import javax.net.ssl.SSLHandshakeException
import javax.net.ssl.SSLPeerUnverifiedException
import kotlinx.coroutines.flow.filterIsInstance
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import okhttp3.CertificatePinner
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.params.ParameterizedTest
import org.junit.jupiter.params.provider.EnumSource

@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class TlsAuthTest {
    private val tls = TestTls.create()
    private val server = RankcastProcess(tls = tls)

    @BeforeAll
    fun start() {
        server.start()
    }

    @AfterAll
    fun stop() = server.stop()

    @ParameterizedTest
    @EnumSource(Encoding::class)
    fun `wss end to end with the CA trusted`(enc: Encoding) = runBlocking<Unit> {
        val client = RankcastClient(testOptions(server.wsUrl, enc, Repo.uniqueUser("wss")).copy(okHttpClient = tls.okHttp()))
        try {
            val list = withTimeout(5000) { client.subscribe("home", SubscribeOptions(k = 3)).first() }
            assertEquals(3, list.items.size)
            val id = client.track(Event(EventKind.CLICK, item = list.items[0].item, surface = "home"))
            assertTrue(id.isNotEmpty())
        } finally {
            client.closeAndJoin()
        }
    }

    private suspend fun firstConnectionError(opts: RankcastOptions): ClientException {
        val client = RankcastClient(opts, connectNow = false)
        try {
            val err = kotlinx.coroutines.CompletableDeferred<ClientException>()
            val job = launchCollector(client) { e -> if (e is ClientException && e.kind == ClientErrorKind.CONNECTION) err.complete(e) }
            client.connect()
            val e = withTimeout(5000) { err.await() }
            assertTrue(client.state.value != ConnectionState.OPEN)
            job.cancel()
            return e
        } finally {
            client.closeAndJoin()
        }
    }

    private fun launchCollector(client: RankcastClient, on: (RankcastException) -> Unit) =
        kotlinx.coroutines.GlobalScope.launch { client.events.filterIsInstance<ClientEvent.Error>().collect { on(it.error) } }

    @Test
    fun `the platform trust store refuses a private CA`() = runBlocking<Unit> {
        val e = firstConnectionError(testOptions(server.wsUrl, Encoding.JSON, Repo.uniqueUser("untrusted")))
        assertTrue(generateSequence<Throwable>(e) { it.cause }.any { it is SSLHandshakeException }, "cause: ${e.cause}")
    }

    @Test
    fun `certificate pinning - the right pin connects, a wrong pin fails`() = runBlocking<Unit> {
        val right = CertificatePinner.pin(tls.serverCertificate())
        val good = RankcastClient(
            testOptions(server.wsUrl, Encoding.MSGPACK, Repo.uniqueUser("pinned")).copy(
                okHttpClient = tls.okHttp(), certificatePinner = CertificatePinner.Builder().add("127.0.0.1", right).build(),
            ),
        )
        try {
            withTimeout(5000) { good.state.first { it == ConnectionState.OPEN } }
        } finally {
            good.closeAndJoin()
        }
        val wrong = CertificatePinner.Builder().add("127.0.0.1", "sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").build()
        val e = firstConnectionError(
            testOptions(server.wsUrl, Encoding.MSGPACK, Repo.uniqueUser("mispinned")).copy(okHttpClient = tls.okHttp(), certificatePinner = wrong),
        )
        assertTrue(generateSequence<Throwable>(e) { it.cause }.any { it is SSLPeerUnverifiedException }, "cause: ${e.cause}")
    }

    @Test
    fun `the JVM example runs over wss`() {
        val out = ByteArrayOutputStream()
        val saved = System.out
        System.setOut(PrintStream(out, true))
        try {
            io.rankcast.client.examples.main(arrayOf(server.wsUrl, tls.ca.path))
        } finally {
            System.setOut(saved)
        }
        val text = out.toString()
        print(text)
        assertTrue(text.contains("connected as anon-"), text)
        assertTrue(Regex("click \\S+ acknowledged").containsMatchIn(text), text)
    }
}

/** Tokens against a server that verifies HS256 JWTs (no anonymous sessions). */
class AuthTest {
    @Test
    fun `tokens - refreshed ahead of exp on the live session, and asked again after a refusal`() = runBlocking<Unit> {
        val node = RankcastProcess(extraArgs = listOf("--anonymous", "false", "--jwt-secret", Jwt.SECRET, "--jwt-leeway-s", "0")).start()
        val user = Repo.uniqueUser("tok")
        val asked = Collections.synchronizedList(mutableListOf<TokenReason>())
        val provider = TokenProvider { req ->
            asked += req.reason
            // The very first token is signed with the wrong key: the upgrade gets 401.
            if (asked.size == 1) Jwt.sign(user, 60, secret = "a-wrong-secret-that-is-also-32-bytes-long") else Jwt.sign(user, 4)
        }
        val client = RankcastClient(testOptions(node.wsUrl, Encoding.MSGPACK).copy(tokenProvider = provider, refreshAheadMs = 60_000))
        try {
            val auths = mutableListOf<AuthInfo>()
            val job = launch { client.events.filterIsInstance<ClientEvent.Auth>().collect { auths += it.auth } }
            withTimeout(5000) { client.state.first { it == ConnectionState.OPEN } }
            assertEquals(listOf(TokenReason.INITIAL, TokenReason.UNAUTHORIZED), asked.take(2), "asked again after the 401")
            assertEquals(user, client.welcome!!.user)
            // Tokens live 4 s; the session must outlive several of them without reconnecting.
            kotlinx.coroutines.delay(7000)
            assertEquals(ConnectionState.OPEN, client.state.value)
            assertEquals(1L, client.stats().welcomes, "one session, refreshed in place")
            assertTrue(auths.size >= 2, "auth_ok received ${auths.size} times")
            assertTrue(asked.count { it == TokenReason.REFRESH } >= 2)
            client.track(Event(EventKind.VIEW, item = Repo.items("kitchen")[0]))
            job.cancel()
        } finally {
            client.closeAndJoin()
            node.stop()
        }
    }
}
