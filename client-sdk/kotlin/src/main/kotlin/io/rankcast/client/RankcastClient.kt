// SPDX-License-Identifier: Apache-2.0
// The client: one WebSocket session with a rankcast server (OkHttp), kept alive across network
// loss, drains and token expiry. Every piece of state is confined to one coroutine dispatcher
// of parallelism 1 (on Dispatchers.IO, so the event store may block briefly): OkHttp's threads
// only post what they saw into a channel read by that dispatcher, in order. No thread of its
// own is started; an OkHttpClient the SDK made itself is shut down on close().
package io.rankcast.client

import java.io.Closeable
import java.util.Base64
import java.util.UUID
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineName
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.ExperimentalCoroutinesApi
import kotlinx.coroutines.Job
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.channels.BufferOverflow
import kotlinx.coroutines.channels.Channel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asSharedFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.emitAll
import kotlinx.coroutines.flow.filterNotNull
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.withTimeoutOrNull
import kotlinx.serialization.json.Json
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.Response
import okhttp3.WebSocket
import okhttp3.WebSocketListener
import okio.ByteString
import okio.ByteString.Companion.toByteString

/** closed -> connecting -> open -> reconnecting -> open ... -> closed. */
enum class ConnectionState { CONNECTING, OPEN, RECONNECTING, CLOSED }

/** Why a connection ended. */
enum class LostReason { CLOSE, ERROR, TIMEOUT, TOKEN, DRAIN, MANUAL }

/** What happens to the connection, for the application (logs, UI, tests). */
sealed class ClientEvent {
    data class Open(val welcome: Welcome) : ClientEvent()
    data class Reconnecting(val attempt: Int, val delayMs: Long, val reason: LostReason, val code: Int?, val error: RankcastException?) : ClientEvent()
    data class Closed(val error: RankcastException?) : ClientEvent()
    data class Error(val error: RankcastException) : ClientEvent()
    data class Push(val push: PushMessage) : ClientEvent()
    data class Drain(val drain: DrainInfo) : ClientEvent()
    data class Auth(val auth: AuthInfo) : ClientEvent()
}

/** Counters for monitoring and leak tests; cheap to read. */
data class ClientStats(
    val state: ConnectionState,
    val queued: Int,
    val inFlight: Int,
    val subscriptions: Int,
    val staleListsDropped: Long,
    val attempts: Long,
    val welcomes: Long,
    val reconnects: Long,
    val openSockets: Int,
    val sentMessages: Long,
    val sentEvents: Long,
    val acked: Long,
    val resent: Long,
    val retried: Long,
)

/**
 * A rankcast client for one user. It connects at once (see [connect]); create it where the
 * user's session lives (an Android ViewModel or Application, a service's per-user object) and
 * [close] it when done. A closed client cannot be used again.
 */
class RankcastClient(options: RankcastOptions, connectNow: Boolean = true) : Closeable {
    private val o = options
    private val httpUrl: String = normalizeUrl(options.url)
    private val ownsHttp = options.okHttpClient == null
    private val http: OkHttpClient = buildHttp(options)

    @OptIn(ExperimentalCoroutinesApi::class)
    private val confined = Dispatchers.IO.limitedParallelism(1)
    private val scope = CoroutineScope(SupervisorJob() + confined + CoroutineName("rankcast"))
    private val inbox = Channel<() -> Unit>(Channel.UNLIMITED)

    private val store: EventStore = options.eventStore ?: FileEventStore(options.defaultStoreFile())
    private val stateFlow = MutableStateFlow(ConnectionState.CLOSED)
    private val eventFlow = MutableSharedFlow<ClientEvent>(extraBufferCapacity = 256, onBufferOverflow = BufferOverflow.DROP_OLDEST)

    /** A connection (or an attempt at one). */
    private inner class Conn(val n: Long) {
        lateinit var ws: WebSocket
        var welcomed = false
        var fatal: ServerException? = null
        val timers = ArrayList<Job>()
    }

    private var conn: Conn? = null
    private var connSeq = 0L
    private var attempt = 0
    private var attemptJob: Job? = null
    private var reconnectJob: Job? = null
    private var refreshJob: Job? = null
    private var drainDeadlineMs: Long? = null
    private var stopped = false
    private var closed = false
    private var started = false
    private var token: String? = null
    private var assignedUser: String? = null

