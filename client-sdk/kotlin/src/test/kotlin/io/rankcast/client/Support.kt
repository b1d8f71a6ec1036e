// SPDX-License-Identifier: Apache-2.0
// Test support: the real rankcast binary as a child process (RANKCAST_BIN, else
// <repo>/build/server/rankcast), a test CA and server certificate made with the openssl CLI,
// an OkHttp client trusting that CA, HS256 tokens, and small waiting helpers.
package io.rankcast.client

import java.io.File
import java.net.ServerSocket
import java.net.Socket
import java.nio.file.Files
import java.security.KeyStore
import java.security.cert.CertificateFactory
import java.security.cert.X509Certificate
import java.util.Base64
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec
import javax.net.ssl.SSLContext
import javax.net.ssl.TrustManagerFactory
import javax.net.ssl.X509TrustManager
import kotlinx.coroutines.delay
import kotlinx.coroutines.withTimeout
import okhttp3.OkHttpClient

object Repo {
    val root: File = File(System.getenv("RANKCAST_REPO") ?: "../..").canonicalFile
    val binary: File = System.getenv("RANKCAST_BIN")?.let { File(it) } ?: File(root, "build/server/rankcast")
    val catalog = File(root, "web-demo/catalog/demo-catalog.jsonl")
    val vectors = File(root, "proto/vectors/vectors.json")

    /** Items of the demo catalog in `category`, in file order. */
    fun items(category: String): List<String> = catalog.readLines().filter { it.contains("\"category\": \"$category\"") }
        .map { Regex("\"id\": \"([^\"]+)\"").find(it)!!.groupValues[1] }

    fun freePort(): Int = ServerSocket(0).use { it.localPort }

    private val users = AtomicInteger()
    fun uniqueUser(prefix: String) = "$prefix-${ProcessHandle.current().pid()}-${users.incrementAndGet()}"
}

/** A rankcast server process on a fixed port; start() again after stop() restarts it there. */
class RankcastProcess(val port: Int = Repo.freePort(), val extraArgs: List<String> = emptyList(), val tls: TestTls? = null) {
    private var proc: Process? = null
    private val log = File.createTempFile("rankcast-kt-", ".log").also { it.deleteOnExit() }
    val wsUrl: String get() = "${if (tls != null) "wss" else "ws"}://127.0.0.1:$port/ws"

    fun start(): RankcastProcess {
        check(Repo.binary.canExecute()) { "rankcast binary not found at ${Repo.binary}: build it first (or set RANKCAST_BIN)" }
        val args = mutableListOf(
            Repo.binary.path, "--port", "$port", "--catalog", Repo.catalog.path, "--node-id", "kt1",
            "--log-level", "warn", "--anonymous", "true", "--anonymous-ids", "chosen",
        )
        if (tls != null) args += listOf("--tls-cert", tls.cert.path, "--tls-key", tls.key.path)
        args += extraArgs
        val pb = ProcessBuilder(args).redirectErrorStream(true).redirectOutput(ProcessBuilder.Redirect.appendTo(log))
        pb.environment().keys.removeIf { it.startsWith("RANKCAST_") }
        proc = pb.start()
        val deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(15)
        while (true) {
            check(proc!!.isAlive) { "rankcast exited during start: ${log.readText()}" }
            try {
                Socket("127.0.0.1", port).close()
                // The port accepts: give the server its first loop turn.
                Thread.sleep(50)
                return this
            } catch (_: Exception) {
            }
            check(System.nanoTime() < deadline) { "rankcast not ready: ${log.readText()}" }
            Thread.sleep(20)
        }
    }

    /** SIGTERM (a drain) or SIGKILL (a crash); waits for the exit. */
    fun stop(kill: Boolean = false) {
        val p = proc ?: return
        if (kill) p.destroyForcibly() else p.destroy()
        if (!p.waitFor(10, TimeUnit.SECONDS)) p.destroyForcibly().waitFor()
        proc = null
    }

