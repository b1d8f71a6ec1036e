// SPDX-License-Identifier: Apache-2.0
// Type declarations of the rankcast JavaScript SDK (hand-written; the package ships plain ESM).
// The wire protocol these types describe is proto/PROTOCOL.md, version 1.

/** Protocol version spoken by this SDK (`hello.v`). */
export declare const PROTOCOL_VERSION: 1;

/** The two subprotocols of PROTOCOL.md §1. */
export declare const SUBPROTOCOLS: Readonly<{ msgpack: 'rankcast.v1.msgpack'; json: 'rankcast.v1.json' }>;

export type Encoding = 'msgpack' | 'json';

/** Event kinds of PROTOCOL.md §2.1. */
export type EventKind = 'view' | 'click' | 'cart' | 'purchase' | 'rating' | 'dwell' | 'search' | 'impression' | 'dismiss';
export declare const EVENT_KINDS: readonly EventKind[];

export type Device = 'desktop' | 'mobile' | 'tablet' | 'other';
export declare const DEVICES: readonly Device[];

/** Connection states: see README "Connection states". */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';

// ---------------------------------------------------------------------------------------------
// Errors

/** Server error codes of PROTOCOL.md §3. */
export type ServerErrorCode =
  | 4000 | 4001 | 4002 | 4003 | 4004 | 4005 | 4006 | 4007 | 4008 | 4010 | 4011 | 4012 | 4013
  | 4020 | 4021 | 4022 | 4023 | 4040 | 4050 | 4500 | 4503;

export type ServerErrorName =
  | 'malformed' | 'unknown_type' | 'invalid_field' | 'too_large' | 'hello_required' | 'hello_repeated'
  | 'unsupported_version' | 'wrong_frame_kind' | 'too_many_errors' | 'unauthorized' | 'token_expired'
  | 'unknown_item' | 'anonymous_id_refused' | 'rate_limited' | 'too_many_subscriptions' | 'batch_too_large' | 'idle_timeout'
  | 'unknown_surface' | 'slow_consumer' | 'internal' | 'unavailable';

export interface ServerErrorInfo {
  readonly name: ServerErrorName;
  /** The server closes the connection right after. */
  readonly fatal: boolean;
  /** An event refused with this code is sent again by the SDK (4020, 4500, 4503). */
  readonly retryable: boolean;
}

export declare const SERVER_ERRORS: Readonly<Record<ServerErrorCode, ServerErrorInfo>>;

/** Whether an event refused with `code` is retried: 4020, 4500 or 4503. */
export declare function isRetryableCode(code: number): boolean;

/** Codes of errors the SDK detects itself. */
export type ClientErrorCode =
  | 'invalid_argument'
  | 'limit_exceeded'
  | 'closed'
  | 'queue_overflow'
  | 'timeout'
  | 'token'
  | 'storage'
  | 'protocol'
  | 'connection';

export declare const CLIENT_ERROR_CODES: readonly ClientErrorCode[];

/** Base class of every error of the SDK. */
export declare class RankcastError extends Error {
  constructor(message: string, code: number | string, options?: { cause?: unknown });
  readonly code: number | string;
}

/** An `error` message of the server, or a close code that carries one (e.g. 4010). */
export declare class ServerError extends RankcastError {
  /** From an `error` message of the server (PROTOCOL.md §2.2). */
  constructor(wire: { code: number; name?: string; message?: string; id?: string; fatal?: boolean; about?: string; surface?: string; t?: number });
  /** The code of PROTOCOL.md §3 (an unknown future code is passed through as a number). */
  readonly code: ServerErrorCode | number;
  /** Its stable name, e.g. `"invalid_field"`. */
  readonly codeName: ServerErrorName | string;
  /** The server's human-readable detail (not stable). */
  readonly serverMessage: string;
  /** The event the error is about, when there is one. */
  readonly eventId: string | undefined;
  /** The type of the client message the error refuses (`"ping"`, `"subscribe"`, …), when known. */
  readonly about: string | undefined;
  /** With `about` `subscribe` or `unsubscribe`: that message's surface. */
  readonly surface: string | undefined;
  /** With `about` `ping`: the refused ping's `t`. */
  readonly t: number | undefined;
  readonly fatal: boolean;
  readonly retryable: boolean;
}

