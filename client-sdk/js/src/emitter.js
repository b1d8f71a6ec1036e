// SPDX-License-Identifier: Apache-2.0
// A small typed event emitter that works the same in browsers and Node. A listener that throws
// does not disturb the client or the other listeners: its exception is reported asynchronously
// (reportError where it exists, otherwise re-thrown from a microtask), as a DOM event's would be.

/**
 * Reports an exception thrown by application code without unwinding the SDK's own stack.
 * @param {unknown} err
 */
export function reportListenerError(err) {
  if (typeof globalThis.reportError === 'function') {
    globalThis.reportError(err);
    return;
  }
  queueMicrotask(() => {
    throw err;
  });
}

/**
 * @template {object} Events  each event's name and the value its listeners get
 */
export class Emitter {
  constructor() {
    /**
     * Each set holds wrappers of one event's listeners, so they all take that event's value.
     * @type {Map<keyof Events, Set<(arg: never) => void>>}
     */
    this.listeners = new Map();
  }

  /**
   * Adds `fn` for `type`; returns a function that removes it.
   * @template {keyof Events} K
   * @param {K} type
   * @param {(arg: Events[K]) => void} fn
   * @returns {() => void}
   */
  on(type, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    let set = this.listeners.get(type);
    if (!set) {
      set = new Set();
      this.listeners.set(type, set);
    }
    // A wrapper per registration, so the same function added twice is removed once per off().
    /** @param {Events[K]} arg */
    const entry = (arg) => fn(arg);
    set.add(entry);
    return () => {
      set.delete(entry);
      if (set.size === 0 && this.listeners.get(type) === set) this.listeners.delete(type);
    };
  }

  /**
   * Like on(), for the next event only.
   * @template {keyof Events} K
   * @param {K} type
   * @param {(arg: Events[K]) => void} fn
   * @returns {() => void}
   */
  once(type, fn) {
    const off = this.on(type, (arg) => {
      off();
      fn(arg);
    });
    return off;
  }

  /**
   * @template {keyof Events} K
   * @param {K} type
   * @param {Events[K]} arg
   */
  emit(type, arg) {
    // The set of `type` holds listeners of Events[K] only (see on()).
    const set = /** @type {Set<(arg: Events[K]) => void> | undefined} */ (this.listeners.get(type));
    if (!set) return;
    for (const entry of [...set]) {
      try {
        entry(arg);
      } catch (err) {
        reportListenerError(err);
      }
    }
  }

  /**
   * Listeners of `type`, or of every type when left out.
   * @param {keyof Events} [type]
   * @returns {number}
   */
  listenerCount(type) {
    if (type !== undefined) return this.listeners.get(type)?.size ?? 0;
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  removeAll() {
    this.listeners.clear();
  }
}
