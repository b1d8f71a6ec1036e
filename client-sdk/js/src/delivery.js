// SPDX-License-Identifier: Apache-2.0
// Event delivery (PROTOCOL.md §5): at-least-once, in order, within the connection's limits.
// Events wait a short batch window so a burst goes out as one `events` message, except those
// of the kinds in `immediateKinds`, which go at once (taking along whatever waits); each message
// holds at most welcome.limits.max_batch events and fits max_message_bytes; a token bucket
// keeps to events_per_sec. An event stays in the outbox until its `ack`. It is sent again
// after a reconnect, after an ack timeout, and (with full-jitter backoff) after a retryable
// error (4020, 4500, 4503). Any other error about it rejects its track() promise.

import { fullJitterDelay } from './backoff.js';
import { ClientError, ServerError, isRetryableCode } from './errors.js';
import { DEFAULT_LIMITS } from './incoming.js';
import { byteLength, eventMessage, eventsMessage } from './outgoing.js';
import { TokenBucket } from './rate.js';

const RATE_LIMITED = 4020;
const BATCH_TOO_LARGE = 4022;

/**
 * @typedef {import('./outbox.js').OutboxEntry} OutboxEntry
 * @typedef {import('./outgoing.js').EventFields} EventFields
 */

export class Delivery {
  /**
   * @param {{outbox: import('./outbox.js').Outbox, timers: import('./timers.js').TimerSet,
   *   now: () => number, random: () => number,
   *   transport: {encode: (msg: import('./codec.js').WireMessage) => Uint8Array|string, send: (data: Uint8Array|string) => boolean},
   *   batchWindowMs: number, immediateKinds: ReadonlySet<string>, ackTimeoutMs: number, retry: {baseMs: number, capMs: number},
   *   onClientError: (err: ClientError) => void, onIdle: () => void}} o
   */
  constructor(o) {
    this.o = o;
    this.outbox = o.outbox;
    this.timers = o.timers;
    this.connected = false;
    /** @type {number} */
    this.maxBatch = DEFAULT_LIMITS.maxBatch;
    /** @type {number} */
    this.maxMessageBytes = DEFAULT_LIMITS.maxMessageBytes;
    this.bucket = new TokenBucket(DEFAULT_LIMITS.eventsPerSec, DEFAULT_LIMITS.eventsBurst, o.now);
    this.counters = { sentMessages: 0, sentEvents: 0, acked: 0, resent: 0, retried: 0 };
  }

  /**
   * Queues checked event fields. Resolves with the id on `ack`; rejects with a ServerError on a
   * final refusal, or a ClientError ('queue_overflow', 'closed', 'limit_exceeded').
   * @param {EventFields} fields
   * @returns {Promise<string>}
   */
  enqueue(fields) {
    return new Promise((resolve, reject) => {
      const dropped = this.outbox.add(fields, { resolve, reject });
      for (const entry of dropped) {
        const err = new ClientError('queue_overflow', `offline queue full (${this.outbox.maxEvents} events): event ${entry.id} dropped`);
        this.failEntry(entry, err);
      }
      if (!this.connected) return;
      // A kind a person waits on (a click whose list they watch) does not wait for company.
      if (this.o.immediateKinds.has(fields.kind) || this.outbox.dueCount(this.o.now()) >= this.maxBatch) this.flush();
      else this.timers.setEarliest('flush', this.o.batchWindowMs, () => this.flush());
    });
  }

  /**
   * A connection said `welcome`: take its limits and send everything waiting, in order.
   * @param {import('./incoming.js').Limits} limits
   */
  start(limits) {
    this.connected = true;
    this.maxBatch = Math.max(1, limits.maxBatch);
    this.maxMessageBytes = limits.maxMessageBytes;
    // The server's bucket is per connection and starts full; so does this one. One token is
    // kept in reserve: the server counts arrivals, and events sent a pacing interval apart
    // can arrive closer together than that (a busy network or server), which would make the
    // server's bucket run dry before this one.
    this.bucket = new TokenBucket(limits.eventsPerSec, Math.max(1, limits.eventsBurst - 1), this.o.now);
    this.flush();
  }

  /** The connection is gone: whatever was in flight is sent again on the next one. */
  stop() {
    this.connected = false;
    this.outbox.releaseAll();
    this.timers.clear('flush');
    this.timers.clear('ack');
  }

  /** Sends due events now, as far as the limits allow, and plans the next send. */
  flush() {
    this.timers.clear('flush');
    if (!this.connected) return;
    const now = this.o.now();
    for (;;) {
      const due = this.outbox.dueCount(now);
      if (due === 0) break;
      const tokens = this.bucket.available();
      if (tokens < 1) {
        this.timers.setEarliest('flush', this.bucket.msUntil(1), () => this.flush());
        break;
      }
      const batch = this.outbox.takeDue(now, Math.min(due, this.maxBatch, tokens));
      if (!this.sendBatch(batch)) break;
    }
    this.planNext(now);
  }