export declare class ClientError extends RankcastError {
  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown });
  readonly code: ClientErrorCode;
}

// ---------------------------------------------------------------------------------------------
// Server → client data

/** Limits in force on a connection (welcome.limits, PROTOCOL.md §6). */
export interface Limits {
  maxMessageBytes: number;
  maxBatch: number;
  maxSubscriptions: number;
  maxK: number;
  eventsPerSec: number;
  eventsBurst: number;
}

export declare const DEFAULT_LIMITS: Readonly<Limits>;

/** What `welcome` said. */
export interface WelcomeInfo {
  v: number;
  /** This connection's session id on its node (for logs and support). */
  session: string;
  /** The user this connection acts for (server-assigned `anon-…` when none was given). */
  user: string;
  node: string;
  serverTimeMs: number;
  limits: Limits;
}

export type ItemSource = 'covisit' | 'content' | 'trending' | 'popular' | 'explore' | 'pinned' | 'repeat';

/** The codes of a structured reason (PROTOCOL.md, `recs`). */
export type ReasonCode =
  | 'co_visited'
  | 'similar'
  | 'category_affinity'
  | 'trending'
  | 'trending_context'
  | 'trending_locale'
  | 'pinned'
  | 'repeat'
  | 'new_item'
  | 'popular';

/**
 * Why an item is in a list, as data: a stable code and what it refers to, for an app that
 * words reasons its own way (in its language, with its styling). Fields that do not apply are
 * absent.
 */
export interface Reason {
  /** A newer server may add codes. */
  code: ReasonCode | string;
  /** `co_visited`, `similar`: the id of the item of the user's session that explains it. */
  item?: string;
  /** That item's name, when the catalog knows one. */
  itemName?: string;
  /** `similar`, `category_affinity`, `new_item`, `popular`: the category, as in `RecItem.category`. */
  category?: string;
  /** The category's display name, when the catalog gives one. */
  categoryName?: string;
  /** `trending_context`: `mobile`, `tablet`, `desktop`, `night`, `morning`, `afternoon` or `evening`. */
  segment?: string;
  /** `trending_locale`: the BCP 47 tag of the user's market, e.g. `de-DE`. */
  locale?: string;
  /** `repeat`: what the user last did with the item (an event kind: `view`, `click`, `cart`, …). */
  kind?: EventKind | string;
  /** `repeat`: seconds since then. */
  ageS?: number;
}

export interface RecItem {
  item: string;
  score: number;
  /** Main source of the item (a newer server may add sources). */
  src: ItemSource | string;
  /** The reason in plain words, e.g. "Viewed together with Red Mug". */
  why: string;
  /** The same reason as data (absent from an older server). */
  reason?: Reason;
  name?: string;
  category?: string;
  price?: number;
}

/** A list pushed for a surface (`recs`). */
export interface RecsList {
  surface: string;
  /** Grows with every list of the user's session; older lists are dropped by the SDK. */
  version: number;
  /** Best first. */
  items: RecItem[];
  /** The event id that caused this list; absent for the list sent on subscribe. */
  cause?: string;
  /** Server-side microseconds from the causing message to this list. */
  tookUs: number;
  /** Experiment variant (`"control"` when none runs). */
  variant: string;
}

/** An application message sent through the server's push API. */
export interface PushMessage {
  id: string;
  topic: string;
  data: unknown;
}

export interface DrainInfo {
  reason: string;
  reconnectAfterMs: number;
}

// ---------------------------------------------------------------------------------------------
// Client → server data

