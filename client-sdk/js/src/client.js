// SPDX-License-Identifier: Apache-2.0
// RankcastClient: one logical session with a rankcast server over a WebSocket that comes and
// goes. It owns the connection state machine
//
//   closed ──connect()──▶ connecting ──welcome──▶ open ──lost──▶ reconnecting ──welcome──▶ open
//      ▲                      │ failed                             ▲     │ failed (backoff)
//      └──close() / fatal─────┴────────────────────────────────────┴─────┘
//
// and glues the parts together: Connection (one socket), Subscriptions (live lists), Delivery
// and Outbox (events, at-least-once). Every timer is a named slot of one TimerSet and every
// socket listener is counted, so stats() can prove that nothing leaks across reconnects.

import { fullJitterDelay } from './backoff.js';
import { CompactLists } from './compact.js';
import { Connection } from './connection.js';
import { loadMsgpack } from './codec.js';
import { Delivery } from './delivery.js';
import { Emitter } from './emitter.js';
import { ClientError, RankcastError, ServerError } from './errors.js';
import { randomEventId } from './ids.js';
import { DEFAULT_LIMITS, readServerMessage } from './incoming.js';
import { autoTzOffsetMin, resolveOptions } from './options.js';
import { authMessage, eventFields, helloMessage, pingMessage } from './outgoing.js';
import { Outbox } from './outbox.js';
import { Subscriptions } from './subscriptions.js';
import { MAX_TIMER_MS, refreshDelayMs, tokenExpiryMs } from './refresh.js';
import { TimerSet } from './timers.js';

/**
 * What the client hands to the application, in the client's own terms; index.d.ts declares the
 * same (test-support/types/published-vs-source.ts checks that they stay the same).
 * @typedef {import('./incoming.js').WelcomeInfo} WelcomeInfo
 * @typedef {import('./incoming.js').RecsList} RecsList
 * @typedef {import('./incoming.js').RecItem} RecItem
 * @typedef {import('./incoming.js').AuthInfo} AuthInfo
 * @typedef {import('./outgoing.js').TrackEvent} TrackEvent
 * @typedef {import('./outgoing.js').SubscribeOptions} SubscribeOptions
 * @typedef {import('./subscriptions.js').PublicSubscription} Subscription
 * @typedef {'connecting'|'open'|'reconnecting'|'closed'} ConnectionState
 * @typedef {'close'|'error'|'timeout'|'keepalive'|'token'|'drain'|'manual'} LostReason
 * @typedef {{attempt: number, delayMs: number, reason: LostReason, code?: number, error?: RankcastError}} ReconnectingInfo
 * @typedef {{code?: number, reason: string, error?: RankcastError}} ClosedInfo
 * @typedef {{
 *   state: {state: ConnectionState, previous: ConnectionState},
 *   connecting: {attempt: number},
 *   open: WelcomeInfo,
 *   reconnecting: ReconnectingInfo,
 *   closed: ClosedInfo,
 *   error: RankcastError,
 *   recs: RecsList,
 *   push: import('./incoming.js').PushMessage,
 *   drain: import('./incoming.js').DrainInfo,
 *   auth: AuthInfo,
 * }} ClientEvents
 * @typedef {Promise<string> & {readonly id: string}} TrackPromise
 * @typedef {{resolve: () => void, reject: (err: Error) => void, timer: string}} FlushWaiter
 */

/**
 * Close codes that carry a server error code of PROTOCOL.md §4 (1009 is 4003 too_large).
 * @type {Readonly<Partial<Record<number, number>>>}
 */
const CLOSE_CODE_ERRORS = { 1009: 4003, 4003: 4003, 4004: 4004, 4006: 4006, 4008: 4008, 4010: 4010, 4013: 4013, 4050: 4050 };

/** Timers that belong to one connection and die with it. */
const CONNECTION_TIMERS = ['handshake', 'ping', 'pong', 'drain', 'refresh'];