  /**
   * Encodes and sends one batch, halving it until it fits max_message_bytes.
   * @param {OutboxEntry[]} batch
   */
  sendBatch(batch) {
    let data = this.encodeBatch(batch);
    while (batch.length > 1 && this.sizeOf(data) > this.maxMessageBytes) {
      const keep = Math.ceil(batch.length / 2);
      for (const entry of batch.splice(keep)) this.outbox.release(entry);
      data = this.encodeBatch(batch);
    }
    if (this.sizeOf(data) > this.maxMessageBytes) {
      // One event larger than the server takes: sending it would get a fatal 4003.
      const err = new ClientError('limit_exceeded', `event ${batch[0].id} is larger than max_message_bytes ${this.maxMessageBytes}`);
      this.failEntry(this.outbox.delete(batch[0].id), err);
      return true;
    }
    if (!this.o.transport.send(data)) {
      for (const entry of batch) this.outbox.release(entry);
      return false; // the socket is closing; its close event will follow
    }
    this.bucket.take(batch.length);
    this.counters.sentMessages++;
    this.counters.sentEvents += batch.length;
    for (const entry of batch) if (entry.attempts++ > 0) this.counters.resent++;
    return true;
  }

  /** @param {OutboxEntry[]} batch */
  encodeBatch(batch) {
    const msg = batch.length === 1 ? eventMessage(batch[0].fields) : eventsMessage(batch.map((e) => e.fields));
    return this.o.transport.encode(msg);
  }

  /** @param {Uint8Array|string} data */
  sizeOf(data) {
    if (typeof data !== 'string') return data.byteLength;
    // A JSON string is at most 3 bytes of UTF-8 per UTF-16 unit: count only when it matters.
    return data.length * 3 <= this.maxMessageBytes ? data.length : byteLength(data);
  }

  /**
   * Arms the timers: the ack deadline of the oldest in-flight event, the next retry.
   * @param {number} now
   */
  planNext(now) {
    const oldest = this.outbox.oldestSentAtMs();
    if (oldest === null) this.timers.clear('ack');
    else if (!this.timers.has('ack')) this.timers.set('ack', oldest + this.o.ackTimeoutMs - now, () => this.onAckTimeout());
    const next = this.outbox.nextDueAtMs();
    if (next !== null && next > now) this.timers.setEarliest('flush', next - now, () => this.flush());
  }

  onAckTimeout() {
    const now = this.o.now();
    // No ack in time: send again on this connection. The server de-duplicates by id, so a
    // late ack of the first copy and an ack of the second do no harm.
    this.outbox.releaseSentBefore(now - this.o.ackTimeoutMs);
    this.flush();
  }

  /**
   * An `ack`: resolves the events it names; unknown and repeated ids are ignored.
   * @param {string[]} ids
   */
  onAck(ids) {
    let removed = 0;
    for (const id of ids) {
      const entry = this.outbox.delete(id);
      if (!entry) continue;
      removed++;
      for (const w of entry.waiters) w.resolve(id);
    }
    if (removed === 0) return;
    this.counters.acked += removed;
    if (this.connected) this.planNext(this.o.now());
    if (this.outbox.size === 0) this.o.onIdle();
  }

  /**
   * An `error` from the server. Returns true when it concerned an event of the outbox (and
   * was handled), false when the caller should report it.
   * @param {import('./incoming.js').ErrorMessage} wire
   */
  onError(wire) {
    if (wire.code === BATCH_TOO_LARGE && wire.id === undefined) {
      // The server's limit is below what welcome said: halve, and send the batch again.
      this.maxBatch = Math.max(1, Math.floor(this.maxBatch / 2));
      this.outbox.releaseAll();
      this.flush();
      return false;
    }
    const entry = wire.id !== undefined ? this.outbox.get(wire.id) : undefined;
    if (!entry) return false;
    if (isRetryableCode(wire.code)) {
      const now = this.o.now();
      this.counters.retried++;
      this.outbox.release(entry, Math.max(1, fullJitterDelay(entry.attempts - 1, this.o.retry, this.o.random)), now);
      if (wire.code === RATE_LIMITED) this.bucket.drain();
      if (this.connected) this.planNext(now);
      return true;
    }
    this.failEntry(this.outbox.delete(entry.id), new ServerError(wire));
    return true;
  }

  /**
   * Rejects an entry's promises. A failure the SDK found itself is also reported (a
   * fire-and-forget track() would otherwise lose it); server errors are reported by the client.
   * @param {OutboxEntry|undefined} entry
   * @param {ClientError|ServerError} err
   */
  failEntry(entry, err) {
    if (!entry) return;
    if (err instanceof ClientError) this.o.onClientError(err);
    for (const w of entry.waiters) w.reject(err);
    if (this.outbox.size === 0) this.o.onIdle();
  }
}
