// SPDX-License-Identifier: Apache-2.0
// Live lists: the surfaces the application subscribed to, kept across reconnects. One wire
// subscription per surface, shared by every subscribe() handle of that surface. On every new
// connection each surface is subscribed again and the server answers with its current list.
// Lists are state (PROTOCOL.md §5): per surface only the highest `version` is kept, and a list
// older than the one delivered is dropped.

import { ClientError } from './errors.js';
import { reportListenerError } from './emitter.js';
import { subscribeMessage, unsubscribeMessage } from './outgoing.js';

/**
 * @typedef {import('./incoming.js').RecsList} RecsList
 * @typedef {ReturnType<typeof subscribeMessage>} SubscribeMessage
 * @typedef {{surface: string, message: SubscribeMessage, handles: Set<Subscription>,
 *   version: number|null, latest: RecsList|null}} SurfaceEntry
 */

/** The handle subscribe() returns. */
export class Subscription {
  /**
   * @param {Subscriptions} registry
   * @param {SurfaceEntry} entry
   * @param {(list: RecsList) => void} onRecs
   */
  constructor(registry, entry, onRecs) {
    this.registry = registry;
    this.entry = entry;
    this.onRecs = onRecs;
    this.surface = entry.surface;
    this.active = true;
  }

  /** The newest list of the surface, or null before the first one arrives. */
  get latest() {
    return this.active ? this.entry.latest : null;
  }

  /** Stops the callback; the surface is unsubscribed when its last handle goes. Idempotent. */
  unsubscribe() {
    if (!this.active) return;
    this.active = false;
    this.registry.remove(this);
  }
}

/**
 * The handle as subscribe() declares it: its other members belong to the registry.
 * @typedef {Omit<Subscription, 'registry' | 'entry' | 'onRecs'>} PublicSubscription
 */

/**
 * @param {SubscribeMessage} a
 * @param {SubscribeMessage} b
 */
const sameMessage = (a, b) => JSON.stringify(a) === JSON.stringify(b);

export class Subscriptions {
  /**
   * @param {{send: (msg: import('./codec.js').WireMessage) => void, isOpen: () => boolean,
   *   limits: () => {maxK: number, maxSubscriptions: number}, onRemoved: (surface: string) => void}} hooks
   */
  constructor(hooks) {
    this.hooks = hooks;
    /** @type {Map<string, SurfaceEntry>} in subscription order */
    this.surfaces = new Map();
    this.staleDropped = 0;
  }

  get count() {
    return this.surfaces.size;
  }

  /**
   * Adds a handle for `surface`. A new surface, or new options for a held one, sends `subscribe`
   * now if the connection is open (else on the next `welcome`). Options belong to the surface:
   * the last subscribe() of a surface sets them for every handle of it.
   * @param {string} surface
   * @param {import('./outgoing.js').SubscribeOptions} params
   * @param {((list: RecsList) => void) | undefined} onRecs  checked: a JavaScript caller may leave it out
   * @returns {Subscription}
   */
  add(surface, params, onRecs) {
    if (typeof onRecs !== 'function') throw new ClientError('invalid_argument', 'subscribe needs an onRecs callback');
    const limits = this.hooks.limits();
    const message = subscribeMessage(surface, params, limits.maxK);
    let entry = this.surfaces.get(surface);
    if (!entry) {
      if (this.surfaces.size >= limits.maxSubscriptions) {
        throw new ClientError('limit_exceeded', `at most ${limits.maxSubscriptions} surfaces per connection (welcome.limits.max_subscriptions)`);
      }
      entry = { surface, message, handles: new Set(), version: null, latest: null };
      this.surfaces.set(surface, entry);
      if (this.hooks.isOpen()) this.hooks.send(message);
    } else if (!sameMessage(entry.message, message)) {
      // Different options make a different list on the server, whose versions are not
      // comparable with the old one's: start the surface afresh.
      entry.message = message;
      entry.version = null;
      entry.latest = null;
      if (this.hooks.isOpen()) this.hooks.send(message);
    }
    const handle = new Subscription(this, entry, onRecs);
    entry.handles.add(handle);
    if (entry.latest) {
      // A second handle of a live surface gets the current list at once (but never
      // synchronously inside subscribe(), so the caller can store the handle first).
      const list = entry.latest;
      queueMicrotask(() => {
        if (handle.active && handle.entry.latest === list) callHandle(handle, list);
      });
    }
    return handle;
  }

  /** @param {Subscription} handle */
  remove(handle) {
    const entry = handle.entry;
    entry.handles.delete(handle);
    if (entry.handles.size > 0 || this.surfaces.get(entry.surface) !== entry) return;
    this.surfaces.delete(entry.surface);
    if (this.hooks.isOpen()) this.hooks.send(unsubscribeMessage(entry.surface));
    this.hooks.onRemoved(entry.surface);
  }

  /**
   * A new connection said `welcome`: subscribe every surface again. Versions start afresh per
   * connection: the answer to `subscribe` is by definition the current list, even when it
   * comes from another node whose versions are lower; nothing from the old connection can
   * arrive any more.
   */
  resubscribeAll() {
    for (const entry of this.surfaces.values()) {
      entry.version = null;
      this.hooks.send(entry.message);
    }
  }

  /**
   * Subscribes `surface` again as it is (its compact list could not be applied: the server
   * answers with the whole list). Nothing when the surface is not held or no connection is open.
   * @param {string} surface
   */
  resubscribe(surface) {
    const entry = this.surfaces.get(surface);
    if (!entry || !this.hooks.isOpen()) return;
    entry.version = null; // the answer is by definition the current list
    this.hooks.send(entry.message);
  }

  /**
   * A `recs` arrived. Returns true when it was delivered, false when dropped (a surface no
   * longer held, or a version older than the one delivered).
   * @param {RecsList} list
   */
  deliver(list) {
    const entry = this.surfaces.get(list.surface);
    if (!entry) return false;
    if (entry.version !== null && list.version < entry.version) {
      this.staleDropped++;
      return false;
    }
    entry.version = list.version;
    entry.latest = list;
    for (const handle of [...entry.handles]) callHandle(handle, list);
    return true;
  }
}

/**
 * @param {Subscription} handle
 * @param {RecsList} list
 */
function callHandle(handle, list) {
  if (!handle.active) return;
  try {
    handle.onRecs(list);
  } catch (err) {
    reportListenerError(err);
  }
}