    // The server refused the configured user (4013: not an anonymous id it issued): from then
    // on this client goes by the id the server issues instead.
    private var userRefused = false
    private var lastWelcome: Welcome? = null
    private val authWaiters = ArrayList<CompletableDeferred<AuthInfo>>()
    private var attempts = 0L
    private var welcomes = 0L
    private var reconnects = 0L
    private val liveSockets = AtomicInteger()

    private val delivery = Delivery(
        scope, store, options.maxQueue, options.batchWindowMs, options.ackTimeoutMs, options.retry,
        encode = { Codec.encode(it, o.encoding) },
        send = { f -> sendFrame(f) },
        report = { emitError(it) },
        log = { l, m, e -> log(l, m, e) },
    )
    private val compact = CompactLists()
    private val subs = Subscriptions(
        send = { m ->
            // A surface subscribed again (or dropped) gets its next compact list whole.
            if (m["type"] == "subscribe" || m["type"] == "unsubscribe") compact.forget(m["surface"] as String)
            sendFrame(Codec.encode(m, o.encoding))
        },
        isOpen = { conn?.welcomed == true },
        limits = { lastWelcome?.limits ?: Limits() },
    )

    /** The connection state. */
    val state: StateFlow<ConnectionState> = stateFlow.asStateFlow()

    /** Connection events, errors not tied to a track(), pushes, drains, token refreshes. */
    val events: SharedFlow<ClientEvent> = eventFlow.asSharedFlow()

    /** The last `welcome`, or null before the first. */
    val welcome: Welcome? get() = lastWelcome

    /** The user this client acts for: the option, or the id the server assigned. */
    val user: String? get() = if (userRefused) assignedUser else o.user ?: assignedUser

    init {
        if (o.user != null) Outgoing.checkId(o.user, "user")
        require(o.maxQueue > 0) { "maxQueue must be positive" }
        scope.launch { for (action in inbox) action() }
        post {
            delivery.restore()
            if (connectNow) startConnecting()
        }
    }

    private fun post(action: () -> Unit) {
        inbox.trySend(action)
    }

    // --- connection -----------------------------------------------------------------------------

    /** Starts connecting (the constructor does unless told not to). Idempotent. */
    fun connect() = post { startConnecting() }

    private fun startConnecting() {
        if (started || closed) return
        started = true
        setState(ConnectionState.CONNECTING)
        beginAttempt(TokenReason.INITIAL)
    }

    /**
     * Drops the current connection (or the wait before the next attempt) and connects again at
     * once, without backoff: call it when the network comes back or changes (Android's
     * ConnectivityManager.NetworkCallback.onAvailable), or the app returns to the foreground.
     */
    fun reconnectNow() = post {
        if (closed || !started) return@post
        reconnectJob?.cancel()
        attemptJob?.cancel()
        attempt = 0
        drainDeadlineMs = null
        val c = conn
        if (c != null) {
            // The old path is likely dead after a network change: no close handshake on it.
            dropConnection(c, hard = true)
        }
        reconnects++
        setState(ConnectionState.RECONNECTING)
        eventFlow.tryEmit(ClientEvent.Reconnecting(0, 0, LostReason.MANUAL, null, null))
        beginAttempt(TokenReason.RECONNECT)
    }

    private fun beginAttempt(reason: TokenReason) {
        attemptJob?.cancel()
        attemptJob = scope.launch {
            attempts++
            val fresh = if (o.tokenProvider == null) null else {
                try {
                    withTimeout(o.connectTimeoutMs) { o.tokenProvider.token(TokenRequest(reason, attempt)) }
                } catch (e: kotlinx.coroutines.CancellationException) {
                    if (e is kotlinx.coroutines.TimeoutCancellationException) {
                        failAttempt(ClientException(ClientErrorKind.TOKEN, "the token provider did not answer within ${o.connectTimeoutMs} ms", e))
                        return@launch
                    }
                    throw e
                } catch (e: Exception) {
                    failAttempt(ClientException(ClientErrorKind.TOKEN, "the token provider failed: ${e.message}", e))
                    return@launch
                }
            }
            token = fresh
            open()
        }
    }

    private fun failAttempt(err: RankcastException) {
        emitError(err)
        scheduleReconnect(LostReason.TOKEN, null, err)
    }