/** One interaction, as given to track(). Field rules follow PROTOCOL.md §2.1 `event`. */
export interface TrackEvent {
  kind: EventKind;
  /** The item acted on; required for every kind but `search`. */
  item?: string;
  /** `rating`: 1–5; `dwell`: milliseconds ≥ 0 (both required); `purchase`/`cart`: quantity > 0. */
  value?: number;
  /** The search text, 1–256 bytes; required for `search`. */
  query?: string;
  /** The list the interaction came from. */
  surface?: string;
  /** Client time of the interaction (ms since the epoch); default now (see `timestamps`). */
  tsMs?: number;
  /** Client-unique id (1–64 of `A–Z a–z 0–9 . _ : @ -`); default a random UUID. */
  id?: string;
}

export interface SubscribeOptions {
  /** List length, 1–100 (and ≤ welcome.limits.max_k); server default 10. */
  k?: number;
  /** Only items of this category (≤ 64 bytes). */
  category?: string;
  /** Only items priced at least this (≥ 0). */
  priceMin?: number;
  /** Only items priced at most this (≥ 0). */
  priceMax?: number;
  /**
   * Whether the list may show items of this session again: "never" (server default: a
   * discovery rail), "not_current" (all but the item in view), "allowed" (a "continue where
   * you left off" rail). Purchased and dismissed items never come back.
   */
  repeat?: 'never' | 'not_current' | 'allowed';
  /**
   * Receive the surface's lists as changes to the list held (PROTOCOL.md `recs_delta`), with
   * item details and reasons sent once per connection: about a tenth of the bytes at k = 20.
   * The callback still gets whole lists, the same as without it. Default false.
   */
  compact?: boolean;
}

/** The handle subscribe() returns. */
export interface Subscription {
  readonly surface: string;
  /** False once unsubscribed. */
  readonly active: boolean;
  /** The newest list delivered for the surface, or null. */
  readonly latest: RecsList | null;
  /** Stops callbacks; the surface is unsubscribed when its last handle goes. Idempotent. */
  unsubscribe(): void;
}

/** The promise track() returns: resolves with the event id once the server acknowledged it. */
export interface TrackPromise extends Promise<string> {
  /** The event id, known at once (match it against RecsList.cause). */
  readonly id: string;
}

// ---------------------------------------------------------------------------------------------
// Options

/** The part of the WebSocket API the SDK uses: the browser's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: WebSocketEventLike) => void): void;
  removeEventListener(type: 'open' | 'message' | 'close' | 'error', listener: (event: WebSocketEventLike) => void): void;
}

export interface WebSocketEventLike {
  data?: unknown;
  code?: number;
  reason?: string;
}

export type WebSocketConstructor = new (url: string, protocols: string | string[]) => WebSocketLike;

/** Minimal Storage (localStorage satisfies it). */
export interface StorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export interface TokenRequest {
  /** Why a token is needed: first connect, a reconnect, or a reconnect after 4010. */
  reason: 'initial' | 'reconnect' | 'unauthorized' | 'refresh';
  /** Failed attempts since the last welcome. */
  attempt: number;
}

export type TokenProvider = (request: TokenRequest) => string | null | undefined | Promise<string | null | undefined>;

export interface BackoffPolicy {
  /** Ceiling of the first delay; doubles per attempt. */
  baseMs?: number;
  /** Largest ceiling. The delay is uniform in [0, ceiling] (full jitter). */
  capMs?: number;
}

