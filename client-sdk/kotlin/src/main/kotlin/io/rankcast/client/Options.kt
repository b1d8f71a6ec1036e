// SPDX-License-Identifier: Apache-2.0
// Settings of a client, the token provider and the logging hook.
package io.rankcast.client

import java.io.File
import java.security.MessageDigest
import java.util.TimeZone
import okhttp3.CertificatePinner
import okhttp3.OkHttpClient

/** Why the token provider is asked. */
enum class TokenReason {
    /** The first connection attempt. */
    INITIAL,

    /** A later attempt (after a lost connection, a drain, reconnectNow()). */
    RECONNECT,

    /** The last connection ended with 4010 or 4011 (or HTTP 401): do not hand back a cached token. */
    UNAUTHORIZED,

    /** The current token expires soon: a fresh one is sent on the live session with `auth`. */
    REFRESH,
}

data class TokenRequest(val reason: TokenReason, val attempt: Int)

/**
 * Gives the token (a JWT whose `sub` is the user) for a connection attempt or a refresh. Null
 * connects without one (an anonymous server). A throw counts as a failed attempt.
 */
fun interface TokenProvider {
    suspend fun token(request: TokenRequest): String?
}

enum class LogLevel { DEBUG, INFO, WARN, ERROR }

/** The logging hook: plug in android.util.Log, SLF4J, Timber... */
fun interface RankcastLogger {
    fun log(level: LogLevel, message: String, error: Throwable?)
}

/** Full-jitter exponential backoff: the n-th delay in a row is uniform in [0, min(capMs, baseMs * 2^n)). */
data class Backoff(val baseMs: Long, val capMs: Long) {
    fun delayMs(attempt: Int, random: kotlin.random.Random = kotlin.random.Random): Long {
        val ceiling = minOf(capMs, baseMs shl attempt.coerceIn(0, 30)).coerceAtLeast(1)
        return random.nextLong(ceiling)
    }
}

/**
 * Settings of a [RankcastClient]. Only [url] is required.
 *
 * @property url ws:// or wss:// URL of the server (http(s) is mapped to ws(s); an empty path is /ws).
 * @property okHttpClient a client to build on (its dispatcher, connection pool, proxy and trust
 *   settings are shared); by default the SDK makes its own and shuts it down on close. TLS uses
 *   the platform's trust store unless this client says otherwise.
 * @property certificatePinner pins for wss:// (OkHttp's CertificatePinner), on top of normal
 *   certificate validation.
 * @property eventStore where unacknowledged events are kept; default a [FileEventStore] in the
 *   temporary directory named after url and user ([defaultStoreFile]). On Android pass one under
 *   `context.filesDir`.
 * @property refreshAheadMs the token provider is asked for a fresh token this long before the
 *   current one's `exp` (or at half its remaining life when that is shorter), and the token is
 *   sent with `auth` on the live session.
 */
data class RankcastOptions(
    val url: String,
    val encoding: Encoding = Encoding.MSGPACK,
    val tokenProvider: TokenProvider? = null,
    val user: String? = null,
    val device: Device? = null,
    val locale: String? = null,
    val tzOffsetMin: Int? = TimeZone.getDefault().getOffset(System.currentTimeMillis()) / 60_000,
    val consent: Boolean? = null,
    val okHttpClient: OkHttpClient? = null,
    val certificatePinner: CertificatePinner? = null,
    val reconnect: Backoff = Backoff(500, 30_000),
    val retry: Backoff = Backoff(250, 30_000),
    val batchWindowMs: Long = 15,
    val ackTimeoutMs: Long = 10_000,
    val connectTimeoutMs: Long = 10_000,
    val pingIntervalMs: Long = 25_000,
    val drainJitterMs: Long = 1_000,
    val maxQueue: Int = 1_000,
    val timestamps: Boolean = true,
    val refreshAheadMs: Long = 60_000,
    val eventStore: EventStore? = null,
    val logger: RankcastLogger? = null,
) {
    /** The default store's file for these settings. */
    fun defaultStoreFile(): File {
        val digest = MessageDigest.getInstance("SHA-256").digest("$url\u0000${user ?: ""}".toByteArray())
        val name = digest.take(8).joinToString("") { "%02x".format(it) }
        return File(System.getProperty("java.io.tmpdir"), "rankcast-$name.queue")
    }
}
