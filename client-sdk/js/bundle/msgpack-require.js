// SPDX-License-Identifier: Apache-2.0
// The CommonJS build's src/msgpack-loader.js: requires @msgpack/msgpack on the first msgpack
// connection (not at load), so a JSON user's process never loads it.

/** @returns {Promise<{encode: (value: unknown) => Uint8Array, decode: (bytes: Uint8Array) => unknown}>} */
export function importMsgpack() {
  return new Promise((resolve) => resolve(require('@msgpack/msgpack')));
}
