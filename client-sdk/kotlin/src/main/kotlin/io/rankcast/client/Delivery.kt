// SPDX-License-Identifier: Apache-2.0
// Event delivery (PROTOCOL.md section 5): at-least-once, in order, within the connection's
// limits. The first event of a burst waits a short batch window so the burst goes out as one
// `events` message; each message holds at most welcome.limits.max_batch events and fits
// max_message_bytes; a token bucket keeps to events_per_sec. An event stays queued (in memory
// and in the EventStore) until its `ack`. It is sent again after a reconnect, after an ack
// timeout, and with full-jitter backoff after a retryable error (4020, 4500, 4503). Any other
// error about it fails its track(). Runs on the client's confined dispatcher only.
package io.rankcast.client

import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch

internal class Entry(val id: String, val fields: Map<String, Any?>) {
    val waiters = ArrayList<CompletableDeferred<String>>(1)
    var sentAtMs: Long? = null // in flight on the current connection since
    var dueAtMs: Long = 0 // not sent before (a retry's backoff)
    var attempts = 0
}

/** A token bucket mirroring the server's (welcome.limits.events_per_sec / events_burst). */
internal class TokenBucket(private val perSec: Int, private val burst: Int, private val now: () -> Long) {
    private var tokens = burst.toDouble()
    private var at = now()

    private fun refill() {
        val t = now()
        tokens = minOf(burst.toDouble(), tokens + (t - at) * perSec / 1000.0)
        at = t
    }

    fun available(): Int {
        refill()
        return tokens.toInt()
    }

    fun take(n: Int) {
        refill()
        tokens -= n
    }

    fun drain() {
        refill()
        tokens = 0.0
    }

    fun msUntil(n: Int): Long {
        refill()
        return if (tokens >= n) 0 else Math.ceil((n - tokens) * 1000.0 / perSec).toLong().coerceAtLeast(1)
    }
}

internal class DeliveryCounters {
    var sentMessages = 0L
    var sentEvents = 0L
    var acked = 0L
    var resent = 0L
    var retried = 0L
}