    private fun open() {
        val c = Conn(++connSeq)
        conn = c
        val req = Request.Builder().url(httpUrl).header("Sec-WebSocket-Protocol", o.encoding.subprotocol)
        token?.let { req.header("Authorization", "Bearer $it") }
        log(LogLevel.DEBUG, "connecting to $httpUrl (${o.encoding.subprotocol})", null)
        c.ws = http.newWebSocket(req.build(), Listener(c))
        c.timers += scope.launch {
            delay(o.connectTimeoutMs)
            if (conn === c && !c.welcomed) {
                lose(c, LostReason.TIMEOUT, null, ClientException(ClientErrorKind.CONNECTION, "no welcome within ${o.connectTimeoutMs} ms"), hard = true)
            }
        }
    }

    /** OkHttp's callbacks, on its threads: posted to the confined dispatcher in order. */
    private inner class Listener(val c: Conn) : WebSocketListener() {
        private val counted = java.util.concurrent.atomic.AtomicBoolean()

        /** The socket is gone (closed or failed): counted down once, if it was counted up. */
        private fun gone() {
            if (counted.compareAndSet(true, false)) liveSockets.decrementAndGet()
        }

        override fun onOpen(webSocket: WebSocket, response: Response) {
            if (counted.compareAndSet(false, true)) liveSockets.incrementAndGet()
            val chosen = response.header("Sec-WebSocket-Protocol")
            post { onOpened(c, chosen) }
        }

        override fun onMessage(webSocket: WebSocket, text: String) = post { onFrame(c, Frame.Text(text)) }

        override fun onMessage(webSocket: WebSocket, bytes: ByteString) {
            val copy = bytes.toByteArray()
            post { onFrame(c, Frame.Binary(copy)) }
        }

        override fun onClosing(webSocket: WebSocket, code: Int, reason: String) {
            webSocket.close(1000, null) // completes the close handshake
            post { onClosedByServer(c, code, reason) }
        }

        override fun onClosed(webSocket: WebSocket, code: Int, reason: String) {
            gone()
            post { onClosedByServer(c, code, reason) }
        }

        override fun onFailure(webSocket: WebSocket, t: Throwable, response: Response?) {
            gone()
            val status = response?.code
            response?.close()
            post { onFailed(c, t, status) }
        }
    }

    private fun onOpened(c: Conn, chosen: String?) {
        if (conn !== c) return
        if (chosen != null && chosen != o.encoding.subprotocol) {
            lose(c, LostReason.ERROR, null, ClientException(ClientErrorKind.PROTOCOL, "the server chose subprotocol $chosen"), hard = true)
            return
        }
        val hello = try {
            // The id the server issued is presented again on every reconnect: the session (and
            // de-duplication of re-sent events) continues.
            Outgoing.hello(null, user, o.device, o.locale, o.tzOffsetMin, o.consent)
        } catch (e: ClientException) {
            lose(c, LostReason.ERROR, null, e, hard = true)
            return
        }
        c.ws.send(Codec.encode(hello, o.encoding))
    }

    private fun WebSocket.send(f: Frame): Boolean = when (f) {
        is Frame.Text -> send(f.text)
        is Frame.Binary -> send(f.bytes.toByteString())
    }

    private fun sendFrame(f: Frame): Boolean {
        val c = conn ?: return false
        return c.ws.send(f)
    }

    private fun onFailed(c: Conn, t: Throwable, status: Int?) {
        if (conn !== c) return
        val err: RankcastException = when (status) {
            401 -> ServerException.of(4010, "the upgrade was refused with HTTP 401", fatal = true)
            null -> c.fatal ?: ClientException(ClientErrorKind.CONNECTION, "connection failed: ${t.message ?: t.javaClass.simpleName}", t)
            else -> ClientException(ClientErrorKind.CONNECTION, "the upgrade was refused with HTTP $status", t)
        }
        if (status == null && c.fatal == null) emitError(err)
        lose(c, LostReason.ERROR, null, err, hard = true)
    }

    private fun onClosedByServer(c: Conn, code: Int, reason: String) {
        if (conn !== c) return
        val err = c.fatal ?: ServerErrors.closeCodeErrors[code]?.let { ServerException.of(it, "connection closed with code $code $reason".trim(), fatal = true) }
        lose(c, LostReason.CLOSE, code, err, hard = false)
    }

