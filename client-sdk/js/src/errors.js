// SPDX-License-Identifier: Apache-2.0
// Typed errors of the rankcast SDK: ServerError carries a code of PROTOCOL.md §3 exactly as the
// server sent it; ClientError names a failure the SDK itself detected (bad argument, closed
// client, full queue...). Both extend RankcastError, so one `instanceof` catches either.

/**
 * The error codes of PROTOCOL.md §3: stable name, whether the server closes the connection right
 * after, and whether the refused event should be sent again later (the SDK does so itself).
 */
export const SERVER_ERRORS = Object.freeze({
  4000: Object.freeze({ name: 'malformed', fatal: false, retryable: false }),
  4001: Object.freeze({ name: 'unknown_type', fatal: false, retryable: false }),
  4002: Object.freeze({ name: 'invalid_field', fatal: false, retryable: false }),
  4003: Object.freeze({ name: 'too_large', fatal: true, retryable: false }),
  4004: Object.freeze({ name: 'hello_required', fatal: false, retryable: false }),
  4005: Object.freeze({ name: 'hello_repeated', fatal: false, retryable: false }),
  4006: Object.freeze({ name: 'unsupported_version', fatal: true, retryable: false }),
  4007: Object.freeze({ name: 'wrong_frame_kind', fatal: false, retryable: false }),
  4008: Object.freeze({ name: 'too_many_errors', fatal: true, retryable: false }),
  4010: Object.freeze({ name: 'unauthorized', fatal: true, retryable: false }),
  4011: Object.freeze({ name: 'token_expired', fatal: true, retryable: false }),
  4012: Object.freeze({ name: 'unknown_item', fatal: false, retryable: false }),
  4013: Object.freeze({ name: 'anonymous_id_refused', fatal: true, retryable: false }),
  4020: Object.freeze({ name: 'rate_limited', fatal: false, retryable: true }),
  4021: Object.freeze({ name: 'too_many_subscriptions', fatal: false, retryable: false }),
  4022: Object.freeze({ name: 'batch_too_large', fatal: false, retryable: false }),
  4023: Object.freeze({ name: 'idle_timeout', fatal: true, retryable: false }),
  4040: Object.freeze({ name: 'unknown_surface', fatal: false, retryable: false }),
  4050: Object.freeze({ name: 'slow_consumer', fatal: true, retryable: false }),
  4500: Object.freeze({ name: 'internal', fatal: false, retryable: true }),
  4503: Object.freeze({ name: 'unavailable', fatal: false, retryable: true }),
});

/**
 * @typedef {keyof typeof SERVER_ERRORS} ServerErrorCode
 * @typedef {(typeof SERVER_ERRORS)[ServerErrorCode]['name']} ServerErrorName
 * @typedef {{readonly name: ServerErrorName, readonly fatal: boolean, readonly retryable: boolean}} ServerErrorInfo
 */

/** SERVER_ERRORS looked up by any number: a code of a newer server is simply not there. */
const SERVER_ERRORS_BY_NUMBER = /** @type {Readonly<Partial<Record<number, ServerErrorInfo>>>} */ (SERVER_ERRORS);

/**
 * Whether an event refused with `code` is sent again (rate limited, internal, unavailable).
 * @param {number} code
 * @returns {boolean}
 */
export function isRetryableCode(code) {
  return SERVER_ERRORS_BY_NUMBER[code]?.retryable === true;
}

/**
 * Base class of every error the SDK produces. `Code` narrows `code` in the subclasses.
 * @template {number|string} [Code=number|string]
 */
export class RankcastError extends Error {
  /**
   * @param {string} message
   * @param {Code} code
   * @param {{cause?: unknown}} [options]
   */
  constructor(message, code, options) {
    super(message, options);
    this.name = 'RankcastError';
    this.code = code;
  }
}

/**
 * An `error` message of the server (PROTOCOL.md §2.2), or a close with one of its codes.
 * @extends {RankcastError<number>}
 */
export class ServerError extends RankcastError {
  /**
   * @param {{code: number, name?: string, message?: string, id?: string, fatal?: boolean, about?: string, surface?: string, t?: number}} wire
   */
  constructor(wire) {
    const known = SERVER_ERRORS_BY_NUMBER[wire.code];
    const codeName = typeof wire.name === 'string' ? wire.name : (known?.name ?? 'unknown');
    const detail = typeof wire.message === 'string' ? wire.message : '';
    super(`rankcast server error ${wire.code} ${codeName}${detail ? `: ${detail}` : ''}`, wire.code);
    this.name = 'ServerError';
    this.codeName = codeName;
    this.serverMessage = detail;
    this.eventId = typeof wire.id === 'string' ? wire.id : undefined;
    this.about = typeof wire.about === 'string' ? wire.about : undefined;
    this.surface = typeof wire.surface === 'string' ? wire.surface : undefined;
    this.t = typeof wire.t === 'number' ? wire.t : undefined;
    this.fatal = wire.fatal === true;
    this.retryable = isRetryableCode(wire.code);
  }
}

/** Codes of ClientError, for documentation and tests. */
export const CLIENT_ERROR_CODES = Object.freeze(/** @type {const} */ ([
  'invalid_argument', // a bad event, subscription or option; nothing was sent
  'limit_exceeded', // more subscriptions or a longer list than welcome.limits allow
  'closed', // close() was called before the server acknowledged the event
  'queue_overflow', // the bounded offline queue dropped this (its oldest) event
  'timeout', // flush() did not see every event acknowledged in time
  'token', // the token provider threw or returned something unusable
  'storage', // the persisted event queue could not be read or written (it stays in memory)
  'protocol', // the server sent something this SDK cannot read
  'connection', // the connection failed before `welcome` (handshake error or timeout)
]));

/** @typedef {(typeof CLIENT_ERROR_CODES)[number]} ClientErrorCode */

/**
 * A failure the SDK detected itself; `code` is one of CLIENT_ERROR_CODES.
 * @extends {RankcastError<ClientErrorCode>}
 */
export class ClientError extends RankcastError {
  /**
   * @param {ClientErrorCode} code
   * @param {string} message
   * @param {{cause?: unknown}} [options]
   */
  constructor(code, message, options) {
    super(message, code, options);
    this.name = 'ClientError';
  }
}