internal class Delivery(
    private val scope: CoroutineScope,
    private val store: EventStore,
    private val maxQueue: Int,
    private val batchWindowMs: Long,
    private val ackTimeoutMs: Long,
    private val retry: Backoff,
    private val encode: (Map<String, Any?>) -> Frame,
    private val send: (Frame) -> Boolean,
    private val report: (RankcastException) -> Unit,
    private val log: (LogLevel, String, Throwable?) -> Unit,
) {
    private val now: () -> Long = { System.nanoTime() / 1_000_000 }
    private val outbox = LinkedHashMap<String, Entry>()
    private var connected = false
    private var limits = Limits()
    private var maxBatch = limits.maxBatch
    private var bucket = TokenBucket(limits.eventsPerSec, limits.eventsBurst, now)
    private var flushJob: Job? = null
    private var flushAtMs = Long.MAX_VALUE
    private var ackJob: Job? = null
    private val idleWaiters = ArrayList<CompletableDeferred<Unit>>()
    val counters = DeliveryCounters()

    val size: Int get() = outbox.size
    val inFlight: Int get() = outbox.values.count { it.sentAtMs != null }

    /** Takes the events of the store (a previous run's), oldest first; they have no waiters. */
    fun restore() {
        val stored = try {
            store.load()
        } catch (e: Exception) {
            report(ClientException(ClientErrorKind.STORAGE, "cannot read the event store: ${e.message}", e))
            emptyList()
        }
        for (s in stored) outbox[s.id] = Entry(s.id, s.fields)
        if (stored.isNotEmpty()) log(LogLevel.INFO, "${stored.size} events restored from the event store", null)
    }

    /** Queues checked event fields; the deferred completes with the id on `ack`. */
    fun enqueue(fields: Map<String, Any?>, waiter: CompletableDeferred<String>) {
        val id = fields["id"] as String
        val existing = outbox[id]
        if (existing != null) {
            // The same id tracked again (an application retry): one event, one more waiter.
            existing.waiters += waiter
            return
        }
        val entry = Entry(id, fields)
        entry.waiters += waiter
        outbox[id] = entry
        persist { store.add(StoredEvent(id, fields)) }
        while (outbox.size > maxQueue) {
            val oldest = outbox.values.first()
            fail(oldest, ClientException(ClientErrorKind.QUEUE_OVERFLOW, "offline queue full ($maxQueue events): event ${oldest.id} dropped"))
        }
        if (!connected) return
        if (dueCount(now()) >= maxBatch) flush() else flushWithin(batchWindowMs)
    }

    /** A connection said `welcome`: take its limits and send everything waiting, in order. */
    fun start(l: Limits) {
        connected = true
        limits = l
        maxBatch = l.maxBatch.coerceAtLeast(1)
        // The server's bucket is per connection and starts full; so does this one, less one token
        // in reserve (events sent a pacing interval apart can arrive closer together).
        bucket = TokenBucket(l.eventsPerSec, (l.eventsBurst - 1).coerceAtLeast(1), now)
        flush()
    }

    /** The connection is gone: whatever was in flight is sent again on the next one. */
    fun stop() {
        connected = false
        for (e in outbox.values) e.sentAtMs = null
        cancelFlush()
        ackJob?.cancel()
        ackJob = null
    }

    private fun cancelFlush() {
        flushJob?.cancel()
        flushJob = null
        flushAtMs = Long.MAX_VALUE
    }

    /** Arms the flush timer unless one fires earlier already. */
    private fun flushWithin(ms: Long) {
        val at = now() + ms
        if (flushJob?.isActive == true && flushAtMs <= at) return
        flushJob?.cancel()
        flushAtMs = at
        flushJob = scope.launch {
            delay(ms)
            flushJob = null
            flushAtMs = Long.MAX_VALUE
            flush()
        }
    }

    private fun dueCount(t: Long) = outbox.values.count { it.sentAtMs == null && it.dueAtMs <= t }

    /** Sends due events now, as far as the limits allow, and plans the next send. */
    fun flush() {
        cancelFlush()
        if (!connected) return
        val t = now()
        while (true) {
            val due = outbox.values.filter { it.sentAtMs == null && it.dueAtMs <= t }
            if (due.isEmpty()) break
            val tokens = bucket.available()
            if (tokens < 1) {
                flushWithin(bucket.msUntil(1))
                break
            }
            if (!sendBatch(due.take(minOf(due.size, maxBatch, tokens)).toMutableList(), t)) break
        }
        planNext(t)
    }

    /** Encodes and sends one batch, halving it until it fits max_message_bytes. */
    private fun sendBatch(batch: MutableList<Entry>, t: Long): Boolean {
        var frame = encodeBatch(batch)
        while (batch.size > 1 && frame.size > limits.maxMessageBytes) {
            batch.subList((batch.size + 1) / 2, batch.size).clear()
            frame = encodeBatch(batch)
        }
        if (frame.size > limits.maxMessageBytes) {
            // One event larger than the server takes: sending it would get a fatal 4003.
            fail(batch[0], ClientException(ClientErrorKind.LIMIT_EXCEEDED, "event ${batch[0].id} is larger than max_message_bytes ${limits.maxMessageBytes}"))
            return true
        }
        if (!send(frame)) return false // the socket is closing; its close will follow
        bucket.take(batch.size)
        counters.sentMessages++
        counters.sentEvents += batch.size
        for (e in batch) {
            if (e.attempts++ > 0) counters.resent++
            e.sentAtMs = t
        }
        return true
    }

    private fun encodeBatch(batch: List<Entry>): Frame =
        encode(if (batch.size == 1) Outgoing.event(batch[0].fields) else Outgoing.events(batch.map { it.fields }))

    /** Arms the ack deadline of the oldest in-flight event and the next retry. */
    private fun planNext(t: Long) {
        val oldest = outbox.values.mapNotNull { it.sentAtMs }.minOrNull()
        if (oldest == null) {
            ackJob?.cancel()
            ackJob = null
        } else if (ackJob?.isActive != true) {
            ackJob = scope.launch {
                delay((oldest + ackTimeoutMs - now()).coerceAtLeast(0))
                ackJob = null
                onAckTimeout()
            }
        }
        val next = outbox.values.filter { it.sentAtMs == null && it.dueAtMs > t }.minOfOrNull { it.dueAtMs }
        if (next != null) flushWithin(next - t)
    }

    private fun onAckTimeout() {
        // No ack in time: send again on this connection. The server de-duplicates by id.
        val before = now() - ackTimeoutMs
        for (e in outbox.values) if (e.sentAtMs != null && e.sentAtMs!! <= before) e.sentAtMs = null
        flush()
    }

    /** An `ack`: completes the events it names; unknown and repeated ids are ignored. */
    fun onAck(ids: List<String>) {
        var removed = 0
        for (id in ids) {
            val e = outbox.remove(id) ?: continue
            removed++
            persist { store.remove(id) }
            for (w in e.waiters) w.complete(id)
        }
        if (removed == 0) return
        counters.acked += removed
        if (connected) planNext(now())
        settleIdle()
    }

    /**
     * An `error` of the server. Returns true when it concerned an event of the queue (and was
     * handled), false when the caller should report it.
     */
    fun onError(e: Incoming.Error): Boolean {
        if (e.code == 4022 && e.id == null) {
            // The server's limit is below what welcome said: halve, and send again.
            maxBatch = (maxBatch / 2).coerceAtLeast(1)
            for (x in outbox.values) x.sentAtMs = null
            flush()
            return false
        }
        val entry = e.id?.let { outbox[it] } ?: return false
        if (ServerErrors.isRetryable(e.code)) {
            counters.retried++
            entry.sentAtMs = null
            entry.dueAtMs = now() + retry.delayMs(entry.attempts - 1).coerceAtLeast(1)
            if (e.code == 4020) bucket.drain()
            if (connected) planNext(now())
            return true
        }
        fail(entry, ServerException(e.code, e.name.ifEmpty { ServerErrors.table[e.code]?.name ?: "unknown" }, e.message, e.id, e.fatal))
        return true
    }

    /** Removes an entry and fails its waiters. A failure the SDK found itself is also reported. */
    private fun fail(entry: Entry, err: RankcastException) {
        outbox.remove(entry.id)
        persist { store.remove(entry.id) }
        if (err is ClientException) report(err)
        for (w in entry.waiters) w.completeExceptionally(err)
        settleIdle()
    }

    /** Fails every waiter (the client closed); the events stay queued in the store. */
    fun rejectWaiters(err: RankcastException) {
        for (e in outbox.values) {
            for (w in e.waiters) w.completeExceptionally(err)
            e.waiters.clear()
        }
        for (w in idleWaiters) w.completeExceptionally(err)
        idleWaiters.clear()
    }

    /** Completes when the queue is empty. */
    fun whenIdle(): CompletableDeferred<Unit> {
        val d = CompletableDeferred<Unit>()
        if (outbox.isEmpty()) d.complete(Unit) else idleWaiters += d
        if (connected) flush()
        return d
    }

    private fun settleIdle() {
        if (outbox.isNotEmpty()) return
        for (w in idleWaiters) w.complete(Unit)
        idleWaiters.clear()
    }

    private inline fun persist(op: () -> Unit) {
        try {
            op()
        } catch (e: Exception) {
            report(ClientException(ClientErrorKind.STORAGE, "event store: ${e.message}", e))
        }
    }
}
