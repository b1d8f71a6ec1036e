// SPDX-License-Identifier: Apache-2.0
// The two encodings of PROTOCOL.md §1: one message per WebSocket message, a MessagePack map in
// a binary frame (`rankcast.v1.msgpack`) or a JSON object in a text frame (`rankcast.v1.json`).
// Pure functions, no I/O: the vectors test drives them directly. The MessagePack codec is
// loaded on first use (loadMsgpack()), so a page on the JSON subprotocol never downloads it.

import { ClientError } from './errors.js';
import { importMsgpack } from './msgpack-loader.js';

/** @type {{encode: (value: unknown) => Uint8Array, decode: (bytes: Uint8Array) => unknown} | null} */
let msgpack = null;
/** @type {Promise<void> | null} */
let loading = null;

/**
 * Loads the MessagePack codec once; the client awaits it before its first `rankcast.v1.msgpack`
 * connection. Call it before encodeMessage()/decodeMessage() with 'msgpack'. A failed load
 * rejects with ClientError('connection') and is tried again on the next call.
 * @returns {Promise<void>}
 */
export function loadMsgpack() {
  if (msgpack) return Promise.resolve();
  loading ??= importMsgpack().then(
    (m) => {
      msgpack = { encode: m.encode, decode: m.decode };
    },
    (err) => {
      loading = null;
      throw new ClientError('connection', `cannot load the MessagePack codec: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    },
  );
  return loading;
}

/** The loaded MessagePack codec; throws when loadMsgpack() has not finished. */
function msgpackCodec() {
  if (msgpack) return msgpack;
  throw new ClientError('invalid_argument', "the MessagePack codec is not loaded: await loadMsgpack() first");
}

/** The subprotocol names, by encoding. */
export const SUBPROTOCOLS = Object.freeze({ msgpack: 'rankcast.v1.msgpack', json: 'rankcast.v1.json' });

/**
 * @typedef {keyof typeof SUBPROTOCOLS} Encoding
 * @typedef {{type: string} & Record<string, unknown>} WireMessage  a protocol message: a map with a string `type`
 */

/**
 * Encodes one protocol message: a Uint8Array for MessagePack, a string for JSON. Keys keep the
 * object's own order; numbers that are integers encode as MessagePack ints, others as float64.
 * MessagePack needs loadMsgpack() to have resolved.
 * @param {WireMessage} msg
 * @param {Encoding} encoding
 * @returns {Uint8Array|string}
 */
export function encodeMessage(msg, encoding) {
  if (encoding === 'msgpack') return msgpackCodec().encode(msg);
  if (encoding === 'json') return JSON.stringify(msg);
  throw new ClientError('invalid_argument', `unknown encoding ${JSON.stringify(encoding)}`);
}

/**
 * The bytes of a binary WebSocket message in any of the shapes browsers and `ws` deliver.
 * @param {unknown} data
 * @returns {Uint8Array|null}
 */
function asBytes(data) {
  if (data instanceof Uint8Array) return data; // includes Node's Buffer
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data) && data.every((part) => part instanceof Uint8Array)) {
    // `ws` with binaryType 'fragments'.
    const out = new Uint8Array(data.reduce((n, part) => n + part.length, 0));
    let at = 0;
    for (const part of data) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }
  return null;
}

/**
 * Decodes one WebSocket message into a plain object. A frame of the wrong kind for the
 * encoding, bytes that do not decode, or a value that is not a map with a string `type` throw
 * ClientError('protocol'). Any `data` is accepted (a socket's message data is not typed), but
 * only a string or binary data can decode.
 * @param {unknown} data
 * @param {Encoding} encoding
 * @returns {WireMessage}
 */
export function decodeMessage(data, encoding) {
  const codec = encoding === 'json' ? null : msgpackCodec();
  /** @type {unknown} */
  let value;
  try {
    if (codec === null) {
      if (typeof data !== 'string') throw new Error('binary frame on the JSON subprotocol');
      value = JSON.parse(data);
    } else {
      if (typeof data === 'string') throw new Error('text frame on the MessagePack subprotocol');
      const bytes = asBytes(data);
      if (bytes === null) throw new Error(`unsupported frame data (${Object.prototype.toString.call(data)})`);
      value = codec.decode(bytes);
    }
  } catch (err) {
    throw new ClientError('protocol', `cannot decode a server message: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new ClientError('protocol', 'a server message is not a map');
  }
  if (!('type' in value) || typeof value.type !== 'string') throw new ClientError('protocol', 'a server message has no string `type`');
  // Checked just above: a map (not an array, not bytes) with a string `type`; TypeScript does
  // not carry the narrowing of `value.type` over to `value`.
  return /** @type {WireMessage} */ (value);
}
