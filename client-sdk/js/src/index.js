// SPDX-License-Identifier: Apache-2.0
// Public entry point of the rankcast JavaScript SDK. See README.md for the guide and
// index.d.ts for the typed API.

import { RankcastClient } from './client.js';

export { RankcastClient } from './client.js';
export { SUBPROTOCOLS, decodeMessage, encodeMessage, loadMsgpack } from './codec.js';
export { CLIENT_ERROR_CODES, ClientError, RankcastError, SERVER_ERRORS, ServerError, isRetryableCode } from './errors.js';
export { DEFAULT_LIMITS } from './incoming.js';
export { DEFAULT_OPTIONS } from './options.js';
export { DEVICES, EVENT_KINDS, PROTOCOL_VERSION } from './outgoing.js';

/**
 * Creates a client and, unless `autoConnect: false`, starts connecting.
 * @param {import('../index.js').ClientOptions} options
 * @returns {RankcastClient}
 */
export function createClient(options) {
  return new RankcastClient(options);
}
