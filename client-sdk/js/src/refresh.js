// SPDX-License-Identifier: Apache-2.0
// When to refresh a token ahead of its expiry: the expiry read from a JWT's `exp` (the SDK
// never verifies a token, it only reads when it ends), and the delay before asking the token
// provider for the next one.

/** setTimeout's longest delay (2^31 - 1 ms, about 24.8 days); longer ones fire at once. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The expiry of a JWT (`exp`, seconds since the epoch) in milliseconds, or null when `token`
 * is not a JWT with a numeric `exp`.
 * @param {string} token
 * @returns {number|null}
 */
export function tokenExpiryMs(token) {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(b64.padEnd(Math.ceil(b64.length / 4) * 4, '=')));
    const exp = claims?.exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/**
 * How long to wait before refreshing a token that expires at `expMs`: `aheadMs` before the
 * expiry, but never before half the time left has passed, so a token shorter-lived than
 * `aheadMs` is not refreshed in a tight loop. Never negative.
 * @param {number} expMs
 * @param {number} nowMs
 * @param {number} aheadMs
 */
export function refreshDelayMs(expMs, nowMs, aheadMs) {
  const left = expMs - nowMs;
  return Math.max(0, Math.floor(Math.max(left - aheadMs, left / 2)));
}
