// SPDX-License-Identifier: Apache-2.0
// Client-unique event ids. crypto.randomUUID exists only in secure contexts (https, localhost)
// and in Node; a page served over plain http on a LAN address still needs ids, so this falls
// back to a version 4 UUID built from getRandomValues, and as a last resort from Math.random
// plus a counter (unique within the page, which is what de-duplication per user needs).

let fallbackCounter = 0;

/** @returns {string} a UUID (36 characters of [0-9a-f-], a valid protocol id) */
export function randomEventId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') {
    c.getRandomValues(bytes);
  } else {
    fallbackCounter = (fallbackCounter + 1) >>> 0;
    for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
    // The counter makes two ids of one page differ even with a poor Math.random.
    bytes[12] ^= fallbackCounter >>> 24;
    bytes[13] ^= (fallbackCounter >>> 16) & 0xff;
    bytes[14] ^= (fallbackCounter >>> 8) & 0xff;
    bytes[15] ^= fallbackCounter & 0xff;
  }
  bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
  bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 4122 variant
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