    /** Ends the connection `c` and plans what follows, unless stopped or the failure is final. */
    private fun lose(c: Conn, reason: LostReason, code: Int?, error: RankcastException?, hard: Boolean, immediate: Boolean = false) {
        if (conn !== c) return
        dropConnection(c, hard)
        if (stopped) return
        if (error is ServerException && (error.code == 4006 || (error.code == 4010 && o.tokenProvider == null))) {
            // Trying again cannot help: the protocol version is refused, or the only token is.
            stopped = true
            delivery.rejectWaiters(error)
            setState(ConnectionState.CLOSED)
            eventFlow.tryEmit(ClientEvent.Closed(error))
            return
        }
        if (error is ServerException && error.code == 4013) {
            // Not an anonymous id the server issued (made up, or signed by a key it no longer
            // holds): forget it and come back at once without one, to be issued a fresh id.
            assignedUser = null
            userRefused = true
            scheduleReconnect(reason, code, error, immediate = true)
            return
        }
        scheduleReconnect(reason, code, error, immediate)
    }

    /** Closes the socket and clears everything that lived with the connection. */
    private fun dropConnection(c: Conn, hard: Boolean) {
        conn = null
        if (hard) c.ws.cancel() else c.ws.close(1000, null)
        for (j in c.timers) j.cancel()
        refreshJob?.cancel()
        for (w in authWaiters) w.completeExceptionally(c.fatal ?: ClientException(ClientErrorKind.CONNECTION, "the connection closed before the token was accepted"))
        authWaiters.clear()
        delivery.stop()
    }

    private fun scheduleReconnect(reason: LostReason, code: Int?, error: RankcastException?, immediate: Boolean = false) {
        val deadline = drainDeadlineMs
        val delayMs = when {
            immediate -> 0L
            deadline != null -> (deadline - nowMs()).coerceAtLeast(0)
            else -> o.reconnect.delayMs(attempt)
        }
        drainDeadlineMs = null
        attempt++
        reconnects++
        setState(ConnectionState.RECONNECTING)
        log(LogLevel.INFO, "reconnecting in $delayMs ms (attempt $attempt, $reason${code?.let { ", code $it" } ?: ""})", error)
        eventFlow.tryEmit(ClientEvent.Reconnecting(attempt, delayMs, reason, code, error))
        // After 4010 or 4011 the token provider is told, so it fetches a fresh token.
        val why = if (error is ServerException && (error.code == 4010 || error.code == 4011)) TokenReason.UNAUTHORIZED else TokenReason.RECONNECT
        reconnectJob?.cancel()
        reconnectJob = scope.launch {
            delay(delayMs)
            beginAttempt(why)
        }
    }

    private fun setState(s: ConnectionState) {
        stateFlow.value = s
    }

    // --- server messages ------------------------------------------------------------------------

    private fun onFrame(c: Conn, frame: Frame) {
        if (conn !== c) return
        val msg = try {
            Reader.read(Codec.decode(frame, o.encoding))
        } catch (e: ClientException) {
            emitError(e)
            // Before welcome a connection that speaks garbage is no use; after, one bad message
            // is reported and skipped.
            if (!c.welcomed) lose(c, LostReason.ERROR, null, e, hard = true)
            return
        } ?: return // a message type of a newer protocol revision
        when (msg) {
            is Incoming.WelcomeMsg -> onWelcome(c, msg.welcome)
            is Incoming.Error -> onServerError(c, msg)
            is Incoming.Pong -> {}
            else -> if (c.welcomed) {
                when (msg) {
                    is Incoming.Ack -> delivery.onAck(msg.ids)
                    is Incoming.Recs -> subs.deliver(msg.list)
                    is Incoming.RecsDelta -> onRecsDelta(msg.delta)
                    is Incoming.Push -> eventFlow.tryEmit(ClientEvent.Push(msg.push))
                    is Incoming.Drain -> onDrain(c, msg.info)
                    is Incoming.AuthOk -> onAuthOk(msg.info)
                    else -> {}
                }
            }
        }
    }