/** Time sources, for tests. `now` is monotonic milliseconds. */
export interface Clock {
  now?: () => number;
  setTimeout?: (fn: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
  random?: () => number;
}

export interface ClientOptions {
  /**
   * `ws(s)://host:port/ws`; http(s) URLs are mapped, an empty path becomes `/ws`; relative to
   * the page in a browser. A URL object is accepted too.
   */
  url: string | { readonly href: string };
  /** A fixed credential, sent in every hello. */
  token?: string;
  /** Called before every connection attempt; its result is sent in hello. */
  tokenProvider?: TokenProvider;
  /**
   * Anonymous servers: an id the server issued before (`welcome.user`, kept by the app), or
   * none to be issued one; the issued id is presented again on every reconnect. An id the
   * server did not issue is refused (4013): the client then goes on at once under a fresh one.
   */
  user?: string;
  device?: Device;
  /** Default: navigator.language where it exists (≤ 16 bytes); null: leave out. */
  locale?: string | null;
  /** Default: the local offset, read at each hello; null: leave out. */
  tzOffsetMin?: number | null;
  /**
   * Whether the user agreed to be remembered (`hello.consent`). false: lists come from this
   * session only and the server stores nothing about the user. Default: the server's default.
   */
  consent?: boolean;
  /** Default 'msgpack'. */
  encoding?: Encoding;
  /** Default globalThis.WebSocket (browsers, Node ≥ 22); in Node 20 pass the `ws` package. */
  WebSocket?: WebSocketConstructor;
  /** Default true: connect right after the current synchronous code. */
  autoConnect?: boolean;
  /** Reconnect backoff; default {baseMs: 500, capMs: 30000}. */
  reconnect?: BackoffPolicy;
  /** Backoff for events refused with a retryable error; default {baseMs: 250, capMs: 30000}. */
  retry?: BackoffPolicy;
  /** How long the first event of a burst waits for others; default 15 ms. */
  batchWindowMs?: number;
  /**
   * Kinds sent at once, without waiting for `batchWindowMs` (whatever else waits goes along
   * in the same message): those a person watches the answer to, such as
   * `['view', 'click', 'cart']`, while impressions still travel in batches. Default none.
   */
  immediateKinds?: ReadonlyArray<EventKind>;
  /** An event without ack for this long is sent again; default 10000 ms. */
  ackTimeoutMs?: number;
  /** From starting an attempt to `welcome`; default 10000 ms. */
  connectTimeoutMs?: number;
  /** Keepalive ping period; 0 disables; default 25000 ms. */
  pingIntervalMs?: number;
  /** A ping without pong for this long drops the connection; default 10000 ms. */
  pongTimeoutMs?: number;
  /** Extra random delay after drain's reconnect_after_ms; default up to 1000 ms. */
  drainJitterMs?: number;
  /**
   * With a tokenProvider, refreshToken() runs this long before the session's token expires
   * (its JWT `exp`, then each auth_ok's), or at half its remaining life if that is later;
   * default 30000 ms.
   */
  refreshAheadMs?: number;
  /** Called with what the client does (state changes, messages sent and received, reconnect decisions); for logging. */
  debug?: DebugHook;
  /** Most events kept until acknowledged; the oldest is dropped beyond it; default 1000. */
  maxQueue?: number;
  /** Fill tsMs with the current time when left out; default true. */
  timestamps?: boolean;
  /** 'auto' (default): localStorage in browsers, memory in Node; null: memory; or a Storage. */
  storage?: 'auto' | StorageLike | null;
  /** Storage key of the event queue; default derived from url and user. */
  storageKey?: string;
  clock?: Clock;
}

export declare const DEFAULT_OPTIONS: Readonly<{
  encoding: Encoding;
  autoConnect: boolean;
  reconnect: Readonly<Required<BackoffPolicy>>;
  retry: Readonly<Required<BackoffPolicy>>;
  batchWindowMs: number;
  immediateKinds: readonly EventKind[];
  ackTimeoutMs: number;
  connectTimeoutMs: number;
  pingIntervalMs: number;
  pongTimeoutMs: number;
  drainJitterMs: number;
  refreshAheadMs: number;
  maxQueue: number;
  timestamps: boolean;
  storage: 'auto';
}>;

/**
 * The `debug` option: `event` names what happened ('state', 'send', 'receive', 'lost',
 * 'reconnect', 'refresh', 'wake'), `detail` says more. A throw from it is ignored.
 */
export type DebugHook = (event: string, detail: Record<string, unknown>) => void;

// ---------------------------------------------------------------------------------------------
// Events of the client

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
}

export interface ReconnectingInfo {
  /** Attempts since the last welcome, this one included. */
  attempt: number;
  /** Wait before the attempt. */
  delayMs: number;
  reason: 'close' | 'error' | 'timeout' | 'keepalive' | 'token' | 'drain' | 'manual';
  /** The WebSocket close code, when the socket closed. */
  code?: number;
  error?: RankcastError;
}

