// SPDX-License-Identifier: Apache-2.0
// Named one-shot timers. Every timer the client uses lives here under a name, at most one per
// name, so "no timer leaks" is checkable: after close() (or between connections) `size` is
// back to its baseline. The clock functions are injectable for tests.

/**
 * The clock functions TimerSet uses. A timer handle is whatever setTimeout gave: a number in
 * browsers, an object in Node; it only goes back to clearTimeout.
 * @typedef {{setTimeout: (fn: () => void, ms: number) => unknown, clearTimeout: (handle: unknown) => void,
 *   now: () => number}} TimerClock
 */

export class TimerSet {
  /**
   * @param {TimerClock} clock
   */
  constructor(clock) {
    this.clock = clock;
    /** @type {Map<string, {handle: unknown, dueMs: number}>} */
    this.timers = new Map();
  }

  /**
   * Runs `fn` after `delayMs`, replacing any timer of the same name.
   * @param {string} name
   * @param {number} delayMs
   * @param {() => void} fn
   */
  set(name, delayMs, fn) {
    this.clear(name);
    const delay = Math.max(0, delayMs);
    const handle = this.clock.setTimeout(() => {
      this.timers.delete(name);
      fn();
    }, delay);
    this.timers.set(name, { handle, dueMs: this.clock.now() + delay });
  }

  /**
   * Like set(), but keeps an existing timer of the name that fires no later.
   * @param {string} name
   * @param {number} delayMs
   * @param {() => void} fn
   */
  setEarliest(name, delayMs, fn) {
    const existing = this.timers.get(name);
    if (existing && existing.dueMs <= this.clock.now() + Math.max(0, delayMs)) return;
    this.set(name, delayMs, fn);
  }

  /** @param {string} name */
  has(name) {
    return this.timers.has(name);
  }

  /** @param {string} name */
  clear(name) {
    const t = this.timers.get(name);
    if (t) {
      this.clock.clearTimeout(t.handle);
      this.timers.delete(name);
    }
  }

  clearAll() {
    for (const name of [...this.timers.keys()]) this.clear(name);
  }

  get size() {
    return this.timers.size;
  }
}