    /** A compact list: applied to the list held, delivered whole; one that does not apply is
     * reported and its surface subscribed again (the server answers with the whole list). */
    private fun onRecsDelta(d: Delta) {
        if (!subs.holds(d.surface)) return // unsubscribed while it travelled
        val list = try {
            compact.apply(d)
        } catch (e: ClientException) {
            emitError(e)
            subs.resubscribe(d.surface)
            return
        }
        if (list != null) subs.deliver(list)
    }

    private fun onWelcome(c: Conn, w: Welcome) {
        if (c.welcomed) return
        c.welcomed = true
        for (j in c.timers) j.cancel()
        c.timers.clear()
        attempt = 0
        welcomes++
        lastWelcome = w
        if (o.user == null || userRefused) assignedUser = w.user
        compact.reset()
        subs.resubscribeAll()
        delivery.start(w.limits)
        planTokenRefresh(token?.let { jwtExpiryMs(it) })
        setState(ConnectionState.OPEN)
        log(LogLevel.INFO, "open: user ${w.user}, node ${w.node}, session ${w.session}", null)
        eventFlow.tryEmit(ClientEvent.Open(w))
    }

    private fun onServerError(c: Conn, e: Incoming.Error) {
        val err = ServerException(e.code, e.name.ifEmpty { ServerErrors.table[e.code]?.name ?: "unknown" }, e.message, e.id, e.fatal, e.about, e.surface, e.t)
        if (e.fatal) c.fatal = err // the close that follows reports it
        // Every server error is reported, also those about a queued event (whose track() fails
        // or whose retry is planned here): a fire-and-forget send() would otherwise lose them.
        if (c.welcomed) delivery.onError(e)
        emitError(err)
        // An error before welcome that does not close the connection still means no welcome.
        if (!c.welcomed && !e.fatal) lose(c, LostReason.ERROR, null, err, hard = true)
    }

    private fun onDrain(c: Conn, d: DrainInfo) {
        val delayMs = d.reconnectAfterMs + if (o.drainJitterMs > 0) kotlin.random.Random.nextLong(o.drainJitterMs) else 0
        drainDeadlineMs = nowMs() + delayMs
        log(LogLevel.INFO, "drain (${d.reason}): reconnecting in $delayMs ms", null)
        eventFlow.tryEmit(ClientEvent.Drain(d))
        // The server closes with 1001 shortly; should it not, leave at the deadline anyway.
        c.timers += scope.launch {
            delay(delayMs)
            lose(c, LostReason.DRAIN, null, null, hard = false, immediate = true)
        }
    }

    // --- tokens ---------------------------------------------------------------------------------

    /** Plans asking for a fresh token ahead of `exp` (ms since the epoch), when there is a provider. */
    private fun planTokenRefresh(expMs: Long?) {
        refreshJob?.cancel()
        if (o.tokenProvider == null || expMs == null) return
        val left = expMs - System.currentTimeMillis()
        val inMs = if (left > 2 * o.refreshAheadMs) left - o.refreshAheadMs else (left / 2).coerceAtLeast(1000)
        refreshJob = scope.launch {
            delay(inMs)
            try {
                refreshToken()
            } catch (e: RankcastException) {
                log(LogLevel.WARN, "token refresh failed: ${e.message}", e)
                // The server ends the session at expiry with 4011; the reconnect asks again.
            }
        }
    }

    /**
     * Sends a fresh token (same subject, later expiry) on the live session, so it outlives its
     * token without reconnecting; without [fresh] the token provider is asked (REFRESH). The
     * client does this by itself ahead of each token's `exp`. A refused token ends the
     * connection (4010) and throws.
     */
    suspend fun refreshToken(fresh: String? = null): AuthInfo {
        val t = fresh ?: o.tokenProvider?.token(TokenRequest(TokenReason.REFRESH, 0))
        if (t.isNullOrEmpty()) throw ClientException(ClientErrorKind.TOKEN, "refreshToken needs a token or a tokenProvider that gives one")
        val msg = Outgoing.auth(t)
        val waiter = withContext(confined) {
            val c = conn
            if (c == null || !c.welcomed) throw ClientException(ClientErrorKind.CONNECTION, "no open session to refresh")
            token = t
            CompletableDeferred<AuthInfo>().also {
                authWaiters += it
                c.ws.send(Codec.encode(msg, o.encoding))
            }
        }
        return waiter.await()
    }

