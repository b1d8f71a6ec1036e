// SPDX-License-Identifier: Apache-2.0
// Where the MessagePack codec comes from, in the ESM sources: a dynamic import, which bundlers
// split into its own chunk and an import map resolves, so JSON users never load it. The
// CommonJS and script-tag builds replace this module (see build.mjs).

/** @returns {Promise<{encode: (value: unknown) => Uint8Array, decode: (bytes: Uint8Array) => unknown}>} */
export function importMsgpack() {
  return import('@msgpack/msgpack');
}
