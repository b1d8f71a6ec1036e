// SPDX-License-Identifier: Apache-2.0
// A token bucket mirroring the server's per-connection event limit (welcome.limits
// events_per_sec and events_burst): the client holds events back instead of sending them
// into `4020 rate_limited` refusals, which would also count towards `4008 too_many_errors`.

export class TokenBucket {
  /**
   * @param {number} ratePerSec tokens added per second
   * @param {number} burst bucket depth; the bucket starts full, as the server's does
   * @param {() => number} now milliseconds
   */
  constructor(ratePerSec, burst, now) {
    this.ratePerMs = ratePerSec / 1000;
    this.burst = burst;
    this.now = now;
    this.tokens = burst;
    this.at = now();
  }

  refill() {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + (t - this.at) * this.ratePerMs);
    this.at = t;
  }

  /** Whole tokens available now. */
  available() {
    this.refill();
    return Math.floor(this.tokens);
  }

  /** @param {number} n */
  take(n) {
    this.refill();
    this.tokens -= n;
  }

  /**
   * Milliseconds until `n` tokens are available (0 if they are).
   * @param {number} n
   */
  msUntil(n) {
    this.refill();
    const missing = n - this.tokens;
    return missing <= 0 ? 0 : Math.ceil(missing / this.ratePerMs);
  }

  /** Empties the bucket: the server said `rate_limited`, so its bucket is empty too. */
  drain() {
    this.refill();
    this.tokens = 0;
  }
}