    private fun onAuthOk(info: AuthInfo) {
        for (w in authWaiters) w.complete(info)
        authWaiters.clear()
        eventFlow.tryEmit(ClientEvent.Auth(info))
        planTokenRefresh(info.expMs)
    }

    // --- lists ----------------------------------------------------------------------------------

    /**
     * The live list of [surface]: the current list as soon as the server answers, then every
     * newer one, across reconnects. Newest wins: a slow collector sees the latest list, never a
     * backlog, and a list older (by `version`) than the one delivered is dropped. The surface is
     * subscribed while at least one collector runs. Invalid options throw here, at once.
     */
    fun subscribe(surface: String, options: SubscribeOptions = SubscribeOptions()): Flow<RecsList> {
        val message = Outgoing.subscribe(surface, options)
        return flow {
            val s = withContext(confined) {
                val maxK = lastWelcome?.limits?.maxK ?: 100
                if (options.k != null && options.k > maxK) {
                    throw ClientException(ClientErrorKind.LIMIT_EXCEEDED, "k ${options.k} is above the server's max_k $maxK")
                }
                subs.add(surface, message)
            }
            try {
                emitAll(s.state.filterNotNull())
            } finally {
                withContext(NonCancellable + confined) { subs.remove(s) }
            }
        }
    }

    /** The newest list delivered for [surface], or null. */
    suspend fun latest(surface: String): RecsList? = withContext(confined) { subs.latest(surface) }

    // --- events ---------------------------------------------------------------------------------

    /**
     * Queues [event] and suspends until the server acknowledged it (returns its id). While
     * disconnected it waits in the queue. Throws ServerException on a final refusal (e.g. 4012
     * unknown_item), ClientException(INVALID_ARGUMENT) for an event the protocol would refuse,
     * QUEUE_OVERFLOW when the bounded queue dropped it, CLOSED when the client closed first.
     * Cancelling the caller does not withdraw the event.
     */
    suspend fun track(event: Event): String {
        val (fields, waiter) = enqueue(event)
        waiter.await()
        return fields["id"] as String
    }

    /** Queues [event] without waiting for its ack; returns its id. Failures go to [events]. */
    fun send(event: Event): String {
        val fields = checkedFields(event)
        val waiter = CompletableDeferred<String>()
        post { enqueueFields(fields, waiter) }
        return fields["id"] as String
    }

    private suspend fun enqueue(event: Event): Pair<Map<String, Any?>, CompletableDeferred<String>> {
        val fields = checkedFields(event)
        val waiter = CompletableDeferred<String>()
        withContext(confined) { enqueueFields(fields, waiter) }
        return fields to waiter
    }

    private fun checkedFields(event: Event): Map<String, Any?> {
        val filled = event.copy(
            id = event.id ?: UUID.randomUUID().toString(),
            tsMs = event.tsMs ?: if (o.timestamps) System.currentTimeMillis() else null,
        )
        return Outgoing.eventFields(filled)
    }

    private fun enqueueFields(fields: Map<String, Any?>, waiter: CompletableDeferred<String>) {
        if (stopped) {
            waiter.completeExceptionally(ClientException(ClientErrorKind.CLOSED, "the client is closed"))
            return
        }
        delivery.enqueue(fields, waiter)
    }

    /** Sends what waits now and suspends until every queued event is acknowledged (or [timeoutMs]). */
    suspend fun flush(timeoutMs: Long? = null) {
        val idle = withContext(confined) { delivery.whenIdle() }
        if (timeoutMs == null) {
            idle.await()
        } else {
            withTimeoutOrNull(timeoutMs) { idle.await() }
                ?: throw ClientException(ClientErrorKind.TIMEOUT, "events not acknowledged within $timeoutMs ms")
        }
    }

    // --- lifecycle ------------------------------------------------------------------------------

    /**
     * Closes for good: a normal close (1000) to the server, waiting at most [timeoutMs] for it;
     * pending track() calls fail with CLOSED (their events stay in the store and go out from
     * the next client that opens it). Stops the SDK's own OkHttp threads.
     */
    suspend fun closeAndJoin(timeoutMs: Long = 1000) {
        val c = withContext(confined) { stopNow() }
        if (c != null) {
            withTimeoutOrNull(timeoutMs) {
                while (liveSockets.get() > 0) delay(10)
            }
            c.ws.cancel()
        }
        release()
    }

