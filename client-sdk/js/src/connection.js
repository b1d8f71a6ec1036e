// SPDX-License-Identifier: Apache-2.0
// One WebSocket connection attempt: creates the socket for the chosen subprotocol, decodes its
// messages and reports open/message/close to the client exactly once each, until it is
// detached. Detaching removes every listener at once, so a socket the client has given up on
// can never call back into a newer connection's state. Listener counts are kept for the leak
// checks in client.stats().

import { SUBPROTOCOLS, decodeMessage, encodeMessage } from './codec.js';

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;
/** The socket events the client listens to, in the order the listeners are added. */
const SOCKET_EVENTS = /** @type {const} */ (['open', 'message', 'close', 'error']);

/**
 * @typedef {import('./codec.js').WireMessage} WireMessage
 * @typedef {import('../index.js').WebSocketEventLike} WebSocketEventLike
 * @typedef {import('../index.js').WebSocketLike & {terminate?: () => void}} Socket  `ws` adds terminate()
 */

export class Connection {
  /**
   * @param {{WebSocket: import('../index.js').WebSocketConstructor, url: string,
   *   encoding: import('./codec.js').Encoding, onOpen: () => void, onMessage: (msg: WireMessage) => void,
   *   onBadMessage: (err: Error) => void, onClose: (info: {code: number, reason: string}) => void,
   *   onSend?: (msg: WireMessage) => void,
   *   counter: {socketListeners: number}}} o  counter: the owner's tally of attached listeners
   */
  constructor(o) {
    this.o = o;
    this.encoding = o.encoding;
    this.attached = false;
    /** @type {(() => void)[]} */
    this.closeWaiters = [];
    /** @type {Socket} */
    this.socket = new o.WebSocket(o.url, SUBPROTOCOLS[o.encoding]);
    try {
      this.socket.binaryType = 'arraybuffer';
    } catch {
      // Read-only in some implementations; decodeMessage accepts every binary shape.
    }
    /** @type {Record<(typeof SOCKET_EVENTS)[number], (ev: WebSocketEventLike) => void>} */
    this.handlers = {
      open: () => this.o.onOpen(),
      message: (ev) => this.handleMessage(ev),
      close: (ev) => this.handleClose(ev),
      // Every failure is followed by `close`, which is where it is handled. The listener must
      // exist anyway: `ws` throws an `error` event that nobody listens to.
      error: () => {},
    };
    this.attach();
  }

  attach() {
    for (const type of SOCKET_EVENTS) this.socket.addEventListener(type, this.handlers[type]);
    this.attached = true;
    this.o.counter.socketListeners += 4;
  }

  /** Removes the client's listeners; a socket still closing keeps a self-removing guard. */
  detach() {
    if (!this.attached) return;
    for (const type of SOCKET_EVENTS) this.socket.removeEventListener(type, this.handlers[type]);
    this.attached = false;
    this.o.counter.socketListeners -= 4;
    if (this.socket.readyState !== CLOSED) this.guardUntilClosed();
    else this.settleCloseWaiters();
  }

  /**
   * Until the socket reports `close`, keep a no-op `error` listener (see handlers.error) and
   * settle close() promises on `close`; then remove both.
   */
  guardUntilClosed() {
    const onError = () => {};
    const onClose = () => {
      this.socket.removeEventListener('error', onError);
      this.socket.removeEventListener('close', onClose);
      this.o.counter.socketListeners -= 2;
      this.settleCloseWaiters();
    };
    this.socket.addEventListener('error', onError);
    this.socket.addEventListener('close', onClose);
    this.o.counter.socketListeners += 2;
  }

  /**
   * A browser warns on its console about a socket closed while it connects ("closed before the
   * connection is established"), and a page's console should stay clean: such a socket is
   * closed as soon as it opens (or ends by itself first).
   * @param {number} code
   * @param {string} reason
   */
  closeOnOpen(code, reason) {
    const onOpen = () => {
      done();
      this.socket.close(code, reason);
    };
    const done = () => {
      this.socket.removeEventListener('open', onOpen);
      this.socket.removeEventListener('close', done);
      this.o.counter.socketListeners -= 2;
    };
    this.socket.addEventListener('open', onOpen);
    this.socket.addEventListener('close', done);
    this.o.counter.socketListeners += 2;
  }

  settleCloseWaiters() {
    for (const resolve of this.closeWaiters.splice(0)) resolve();
  }

  /** @param {WebSocketEventLike} ev */
  handleMessage(ev) {
    let msg;
    try {
      msg = decodeMessage(ev.data, this.encoding);
    } catch (err) {
      this.o.onBadMessage(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    this.o.onMessage(msg);
  }

  /** @param {WebSocketEventLike} ev */
  handleClose(ev) {
    this.detach();
    this.o.onClose({ code: typeof ev.code === 'number' ? ev.code : 1006, reason: typeof ev.reason === 'string' ? ev.reason : '' });
  }

  /** @param {WireMessage} msg */
  encode(msg) {
    return encodeMessage(msg, this.encoding);
  }

  /**
   * Sends encoded data; false when the socket is not open (the caller keeps the data).
   * @param {Uint8Array|string} data
   */
  sendEncoded(data) {
    if (!this.attached || this.socket.readyState !== OPEN) return false;
    try {
      this.socket.send(data);
      return true;
    } catch {
      return false;
    }
  }

  /** @param {WireMessage} msg */
  send(msg) {
    this.o.onSend?.(msg);
    return this.sendEncoded(this.encode(msg));
  }

  /**
   * Detaches and closes. `hard` drops the TCP connection at once where the implementation can
   * (`ws`'s terminate()), for a peer that stopped answering; otherwise a close handshake.
   * Resolves once the socket has closed.
   * @returns {Promise<void>}
   */
  close(code = 1000, reason = '', hard = false) {
    /** @type {Promise<void>} */
    const closed = new Promise((resolve) => {
      if (this.socket.readyState === CLOSED) resolve();
      else this.closeWaiters.push(resolve);
    });
    this.detach();
    try {
      if (typeof this.socket.terminate === 'function') {
        if (hard) this.socket.terminate();
        else this.socket.close(code, reason);
      } else if (this.socket.readyState === CONNECTING) {
        this.closeOnOpen(code, reason);
      } else {
        this.socket.close(code, reason);
      }
    } catch {
      // Closing a socket that is still connecting throws in some implementations; it is
      // detached, so whatever it does next reaches no one but the guard.
      try {
        if (typeof this.socket.terminate === 'function') this.socket.terminate();
      } catch {
        // Nothing more to do.
      }
    }
    return closed;
  }
}