export class RankcastClient {
  /** @type {import('./options.js').ResolvedOptions} */
  #o;
  /** @type {import('./options.js').Clock} */
  #clock;
  /** @type {Emitter<ClientEvents>} */
  #events = new Emitter();
  /** @type {TimerSet} */
  #timers;
  /** @type {Outbox} */
  #outbox;
  /** @type {Delivery} */
  #delivery;
  /** @type {Subscriptions} */
  #subs;
  /** What this connection keeps for compact lists (compact.js). */
  #compact = new CompactLists();
  /** @type {ConnectionState} */
  #state = 'closed';
  #stopped = true; // no connection wanted: before connect(), after close() or a fatal error
  #refuseEvents = false; // after close() or a final failure, track() rejects until connect()
  /** @type {Connection|null} */
  #conn = null;
  #welcomed = false; // the current connection said welcome
  /** @type {{resolve: (info: AuthInfo) => void, reject: (err: Error) => void}[]} */
  #authWaiters = []; // refreshToken() calls awaiting auth_ok
  #gen = 0; // bumped per attempt: a token that resolves late for an old attempt is ignored
  #attempt = 0; // failed attempts since the last welcome, for the backoff
  /** @type {number|null} */
  #drainDeadline = null;
  /** @type {ServerError|null} */
  #fatalError = null;
  /** @type {WelcomeInfo|null} */
  #welcome = null;
  /** @type {string|undefined} */
  #assignedUser = undefined;
  // The server refused the configured `user` (4013: not an anonymous id it issued): from then
  // on this client goes by the id the server assigns instead.
  #userRefused = false;
  /** @type {{t: number, sentAt: number, rttMs: number|null}} */
  #ping = { t: 0, sentAt: 0, rttMs: null };
  #counter = { socketListeners: 0 };
  /** @type {Map<string, {version: number, items: Set<string>}>} surface → what trackImpressions() reported */
  #impressed = new Map();
  /** @type {Set<FlushWaiter>} */
  #flushWaiters = new Set();
  #flushSeq = 0;
  #tally = { attempts: 0, welcomes: 0, reconnects: 0 };
  /** @type {string|undefined} the token sent in the current connection's hello */
  #helloToken = undefined;
  /** @type {import('../index.js').TokenRequest['reason']} what the pending reconnect will tell the token provider */
  #reconnectWhy = 'reconnect';
  #watchingEnvironment = false; // listening to the browser's online / visibilitychange
  #onOnline = () => this.#wake('online');
  #onVisibilityChange = () => {
    if (globalThis.document?.visibilityState === 'visible') this.#wake('visible');
  };

  /** @param {import('../index.js').ClientOptions} options */
  constructor(options) {
    this.#o = resolveOptions(options);
    this.#clock = this.#o.clock;
    this.#timers = new TimerSet(this.#clock);
    this.#outbox = new Outbox({
      maxEvents: this.#o.maxQueue,
      storage: this.#o.storage,
      storageKey: this.#o.storageKey,
      onStorageError: (err) => this.#events.emit('error', new ClientError('storage', 'the event queue could not be read from or written to storage', { cause: err })),
    });
    this.#delivery = new Delivery({
      outbox: this.#outbox,
      timers: this.#timers,
      now: this.#clock.now,
      random: this.#clock.random,
      transport: {
        encode: (msg) => (this.#conn ? this.#conn.encode(msg) : ''),
        send: (data) => {
          if (this.#conn === null || !this.#welcomed) return false;
          this.#debug('send', { bytes: data.length });
          return this.#conn.sendEncoded(data);
        },
      },
      batchWindowMs: this.#o.batchWindowMs,
      immediateKinds: this.#o.immediateKinds,
      ackTimeoutMs: this.#o.ackTimeoutMs,
      retry: this.#o.retry,
      onClientError: (err) => this.#events.emit('error', err),
      onIdle: () => this.#settleFlushWaiters(),
    });
    this.#subs = new Subscriptions({
      send: (msg) => {
        // A surface subscribed again (or dropped) gets its next compact list whole.
        if ((msg.type === 'subscribe' || msg.type === 'unsubscribe') && typeof msg.surface === 'string') this.#compact.forget(msg.surface);
        this.#conn?.send(msg);
      },
      isOpen: () => this.#conn !== null && this.#welcomed,
      limits: () => this.#welcome?.limits ?? DEFAULT_LIMITS,
      onRemoved: (surface) => this.#impressed.delete(surface),
    });
    if (this.#o.autoConnect) {
      // After the caller's synchronous code, so listeners added right after createClient()
      // see 'connecting'; unless connect() or close() came first.
      queueMicrotask(() => {
        if (!this.#refuseEvents) this.connect();
      });
    }
  }

  // --- public state ---------------------------------------------------------------------------

  /** 'connecting' | 'open' | 'reconnecting' | 'closed' */
  get state() {
    return this.#state;
  }

  /** The user this client acts for: welcome.user once known, else the configured one (unless refused). */
  get user() {
    return this.#welcome?.user ?? (this.#userRefused ? undefined : this.#o.user);
  }

  /** What the server said in its last `welcome`, or null before the first. */
  get welcome() {
    return this.#welcome;
  }

  /**
   * Adds a listener; returns a function that removes it.
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(value: ClientEvents[K]) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    return this.#events.on(type, listener);
  }

  /**
   * Like on(), for the next event only.
   * @template {keyof ClientEvents} K
   * @param {K} type
   * @param {(value: ClientEvents[K]) => void} listener
   * @returns {() => void}
   */
  once(type, listener) {
    return this.#events.once(type, listener);
  }

  // --- connection -----------------------------------------------------------------------------

  /** Starts connecting (a no-op unless closed). autoConnect (the default) calls it. */
  connect() {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#refuseEvents = false;
    this.#attempt = 0;
    this.#watchEnvironment(true);
    this.#setState('connecting');
    this.#events.emit('connecting', { attempt: 0 });
    this.#beginAttempt('initial');
  }

  /** Drops the current connection (if any) and connects again at once, without backoff. */
  reconnect() {
    if (this.#stopped) {
      this.connect();
      return;
    }
    this.#attempt = 0;
    this.#drainDeadline = null;
    this.#gen++;
    this.#lose({ reason: 'manual', immediate: true });
  }

  /**
   * Closes for good (until connect()). Pending track() promises reject with
   * ClientError('closed'); their events stay queued (and stored, in a browser) and go out on the
   * next connect() or with the next client on the same storage. Resolves once the socket closed.
   * @returns {Promise<void>}
   */
  close() {
    this.#refuseEvents = true;
    const conn = this.#conn;
    const wasStopped = this.#stopped;
    this.#stopped = true;
    this.#gen++;
    this.#conn = null;
    this.#welcomed = false;
    this.#delivery.stop();
    this.#timers.clearAll();
    this.#watchEnvironment(false);
    const err = new ClientError('closed', 'the client was closed before the server acknowledged the event');
    this.#rejectPending(err);
    this.#setState('closed');
    if (!wasStopped) this.#events.emit('closed', { code: 1000, reason: 'client closed' });
    return conn ? conn.close(1000, 'client closed') : Promise.resolve();
  }

  /** @param {import('../index.js').TokenRequest['reason']} reason */
  #beginAttempt(reason) {
    const gen = ++this.#gen;
    this.#tally.attempts++;
    this.#timers.set('handshake', this.#o.connectTimeoutMs, () =>
      this.#lose({ reason: 'timeout', error: new ClientError('connection', `no welcome within ${this.#o.connectTimeoutMs} ms`), hard: true }),
    );
    // The MessagePack codec is loaded on the first msgpack attempt (at once after that), in
    // parallel with the token; a failed load counts as a failed attempt.
    const codecReady = this.#o.encoding === 'msgpack' ? loadMsgpack() : null;
    this.#resolveToken(reason).then(
      (token) => {
        if (gen !== this.#gen || this.#stopped) return;
        if (codecReady === null) this.#openSocket(token);
        else codecReady.then(() => gen === this.#gen && !this.#stopped && this.#openSocket(token), (err) => this.#codecFailed(gen, err));
      },
      (err) => {
        if (gen !== this.#gen || this.#stopped) return;
        const error = err instanceof ClientError ? err : new ClientError('token', 'tokenProvider failed', { cause: err });
        this.#events.emit('error', error);
        this.#lose({ reason: 'token', error });
      },
    );
    // Observed here too, so a load that fails while the token is awaited is never unhandled.
    codecReady?.catch(() => {});
  }

  /**
   * @param {number} gen
   * @param {unknown} err
   */
  #codecFailed(gen, err) {
    if (gen !== this.#gen || this.#stopped) return;
    const error = err instanceof ClientError ? err : new ClientError('connection', 'cannot load the MessagePack codec', { cause: err });
    this.#events.emit('error', error);
    this.#lose({ reason: 'error', error });
  }

  /**
   * @param {import('../index.js').TokenRequest['reason']} reason
   * @returns {Promise<string|undefined>}
   */
  async #resolveToken(reason) {
    if (!this.#o.tokenProvider) return this.#o.token;
    const token = await this.#o.tokenProvider({ reason, attempt: this.#attempt });
    if (token != null && typeof token !== 'string') throw new ClientError('token', 'tokenProvider must resolve to a string, null or undefined');
    return token ?? undefined;
  }

  /** @param {string|undefined} token */
  #helloMessage(token) {
    return helloMessage({
      token,
      // Without a configured user, the id the server assigned (signed, on servers that issue
      // anonymous ids) is presented again on every reconnect, so the session (and
      // de-duplication of re-sent events) continues.
      user: this.#userRefused ? this.#assignedUser : (this.#o.user ?? this.#assignedUser),
      device: this.#o.device,
      locale: this.#o.locale,
      tzOffsetMin: this.#o.tzOffsetMin === undefined ? autoTzOffsetMin() : (this.#o.tzOffsetMin ?? undefined),
      consent: this.#o.consent,
    });
  }

  /** @param {string|undefined} token */
  #openSocket(token) {
    this.#helloToken = token;
    let hello;
    try {
      hello = this.#helloMessage(token);
    } catch (err) {
      const error = new ClientError('token', `unusable token: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
      this.#events.emit('error', error);
      this.#lose({ reason: 'token', error });
      return;
    }
    /** @type {Connection|null} */
    let conn = null;
    const current = () => conn !== null && this.#conn === conn;
    try {
      conn = new Connection({
        WebSocket: this.#o.WebSocket,
        url: this.#o.url,
        encoding: this.#o.encoding,
        counter: this.#counter,
        onOpen: () => current() && conn?.send(hello),
        onSend: (msg) => this.#debug('send', { type: msg.type }),
        onMessage: (msg) => current() && this.#onMessage(msg),
        onBadMessage: (err) => current() && this.#onBadMessage(err),
        onClose: (info) => current() && this.#lose({ reason: 'close', code: info.code, closeReason: info.reason, alreadyClosed: true }),
      });
    } catch (err) {
      this.#lose({ reason: 'error', error: new ClientError('connection', 'cannot create a WebSocket', { cause: err }) });
      return;
    }
    this.#conn = conn;
  }

  /**
   * The connection is gone or given up: clean up after it, then reconnect (with backoff, or
   * at the drain deadline) unless the client is stopped or the failure is final.
   * @param {{reason: LostReason, code?: number, closeReason?: string, error?: RankcastError, immediate?: boolean,
   *   alreadyClosed?: boolean, hard?: boolean}} lost
   */
  #lose({ reason, code, closeReason = '', error, immediate = false, alreadyClosed = false, hard = false }) {
    this.#debug('lost', { reason, code, error: error?.message });
    const conn = this.#conn;
    this.#conn = null;
    this.#welcomed = false;
    if (conn && !alreadyClosed) conn.close(1000, reason, hard);
    for (const name of CONNECTION_TIMERS) this.#timers.clear(name);
    for (const w of this.#authWaiters.splice(0)) {
      w.reject(error ?? this.#fatalError ?? new ClientError('connection', 'the connection closed before the token was accepted'));
    }
    this.#delivery.stop();
    if (this.#stopped) return;
    const err = error ?? this.#fatalError ?? closeCodeError(code);
    this.#fatalError = null;
    if (err instanceof ServerError && (err.code === 4006 || (err.code === 4010 && !this.#o.tokenProvider))) {
      // Trying again cannot help: the protocol version is refused, or the only token is.
      this.#stopped = true;
      this.#refuseEvents = true;
      this.#watchEnvironment(false);
      this.#rejectPending(err);
      this.#setState('closed');
      this.#events.emit('closed', { code, reason: closeReason, error: err });
      return;
    }
    if (err instanceof ServerError && err.code === 4013) {
      // The anonymous id is not one the server issued (made up, from before ids were signed,
      // or signed by a key it no longer holds): forget it and come back at once without one;
      // the welcome then brings a fresh id ('open' tells the app, to store it instead).
      this.#assignedUser = undefined;
      this.#userRefused = true;
      immediate = true;
    }
    this.#scheduleReconnect({ reason, code, error: err ?? undefined, immediate });
  }

  /** @param {{reason: LostReason, code: number|undefined, error: RankcastError|undefined, immediate: boolean}} lost */
  #scheduleReconnect({ reason, code, error, immediate }) {
    let delayMs;
    if (immediate) delayMs = 0;
    else if (this.#drainDeadline !== null) delayMs = Math.max(0, Math.ceil(this.#drainDeadline - this.#clock.now()));
    else delayMs = fullJitterDelay(this.#attempt, this.#o.reconnect, this.#clock.random);
    this.#drainDeadline = null;
    this.#attempt++;
    this.#tally.reconnects++;
    this.#setState('reconnecting');
    /** @type {ReconnectingInfo} */
    const info = { attempt: this.#attempt, delayMs, reason };
    if (code !== undefined) info.code = code;
    if (error !== undefined) info.error = error;
    this.#events.emit('reconnecting', info);
    // After 4010 or 4011 the token provider is told, so it fetches a fresh token, not a cached one.
    const why = error instanceof ServerError && (error.code === 4010 || error.code === 4011) ? 'unauthorized' : 'reconnect';
    this.#reconnectWhy = why;
    this.#debug('reconnect', { attempt: this.#attempt, delayMs, why });
    this.#timers.set('reconnect', delayMs, () => this.#beginAttempt(why));
  }

  /**
   * The browser came back online, or the page became visible: a reconnect waiting out its
   * backoff starts now (the network that failed is likely back; a hidden tab's timers may have
   * been throttled). An attempt under way, or an open connection, is left alone.
   * @param {'online'|'visible'} why
   */
  #wake(why) {
    if (this.#stopped || this.#state !== 'reconnecting' || !this.#timers.has('reconnect')) return;
    this.#debug('wake', { why });
    this.#timers.clear('reconnect');
    this.#beginAttempt(this.#reconnectWhy);
  }

  /**
   * Listens (or stops listening) to `online` on the global scope and `visibilitychange` on the
   * document, where they exist: a browser page or worker; Node and React Native have neither.
   * @param {boolean} on
   */
  #watchEnvironment(on) {
    if (on === this.#watchingEnvironment) return;
    this.#watchingEnvironment = on;
    const scope = /** @type {Partial<Pick<EventTarget, 'addEventListener'|'removeEventListener'>>} */ (globalThis);
    const doc = /** @type {Partial<Pick<EventTarget, 'addEventListener'|'removeEventListener'>>|undefined} */ (globalThis.document);
    if (on) {
      if (typeof scope.addEventListener === 'function') scope.addEventListener('online', this.#onOnline);
      if (typeof doc?.addEventListener === 'function') doc.addEventListener('visibilitychange', this.#onVisibilityChange);
    } else {
      if (typeof scope.removeEventListener === 'function') scope.removeEventListener('online', this.#onOnline);
      if (typeof doc?.removeEventListener === 'function') doc.removeEventListener('visibilitychange', this.#onVisibilityChange);
    }
  }

  /**
   * Reports to the `debug` option; a hook that throws is ignored (logging must not break the client).
   * @param {string} event
   * @param {Record<string, unknown>} detail
   */
  #debug(event, detail) {
    if (!this.#o.debug) return;
    try {
      this.#o.debug(event, detail);
    } catch {
      // ignored, as documented
    }
  }

  /**
   * With a token provider, refreshes the session's token `refreshAheadMs` before `expMs` (see
   * refreshDelayMs). The timer is a connection timer: a new connection sends a fresh hello.
   * @param {number|null} expMs
   */
  #scheduleRefresh(expMs) {
    if (!this.#o.tokenProvider || expMs === null) return;
    const delayMs = refreshDelayMs(expMs, Date.now(), this.#o.refreshAheadMs);
    this.#debug('refresh', { inMs: delayMs, expMs });
    // Beyond setTimeout's range, wake up at its end and work it out again.
    if (delayMs > MAX_TIMER_MS) this.#timers.set('refresh', MAX_TIMER_MS, () => this.#scheduleRefresh(expMs));
    else this.#timers.set('refresh', delayMs, () => this.#refreshNow());
  }

  #refreshNow() {
    this.refreshToken().catch((err) => {
      // A refused token closes the connection (4010) and the reconnect asks the provider again;
      // a lost connection reconnects anyway. A provider that failed is reported, and the
      // server's 4011 at expiry reconnects.
      if (err instanceof RankcastError && !(err instanceof ClientError && err.code === 'token')) return;
      this.#events.emit('error', err instanceof ClientError ? err : new ClientError('token', 'tokenProvider failed', { cause: err }));
    });
  }

  /** @param {ConnectionState} next */
  #setState(next) {
    if (next === this.#state) return;
    const previous = this.#state;
    this.#state = next;
    this.#debug('state', { state: next, previous });
    this.#events.emit('state', { state: next, previous });
  }

  // --- server messages ------------------------------------------------------------------------

  /** @param {import('./codec.js').WireMessage} raw */
  #onMessage(raw) {
    this.#debug('receive', { type: raw.type });
    let msg;
    try {
      msg = readServerMessage(raw);
    } catch (err) {
      this.#onBadMessage(err);
      return;
    }
    if (msg === null) return; // a message type of a newer protocol revision
    if (msg.type === 'welcome') this.#onWelcome(withoutType(msg));
    else if (msg.type === 'error') this.#onServerError(withoutType(msg));
    else if (msg.type === 'pong') this.#onPong(withoutType(msg));
    else if (!this.#welcomed) return; // nothing else is expected before welcome
    else if (msg.type === 'ack') this.#delivery.onAck(msg.ids);
    else if (msg.type === 'recs') this.#onRecs(withoutType(msg));
    else if (msg.type === 'recs_delta') this.#onRecsDelta(withoutType(msg));
    else if (msg.type === 'drain') this.#onDrain(withoutType(msg));
    else if (msg.type === 'push') this.#events.emit('push', withoutType(msg));
    else if (msg.type === 'auth_ok') this.#onAuthOk(withoutType(msg));
  }

  /** @param {unknown} err */
  #onBadMessage(err) {
    const error = err instanceof RankcastError ? err : new ClientError('protocol', String(err), { cause: err });
    this.#events.emit('error', error);
    // Before welcome, a connection that speaks garbage is no use; after, one bad message is
    // reported and skipped.
    if (!this.#welcomed) this.#lose({ reason: 'error', error, hard: true });
  }

  /** @param {WelcomeInfo} welcome */
  #onWelcome(welcome) {
    if (this.#welcomed) return; // the server sends one per connection
    this.#timers.clear('handshake');
    this.#welcomed = true;
    this.#attempt = 0;
    this.#welcome = welcome;
    if (this.#o.user === undefined || this.#userRefused) this.#assignedUser = welcome.user;
    this.#tally.welcomes++;
    this.#compact.reset();
    this.#subs.resubscribeAll();
    this.#delivery.start(welcome.limits);
    this.#startKeepalive();
    this.#setState('open');
    this.#scheduleRefresh(this.#helloToken === undefined ? null : tokenExpiryMs(this.#helloToken));
    this.#events.emit('open', welcome);
  }

  /** @param {import('./incoming.js').ErrorMessage} wire */
  #onServerError(wire) {
    const err = new ServerError(wire);
    if (err.fatal) this.#fatalError = err; // the close that follows reports it
    if (this.#welcomed) this.#delivery.onError(wire);
    this.#events.emit('error', err);
    // An error before welcome that does not close the connection still means no welcome.
    if (!this.#welcomed && !err.fatal) this.#lose({ reason: 'error', error: err });
  }

  /** @param {AuthInfo} info */
  #onAuthOk(info) {
    const waiters = this.#authWaiters.splice(0);
    for (const w of waiters) w.resolve(info);
    this.#scheduleRefresh(info.expMs);
    this.#events.emit('auth', info);
  }

  /**
   * Sends a fresh token for the live session (same subject, later expiry), so a long session
   * outlives its token without reconnecting. Without an argument the tokenProvider is asked
   * (reason 'refresh'). Resolves to {expMs} when the server accepted it; a refused token ends
   * the connection (4010) and rejects.
   * @param {string} [token]
   * @returns {Promise<AuthInfo>}
   */
  async refreshToken(token) {
    const fresh = token ?? (this.#o.tokenProvider ? await this.#o.tokenProvider({ reason: 'refresh', attempt: 0 }) : undefined);
    if (typeof fresh !== 'string' || fresh === '') throw new ClientError('token', 'refreshToken needs a token or a tokenProvider that gives one');
    const msg = authMessage(fresh);
    const conn = this.#conn;
    if (!conn || !this.#welcomed) throw new ClientError('connection', 'no open session to refresh');
    return new Promise((resolve, reject) => {
      this.#authWaiters.push({ resolve, reject });
      conn.send(msg);
    });
  }

  /**
   * A compact list: applied to the list held, delivered whole. One that does not apply is
   * reported and the surface subscribed again (the server answers with the whole list).
   * @param {import('./incoming.js').RecsDelta} delta
   */
  #onRecsDelta(delta) {
    if (!this.#subs.surfaces.has(delta.surface)) return; // unsubscribed while it travelled
    let list;
    try {
      list = this.#compact.apply(delta);
    } catch (err) {
      this.#events.emit('error', err instanceof RankcastError ? err : new ClientError('protocol', String(err), { cause: err }));
      this.#subs.resubscribe(delta.surface);
      return;
    }
    if (list !== null) this.#onRecs(list);
  }

  /** @param {RecsList} list */
  #onRecs(list) {
    if (this.#subs.deliver(list)) this.#events.emit('recs', list);
  }

  /** @param {import('./incoming.js').DrainInfo} drain */
  #onDrain(drain) {
    const delayMs = drain.reconnectAfterMs + Math.floor(this.#clock.random() * this.#o.drainJitterMs);
    this.#drainDeadline = this.#clock.now() + delayMs;
    this.#events.emit('drain', drain);
    // The server closes with 1001 shortly; should it not, leave at the deadline anyway. The
    // timer firing is the deadline: timers may fire a fraction of a millisecond early, which
    // must not become a 1 ms wait.
    this.#timers.set('drain', delayMs, () => this.#lose({ reason: 'drain', immediate: true }));
  }

  #startKeepalive() {
    if (this.#o.pingIntervalMs > 0) this.#timers.set('ping', this.#o.pingIntervalMs, () => this.#sendKeepalivePing());
  }

  #sendKeepalivePing() {
    this.#ping.t = Date.now();
    this.#ping.sentAt = this.#clock.now();
    this.#conn?.send(pingMessage(this.#ping.t));
    this.#timers.set('pong', this.#o.pongTimeoutMs, () =>
      this.#lose({ reason: 'keepalive', error: new ClientError('connection', `no pong within ${this.#o.pongTimeoutMs} ms`), hard: true }),
    );
  }

  /** @param {import('./incoming.js').Pong} pong */
  #onPong(pong) {
    if (pong.t !== this.#ping.t || !this.#timers.has('pong')) return;
    this.#ping.rttMs = this.#clock.now() - this.#ping.sentAt;
    this.#timers.clear('pong');
    this.#startKeepalive();
  }

  // --- lists ----------------------------------------------------------------------------------

  /**
   * Subscribes to a live list. `onRecs` gets the current list at once (after the server
   * answers) and every newer one; after a reconnect the list comes again.
   * @overload
   * @param {string} surface
   * @param {(list: RecsList) => void} onRecs
   * @returns {Subscription}
   */
  /**
   * @overload
   * @param {string} surface
   * @param {SubscribeOptions} options
   * @param {(list: RecsList) => void} onRecs
   * @returns {Subscription}
   */
  /**
   * subscribe(surface, onRecs) and subscribe(surface, options, onRecs) are both accepted.
   * @param {string} surface
   * @param {SubscribeOptions | ((list: RecsList) => void)} [optionsOrOnRecs]
   * @param {(list: RecsList) => void} [maybeOnRecs]
   * @returns {Subscription}
   */
  subscribe(surface, optionsOrOnRecs, maybeOnRecs) {
    /** @type {[SubscribeOptions, ((list: RecsList) => void) | undefined]} */
    const [params, onRecs] = typeof optionsOrOnRecs === 'function' ? [{}, optionsOrOnRecs] : [optionsOrOnRecs ?? {}, maybeOnRecs];
    return this.#subs.add(surface, params, onRecs);
  }

  // --- events ---------------------------------------------------------------------------------

  /**
   * Queues one event; the promise resolves with its id once the server acknowledged it. The
   * id is also on the promise, as `.id`, at once.
   * @param {TrackEvent} event
   * @returns {TrackPromise}
   */
  track(event) {
    /** @type {string|undefined} */
    let id;
    let fields;
    try {
      if (event === null || typeof event !== 'object') throw new ClientError('invalid_argument', 'track needs an event object');
      id = event.id ?? randomEventId();
      const tsMs = event.tsMs ?? (this.#o.timestamps ? Date.now() : undefined);
      fields = eventFields({ ...event, id, tsMs });
      if (this.#refuseEvents) throw new ClientError('closed', 'the client is closed');
    } catch (err) {
      if (err instanceof ClientError && err.code === 'invalid_argument') this.#events.emit('error', err);
      return withId(Promise.reject(err), id);
    }
    return withId(this.#delivery.enqueue(fields), id);
  }

  /**
   * Reports impressions of the items of a pushed list (all of them, or `items`), each once per
   * list version: calling it again for the same list sends only what was not reported yet.
   * @param {RecsList} list
   * @param {ReadonlyArray<string|RecItem>} [items]
   * @returns {Promise<string[]>}
   */
  trackImpressions(list, items) {
    checkList(list);
    const ids = (items ?? list.items).map((it) => (typeof it === 'string' ? it : it?.item));
    let seen = this.#impressed.get(list.surface);
    if (!seen || seen.version !== list.version) {
      seen = { version: list.version, items: new Set() };
      this.#impressed.set(list.surface, seen);
    }
    const fresh = ids.filter((item) => !seen.items.has(item));
    const tracked = fresh.map((item) => this.track({ kind: 'impression', item, surface: list.surface }));
    for (const item of fresh) seen.items.add(item);
    return Promise.all(tracked);
  }

  /**
   * Reports a click on an item of a pushed list (the event carries the list's surface).
   * @param {RecsList} list
   * @param {string|RecItem} item
   * @returns {TrackPromise}
   */
  trackClick(list, item) {
    checkList(list);
    return this.track({ kind: 'click', item: typeof item === 'string' ? item : item?.item, surface: list.surface });
  }

  /**
   * Sends whatever waits now (skipping the batch window) and resolves once every queued event
   * is acknowledged; rejects with ClientError('timeout') after `timeoutMs` if given.
   * @param {number} [timeoutMs]
   * @returns {Promise<void>}
   */
  flush(timeoutMs) {
    if (this.#outbox.size === 0) return Promise.resolve();
    if (this.#refuseEvents) return Promise.reject(new ClientError('closed', 'the client is closed'));
    this.#delivery.flush();
    return new Promise((resolve, reject) => {
      const waiter = { resolve, reject, timer: `flush-wait-${++this.#flushSeq}` };
      this.#flushWaiters.add(waiter);
      if (timeoutMs !== undefined) {
        this.#timers.set(waiter.timer, timeoutMs, () => {
          this.#flushWaiters.delete(waiter);
          reject(new ClientError('timeout', `${this.#outbox.size} events not acknowledged within ${timeoutMs} ms`));
        });
      }
    });
  }

  #settleFlushWaiters() {
    for (const w of this.#flushWaiters) {
      this.#timers.clear(w.timer);
      w.resolve();
    }
    this.#flushWaiters.clear();
  }

  /** @param {Error} err */
  #rejectPending(err) {
    for (const w of this.#outbox.takeAllWaiters()) w.reject(err);
    for (const w of this.#flushWaiters) {
      this.#timers.clear(w.timer);
      w.reject(err);
    }
    this.#flushWaiters.clear();
  }

  /** Counters for monitoring and for leak tests: all of them are cheap to read. */
  stats() {
    return {
      state: this.#state,
      timers: this.#timers.size,
      socketListeners: this.#counter.socketListeners,
      listeners: this.#events.listenerCount(),
      queued: this.#outbox.size,
      inFlight: this.#outbox.inFlightCount,
      subscriptions: this.#subs.count,
      staleListsDropped: this.#subs.staleDropped,
      attempts: this.#tally.attempts,
      welcomes: this.#tally.welcomes,
      reconnects: this.#tally.reconnects,
      rttMs: this.#ping.rttMs,
      ...this.#delivery.counters,
    };
  }
}

/**
 * A ServerError for a close code that carries one, or undefined.
 * @param {number|undefined} code
 */
function closeCodeError(code) {
  const errorCode = code === undefined ? undefined : CLOSE_CODE_ERRORS[code];
  return errorCode === undefined ? undefined : new ServerError({ code: errorCode, message: `connection closed with code ${code}`, fatal: true });
}

/**
 * A message as the application sees it: without its `type`.
 * @template {{type: string}} M
 * @param {M} msg
 * @returns {Omit<M, 'type'>}
 */
function withoutType(msg) {
  const { type, ...body } = msg;
  return body;
}

/**
 * @param {Promise<string>} promise
 * @param {string|undefined} id  undefined only when track() was given no object at all
 * @returns {TrackPromise}
 */
function withId(promise, id) {
  // A fire-and-forget track() must not become an unhandled rejection: failures are also
  // visible on the client's 'error' event. Awaiting the promise still sees the rejection.
  promise.catch(() => {});
  // defineProperty's typing returns the object's type unchanged; `id` is added here. It is a
  // string unless a JavaScript caller passed something that is not an event (then the promise
  // rejects with invalid_argument).
  return /** @type {TrackPromise} */ (Object.defineProperty(promise, 'id', { value: id, enumerable: true }));
}

/** @param {RecsList} list  checked all the same: a JavaScript caller may pass anything */
function checkList(list) {
  if (list === null || typeof list !== 'object' || typeof list.surface !== 'string' || !Array.isArray(list.items)) {
    throw new ClientError('invalid_argument', 'expected a list delivered by subscribe() (with surface, version and items)');
  }
}