    fun output(): String = log.readText()
}

/** A CA and a certificate for 127.0.0.1 / localhost signed by it, made with the openssl CLI. */
class TestTls private constructor(val dir: File) {
    val ca = File(dir, "ca.pem")
    val cert = File(dir, "server.pem")
    val key = File(dir, "server.key")

    val trustManager: X509TrustManager by lazy {
        val cf = CertificateFactory.getInstance("X.509")
        val ks = KeyStore.getInstance(KeyStore.getDefaultType()).apply { load(null, null) }
        ca.inputStream().use { ks.setCertificateEntry("ca", cf.generateCertificate(it)) }
        val tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm()).apply { init(ks) }
        tmf.trustManagers.filterIsInstance<X509TrustManager>().first()
    }

    /** An OkHttpClient that trusts the test CA (and nothing else). */
    fun okHttp(): OkHttpClient {
        val ctx = SSLContext.getInstance("TLS").apply { init(null, arrayOf(trustManager), null) }
        return OkHttpClient.Builder().sslSocketFactory(ctx.socketFactory, trustManager).build()
    }

    /** The server certificate, for pins. */
    fun serverCertificate(): X509Certificate =
        cert.inputStream().use { CertificateFactory.getInstance("X.509").generateCertificate(it) as X509Certificate }

    companion object {
        fun create(): TestTls {
            val dir = Files.createTempDirectory("rankcast-kt-tls").toFile()
            fun run(vararg cmd: String) {
                val p = ProcessBuilder(*cmd).directory(dir).redirectErrorStream(true).start()
                val out = p.inputStream.readBytes().decodeToString()
                check(p.waitFor() == 0) { "${cmd.joinToString(" ")}: $out" }
            }
            run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "2", "-subj", "/CN=rankcast kotlin test CA")
            run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
                "-out", "server.csr", "-subj", "/CN=127.0.0.1")
            File(dir, "server.ext").writeText("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            run("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", "server.pem", "-extfile", "server.ext")
            return TestTls(dir)
        }
    }
}

/** HS256 JWTs for a server started with --jwt-secret. */
object Jwt {
    const val SECRET = "kotlin-sdk-test-secret-of-at-least-32-bytes"

    fun sign(sub: String, ttlS: Long, secret: String = SECRET): String {
        val enc = Base64.getUrlEncoder().withoutPadding()
        val header = enc.encodeToString("""{"alg":"HS256","typ":"JWT"}""".toByteArray())
        val exp = System.currentTimeMillis() / 1000 + ttlS
        val payload = enc.encodeToString("""{"sub":"$sub","exp":$exp}""".toByteArray())
        val mac = Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(secret.toByteArray(), "HmacSHA256")) }
        return "$header.$payload.${enc.encodeToString(mac.doFinal("$header.$payload".toByteArray()))}"
    }
}

suspend fun waitUntil(what: String, timeoutMs: Long = 5000, cond: suspend () -> Boolean) {
    try {
        withTimeout(timeoutMs) {
            while (!cond()) delay(10)
        }
    } catch (e: kotlinx.coroutines.TimeoutCancellationException) {
        throw AssertionError("timed out after $timeoutMs ms waiting for $what")
    }
}

/** Options for tests: fast reconnects, memory queue unless given. */
fun testOptions(url: String, encoding: Encoding, user: String? = null, store: EventStore = MemoryEventStore()) = RankcastOptions(
    url = url, encoding = encoding, user = user, reconnect = Backoff(50, 250), drainJitterMs = 100, eventStore = store,
)

/** Socket file descriptors of this process (Linux). */
fun openSocketFds(): Int = File("/proc/self/fd").listFiles()!!.count {
    try {
        Files.readSymbolicLink(it.toPath()).toString().startsWith("socket:")
    } catch (_: Exception) {
        false
    }
}