    /** Like [closeAndJoin] without waiting: the close handshake completes in the background. */
    override fun close() {
        post {
            val c = stopNow()
            scope.launch(NonCancellable) {
                if (c != null) {
                    withTimeoutOrNull(1000) { while (liveSockets.get() > 0) delay(10) }
                    c.ws.cancel()
                }
                release()
            }
        }
    }

    private fun stopNow(): Conn? {
        if (closed) return null
        closed = true
        stopped = true
        attemptJob?.cancel()
        reconnectJob?.cancel()
        refreshJob?.cancel()
        val c = conn
        if (c != null) dropConnection(c, hard = false)
        delivery.stop()
        delivery.rejectWaiters(ClientException(ClientErrorKind.CLOSED, "the client is closed"))
        setState(ConnectionState.CLOSED)
        eventFlow.tryEmit(ClientEvent.Closed(null))
        return c
    }

    private fun release() {
        scope.launch(NonCancellable) {
            try {
                store.close()
            } catch (_: Exception) {
            }
            inbox.close()
            scope.cancel()
        }
        if (ownsHttp) {
            http.dispatcher.executorService.shutdown()
            http.connectionPool.evictAll()
        }
    }

    /** Counters: state, queue, subscriptions, attempts, reconnects, open sockets... */
    suspend fun stats(): ClientStats = withContext(confined) {
        ClientStats(
            state = stateFlow.value, queued = delivery.size, inFlight = delivery.inFlight, subscriptions = subs.count,
            staleListsDropped = subs.staleDropped, attempts = attempts, welcomes = welcomes, reconnects = reconnects,
            openSockets = liveSockets.get(), sentMessages = delivery.counters.sentMessages, sentEvents = delivery.counters.sentEvents,
            acked = delivery.counters.acked, resent = delivery.counters.resent, retried = delivery.counters.retried,
        )
    }

    // --- helpers --------------------------------------------------------------------------------

    private fun emitError(e: RankcastException) {
        log(LogLevel.WARN, e.message ?: "error", e)
        eventFlow.tryEmit(ClientEvent.Error(e))
    }

    private fun log(level: LogLevel, message: String, error: Throwable?) {
        val logger = o.logger ?: return
        try {
            logger.log(level, message, error)
        } catch (_: Exception) {
            // A logger that throws must not disturb the client.
        }
    }

    private fun nowMs() = System.nanoTime() / 1_000_000

    companion object {
        /** ws(s):// and http(s):// both work; an empty path becomes /ws. OkHttp takes ws(s) URLs as they are. */
        internal fun normalizeUrl(url: String): String {
            val m = Regex("^(wss?|https?)://([^/?#]+)(.*)$").find(url)
                ?: throw ClientException(ClientErrorKind.INVALID_ARGUMENT, "url must be ws://, wss://, http:// or https:// (got $url)")
            val scheme = when (m.groupValues[1]) {
                "http" -> "ws"
                "https" -> "wss"
                else -> m.groupValues[1]
            }
            val rest = m.groupValues[3].ifEmpty { "/ws" }
            return "$scheme://${m.groupValues[2]}$rest"
        }

        private fun buildHttp(o: RankcastOptions): OkHttpClient {
            val b = (o.okHttpClient ?: OkHttpClient()).newBuilder()
                .connectTimeout(o.connectTimeoutMs, TimeUnit.MILLISECONDS)
                .pingInterval(o.pingIntervalMs, TimeUnit.MILLISECONDS)
            o.certificatePinner?.let { b.certificatePinner(it) }
            return b.build()
        }

        /** The `exp` of a JWT in ms since the epoch, or null when it is not a JWT with one. */
        internal fun jwtExpiryMs(token: String): Long? = try {
            val payload = token.split('.').getOrNull(1) ?: return null
            val json = String(Base64.getUrlDecoder().decode(payload.trimEnd('=')), Charsets.UTF_8)
            val claims = Codec.fromJson(Json.parseToJsonElement(json)) as? Map<*, *>
            when (val exp = claims?.get("exp")) {
                is Long -> exp * 1000
                is Double -> (exp * 1000).toLong()
                else -> null
            }
        } catch (_: Exception) {
            null
        }
    }
}
