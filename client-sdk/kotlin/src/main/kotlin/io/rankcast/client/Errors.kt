// SPDX-License-Identifier: Apache-2.0
// Typed errors of the SDK: ServerException carries a code of PROTOCOL.md section 3 exactly as
// the server sent it (or as a close code implied it); ClientException names a failure the SDK
// found itself. Both extend RankcastException, so one catch takes either.
package io.rankcast.client

/** What the SDK knows about a server error code: its stable name, fatal, retryable. */
data class ServerErrorInfo(val name: String, val fatal: Boolean, val retryable: Boolean)

/** The error codes of PROTOCOL.md section 3. */
object ServerErrors {
    val table: Map<Int, ServerErrorInfo> = mapOf(
        4000 to ServerErrorInfo("malformed", fatal = false, retryable = false),
        4001 to ServerErrorInfo("unknown_type", fatal = false, retryable = false),
        4002 to ServerErrorInfo("invalid_field", fatal = false, retryable = false),
        4003 to ServerErrorInfo("too_large", fatal = true, retryable = false),
        4004 to ServerErrorInfo("hello_required", fatal = false, retryable = false),
        4005 to ServerErrorInfo("hello_repeated", fatal = false, retryable = false),
        4006 to ServerErrorInfo("unsupported_version", fatal = true, retryable = false),
        4007 to ServerErrorInfo("wrong_frame_kind", fatal = false, retryable = false),
        4008 to ServerErrorInfo("too_many_errors", fatal = true, retryable = false),
        4010 to ServerErrorInfo("unauthorized", fatal = true, retryable = false),
        4011 to ServerErrorInfo("token_expired", fatal = true, retryable = false),
        4012 to ServerErrorInfo("unknown_item", fatal = false, retryable = false),
        4013 to ServerErrorInfo("anonymous_id_refused", fatal = true, retryable = false),
        4020 to ServerErrorInfo("rate_limited", fatal = false, retryable = true),
        4021 to ServerErrorInfo("too_many_subscriptions", fatal = false, retryable = false),
        4022 to ServerErrorInfo("batch_too_large", fatal = false, retryable = false),
        4023 to ServerErrorInfo("idle_timeout", fatal = true, retryable = false),
        4040 to ServerErrorInfo("unknown_surface", fatal = false, retryable = false),
        4050 to ServerErrorInfo("slow_consumer", fatal = true, retryable = false),
        4500 to ServerErrorInfo("internal", fatal = false, retryable = true),
        4503 to ServerErrorInfo("unavailable", fatal = false, retryable = true),
    )

    /** Close codes of PROTOCOL.md section 4 that stand for an error code. */
    val closeCodeErrors: Map<Int, Int> = mapOf(
        1009 to 4003, 4004 to 4004, 4006 to 4006, 4008 to 4008, 4010 to 4010, 4011 to 4011, 4013 to 4013, 4023 to 4023, 4050 to 4050,
    )

    fun isRetryable(code: Int): Boolean = table[code]?.retryable == true
}

/** Base of every error the SDK produces. */
sealed class RankcastException(message: String, cause: Throwable? = null) : Exception(message, cause)

/** An `error` message of the server, or a close (or refused upgrade) that carries one of its codes. */
class ServerException(
    val code: Int,
    val codeName: String,
    val serverMessage: String,
    val eventId: String?,
    val fatal: Boolean,
    /** The type of the client message the error refuses ("ping", "subscribe", …), when the server named it. */
    val about: String? = null,
    /** With [about] "subscribe" or "unsubscribe": that message's surface. */
    val surface: String? = null,
    /** With [about] "ping": the refused ping's t. */
    val t: Double? = null,
) : RankcastException("rankcast server error $code $codeName" + if (serverMessage.isEmpty()) "" else ": $serverMessage") {
    /** Whether an event refused with this code is sent again (the SDK does so itself). */
    val retryable: Boolean get() = ServerErrors.isRetryable(code)

    companion object {
        internal fun of(code: Int, message: String, eventId: String? = null, fatal: Boolean = ServerErrors.table[code]?.fatal ?: false) =
            ServerException(code, ServerErrors.table[code]?.name ?: "unknown", message, eventId, fatal)
    }
}

/** Kinds of failure the SDK detects itself. */
enum class ClientErrorKind {
    /** A bad event, subscription or option; nothing was sent. */
    INVALID_ARGUMENT,

    /** More subscriptions, a longer list or a larger event than welcome.limits allow. */
    LIMIT_EXCEEDED,

    /** The client was closed before the event was acknowledged. */
    CLOSED,

    /** The bounded offline queue dropped this (its oldest) event. */
    QUEUE_OVERFLOW,

    /** flush() did not see every event acknowledged in time. */
    TIMEOUT,

    /** The token provider threw or gave nothing usable. */
    TOKEN,

    /** The persistent queue could not be read or written. */
    STORAGE,

    /** The server sent something this SDK cannot read. */
    PROTOCOL,

    /** The connection failed (network, TLS, handshake, keepalive, no welcome in time). */
    CONNECTION,
}

/** A failure the SDK detected itself. */
class ClientException(val kind: ClientErrorKind, message: String, cause: Throwable? = null) :
    RankcastException(message, cause)
