// SPDX-License-Identifier: Apache-2.0
// Full-jitter exponential backoff (the "Exponential Backoff And Jitter" scheme): the delay is
// drawn uniformly from [0, min(cap, base * 2^attempt)], so clients dropped together (a node
// restart) spread their returns over the whole window instead of arriving in waves.

/**
 * @param {number} attempt 0 for the first retry
 * @param {{baseMs: number, capMs: number}} policy
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number} milliseconds
 */
export function fullJitterDelay(attempt, policy, random = Math.random) {
  // 2^31 times any sane base is past every cap; the bound keeps the power finite.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(Math.max(attempt, 0), 31));
  return Math.floor(random() * ceiling);
}
