// SPDX-License-Identifier: Apache-2.0
// The event outbox: every tracked event from track() until the server acknowledges it
// (PROTOCOL.md §5, at-least-once). Insertion order is send order, so events queued while
// offline go out in the order they happened. The outbox is bounded; when full, the oldest
// event is dropped (recommendations react to the newest interactions). With a Storage (the
// browser's localStorage) it survives a page reload; the write is coalesced per microtask.

import { eventFields } from './outgoing.js';

/**
 * @typedef {{resolve: (id: string) => void, reject: (err: Error) => void}} Waiter
 * @typedef {import('./outgoing.js').EventFields} EventFields
 * @typedef {{id: string, fields: EventFields, waiters: Waiter[], inFlight: boolean,
 *   sentAtMs: number, notBeforeMs: number, attempts: number}} OutboxEntry
 * @typedef {import('./options.js').StorageLike} StorageLike
 */

export class Outbox {
  /**
   * @param {{maxEvents: number, storage: StorageLike|null, storageKey: string, onStorageError?: (err: unknown) => void}} options
   */
  constructor({ maxEvents, storage, storageKey, onStorageError }) {
    this.maxEvents = maxEvents;
    this.storage = storage;
    this.storageKey = storageKey;
    this.onStorageError = onStorageError ?? (() => {});
    /** @type {Map<string, OutboxEntry>} insertion-ordered */
    this.entries = new Map();
    this.inFlightCount = 0;
    this.saveQueued = false;
    this.load();
  }

  get size() {
    return this.entries.size;
  }

  /** @param {string} id */
  get(id) {
    return this.entries.get(id);
  }

  /**
   * Adds an event (fields already checked); a second add of a pending id only adds the waiter.
   * Returns the entries dropped to stay within maxEvents, oldest first: the caller rejects them.
   * @param {EventFields} fields
   * @param {Waiter|null} waiter
   * @returns {OutboxEntry[]}
   */
  add(fields, waiter) {
    const existing = this.entries.get(fields.id);
    if (existing) {
      if (waiter) existing.waiters.push(waiter);
      return [];
    }
    this.entries.set(fields.id, {
      id: fields.id,
      fields,
      waiters: waiter ? [waiter] : [],
      inFlight: false,
      sentAtMs: 0,
      notBeforeMs: 0,
      attempts: 0,
    });
    const dropped = [];
    for (const entry of this.entries.values()) {
      if (this.entries.size <= this.maxEvents) break;
      this.delete(entry.id);
      dropped.push(entry);
    }
    this.queueSave();
    return dropped;
  }

  /**
   * Removes and returns the entry of `id` (an ack or a final error), or undefined.
   * @param {string} id
   */
  delete(id) {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (entry.inFlight) this.inFlightCount--;
    this.entries.delete(id);
    this.queueSave();
    return entry;
  }

  /**
   * Number of entries ready to send at `nowMs` (not in flight, not backing off).
   * @param {number} nowMs
   */
  dueCount(nowMs) {
    let n = 0;
    for (const e of this.entries.values()) if (!e.inFlight && e.notBeforeMs <= nowMs) n++;
    return n;
  }

  /**
   * Takes up to `max` due entries in order and marks them in flight.
   * @param {number} nowMs
   * @param {number} max
   */
  takeDue(nowMs, max) {
    /** @type {OutboxEntry[]} */
    const out = [];
    for (const e of this.entries.values()) {
      if (out.length >= max) break;
      if (e.inFlight || e.notBeforeMs > nowMs) continue;
      e.inFlight = true;
      e.sentAtMs = nowMs;
      this.inFlightCount++;
      out.push(e);
    }
    return out;
  }

  /**
   * Puts an in-flight entry back to be sent again (after `delayMs`).
   * @param {OutboxEntry} entry
   */
  release(entry, delayMs = 0, nowMs = 0) {
    if (entry.inFlight) {
      entry.inFlight = false;
      this.inFlightCount--;
    }
    entry.notBeforeMs = delayMs > 0 ? nowMs + delayMs : 0;
  }

  /** The connection is gone: nothing is in flight any more; everything is sent again. */
  releaseAll() {
    for (const e of this.entries.values()) e.inFlight = false;
    this.inFlightCount = 0;
  }

  /**
   * Releases entries sent at or before `cutoffMs` (no ack in time); returns how many.
   * @param {number} cutoffMs
   */
  releaseSentBefore(cutoffMs) {
    let n = 0;
    for (const e of this.entries.values()) {
      if (e.inFlight && e.sentAtMs <= cutoffMs) {
        this.release(e);
        n++;
      }
    }
    return n;
  }

  /** Earliest sentAtMs of an in-flight entry, or null. */
  oldestSentAtMs() {
    /** @type {number|null} */
    let min = null;
    for (const e of this.entries.values()) if (e.inFlight && (min === null || e.sentAtMs < min)) min = e.sentAtMs;
    return min;
  }

  /** Earliest notBeforeMs of a waiting entry, or null when none waits. */
  nextDueAtMs() {
    /** @type {number|null} */
    let min = null;
    for (const e of this.entries.values()) if (!e.inFlight && (min === null || e.notBeforeMs < min)) min = e.notBeforeMs;
    return min;
  }

  /** Detaches every waiter (their promises are settled by the caller); entries stay queued. */
  takeAllWaiters() {
    /** @type {Waiter[]} */
    const waiters = [];
    for (const e of this.entries.values()) {
      waiters.push(...e.waiters);
      e.waiters = [];
    }
    return waiters;
  }

  // --- persistence --------------------------------------------------------------------------

  load() {
    if (!this.storage) return;
    /** @type {unknown} */
    let list;
    try {
      const text = this.storage.getItem(this.storageKey);
      list = text ? JSON.parse(text) : [];
    } catch (err) {
      this.onStorageError(err);
      return;
    }
    if (!Array.isArray(list)) return;
    for (const stored of list) {
      // Stored text may be stale or tampered with: keep only events that still check out.
      try {
        // Typed as the input it should be; eventFields checks every field of it at run time.
        const input = /** @type {import('./outgoing.js').TrackEvent & {id: string}} */ (wireToInput(stored));
        const fields = eventFields(input);
        this.add(fields, null);
      } catch {
        // Dropped: a malformed entry would only be refused by the server.
      }
    }
  }

  queueSave() {
    if (!this.storage || this.saveQueued) return;
    this.saveQueued = true;
    queueMicrotask(() => {
      this.saveQueued = false;
      this.save();
    });
  }

  save() {
    if (!this.storage) return;
    try {
      if (this.entries.size === 0) this.storage.removeItem(this.storageKey);
      else this.storage.setItem(this.storageKey, JSON.stringify([...this.entries.values()].map((e) => e.fields)));
    } catch (err) {
      // A full or forbidden storage leaves the queue in memory only.
      this.onStorageError(err);
    }
  }
}

/**
 * Turns stored wire fields back into track() input, so they are checked like new events.
 * @param {unknown} w  one element of the stored JSON array: anything at all
 * @returns {unknown}
 */
function wireToInput(w) {
  if (w === null || typeof w !== 'object') return w;
  const { ts_ms: tsMs, ...rest } = /** @type {Record<string, unknown>} */ (w);
  return tsMs === undefined ? rest : { ...rest, tsMs };
}