export interface ClosedInfo {
  code?: number;
  reason: string;
  /** Why the client stopped, when it was not close(): 4006, or 4010 without a tokenProvider. */
  error?: RankcastError;
}

export interface ClientEvents {
  state: StateChange;
  connecting: { attempt: number };
  open: WelcomeInfo;
  reconnecting: ReconnectingInfo;
  closed: ClosedInfo;
  /** Every `error` from the server, and every problem the SDK found outside a track() promise. */
  error: RankcastError;
  /** Every list delivered, of any surface. */
  recs: RecsList;
  push: PushMessage;
  drain: DrainInfo;
  /** The server accepted a token sent by refreshToken(). */
  auth: AuthInfo;
}

export interface AuthInfo {
  /** The new token's expiry, in ms since the epoch. */
  expMs: number;
}

export interface ClientStats {
  state: ConnectionState;
  /** Timers the client holds now (0 when closed). */
  timers: number;
  /** Listeners the client holds on sockets (4 while connected, 0 when closed). */
  socketListeners: number;
  /** Listeners added with on()/once(). */
  listeners: number;
  /** Events waiting for ack. */
  queued: number;
  inFlight: number;
  subscriptions: number;
  staleListsDropped: number;
  attempts: number;
  welcomes: number;
  reconnects: number;
  /** Round trip of the last keepalive ping, or null. */
  rttMs: number | null;
  sentMessages: number;
  sentEvents: number;
  acked: number;
  /** Events sent more than once (reconnect, ack timeout, retryable error). */
  resent: number;
  /** Retryable errors received. */
  retried: number;
}

// ---------------------------------------------------------------------------------------------
// The client

export declare class RankcastClient {
  constructor(options: ClientOptions);

  readonly state: ConnectionState;
  /** welcome.user once known, else the configured user. */
  readonly user: string | undefined;
  readonly welcome: WelcomeInfo | null;

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof ClientEvents>(type: K, listener: (value: ClientEvents[K]) => void): () => void;
  once<K extends keyof ClientEvents>(type: K, listener: (value: ClientEvents[K]) => void): () => void;

  connect(): void;
  /** Drops the connection and connects again at once. */
  reconnect(): void;
  /** Sends a fresh token for the live session (or asks the tokenProvider, reason 'refresh'). */
  refreshToken(token?: string): Promise<AuthInfo>;
  /** Closes for good (until connect()); pending track() promises reject with ClientError 'closed'. */
  close(): Promise<void>;

  subscribe(surface: string, onRecs: (list: RecsList) => void): Subscription;
  subscribe(surface: string, options: SubscribeOptions, onRecs: (list: RecsList) => void): Subscription;

  track(event: TrackEvent): TrackPromise;
  /** Impressions of a list's items (or of `items`), each reported once per list version. */
  trackImpressions(list: RecsList, items?: ReadonlyArray<string | RecItem>): Promise<string[]>;
  trackClick(list: RecsList, item: string | RecItem): TrackPromise;
  /** Resolves when every queued event is acknowledged. */
  flush(timeoutMs?: number): Promise<void>;

  stats(): ClientStats;
}

export declare function createClient(options: ClientOptions): RankcastClient;

// ---------------------------------------------------------------------------------------------
// Codec (for tools and tests)

/** A protocol message: a map with a string `type`. */
export type WireMessage = { type: string } & Record<string, unknown>;

/**
 * Loads the MessagePack codec (once). The client does it before its first msgpack connection;
 * call it yourself before encodeMessage()/decodeMessage() with `'msgpack'`.
 */
export declare function loadMsgpack(): Promise<void>;
/** Encodes one message; `'msgpack'` throws ClientError('invalid_argument') until loadMsgpack() resolved. */
export declare function encodeMessage(msg: WireMessage, encoding: Encoding): Uint8Array | string;
/** Decodes one message; `'msgpack'` throws ClientError('invalid_argument') until loadMsgpack() resolved. */
export declare function decodeMessage(data: string | ArrayBuffer | ArrayBufferView, encoding: Encoding): WireMessage;
