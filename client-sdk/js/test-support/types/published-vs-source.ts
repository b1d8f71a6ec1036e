// SPDX-License-Identifier: Apache-2.0
// Checks the published index.d.ts against the implementation's own types (JSDoc in src/). Never
// run: tsc compiles it with the sources (tsconfig.json), so any drift between the two is a type
// error here, reported by test/types.test.mjs. Each check names what differs.
//
// What is compared, and how:
// - the value exports: the same names on both sides; constants: each value fits its declared type;
// - functions and methods: every call the declaration allows type-checks against the source
//   (same number of parameters, each declared parameter accepted) and both return the same type;
// - classes: the same constructor parameters and public members; data shapes (lists, events,
//   stats, errors, track() input, subscribe() options): the same fields, each of the same type
//   (a renamed or added optional field counts), nested shapes one by one;
// - ClientOptions is declared in index.d.ts only; src/options.js lists its fields in a map that
//   tsc checks against it, so an option cannot be declared without being accepted, or back.

import type * as Pub from '@rankcast/client';

import type * as Src from '../../src/index.js';
import type { ClientEvents, ClosedInfo, ConnectionState, ReconnectingInfo, TrackPromise } from '../../src/client.js';
import type { ClientErrorCode, ServerErrorCode, ServerErrorName } from '../../src/errors.js';
import type { AuthInfo, DrainInfo, Limits, PushMessage, Reason, RecItem, RecsList, WelcomeInfo } from '../../src/incoming.js';
import type { Device, EventKind, SubscribeOptions, TrackEvent } from '../../src/outgoing.js';
import type { PublicSubscription } from '../../src/subscriptions.js';

type SrcModule = typeof Src;
type PubModule = typeof Pub;

// --- the checks -------------------------------------------------------------------------------

/** Compiles only when T is never: a failing check shows the names that differ. */
type None<T extends never> = T;

/** Whether A and B are assignable to each other. */
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/**
 * An object's public members. A class with `#private` fields is only assignable to itself, so
 * the source's RankcastClient is compared with the declared one through this.
 */
type Public<T> = T extends object ? { [K in keyof T]: T[K] } : T;

/** The first two call signatures of F (twice the same one when F has one). */
type Calls<F> = F extends { (...args: infer A1): infer R1; (...args: infer A2): infer R2 } ? [[A1, R1], [A2, R2]] : never;

/** The number of parameters, optional ones included: [a, b?] has 1 | 2. */
type Arity<A> = A extends readonly unknown[] ? A['length'] : never;

/**
 * Whether an implementation with signatures S serves declared signatures D, overload by
 * overload: both take the same number of parameters, the declared arguments are accepted (the
 * source may accept more, e.g. decodeMessage any data) and the return types are the same.
 */
type Serves<S, D> = S extends [[infer SA1, infer SR1], [infer SA2, infer SR2]]
  ? D extends [[infer DA1, infer DR1], [infer DA2, infer DR2]]
    ? [DA1, DA2] extends [SA1, SA2]
      ? Mutual<[Arity<SA1>, Arity<SA2>], [Arity<DA1>, Arity<DA2>]> extends true
        ? Mutual<Public<SR1>, Public<DR1>> extends true
          ? Mutual<Public<SR2>, Public<DR2>>
          : false
        : false
      : false
    : false
  : false;

/** Whether two members are the same: functions by Serves, anything else by Mutual. */
type SameMember<S, D> = [D] extends [(...args: never[]) => unknown] ? Serves<Calls<S>, Calls<D>> : Mutual<S, D>;

/**
 * A class as members to compare: its constructor's parameters (as `new`; the instances it makes
 * are compared member by member) and its instances' public members.
 */
type ClassMembers<C extends abstract new (...args: never[]) => unknown> = { new: ConstructorParameters<C> } & InstanceType<C>;

/** The names of the members that exist on one side only, or differ (private `#` fields do not count). */
type Differences<S, D> =
  | Exclude<keyof S, keyof D>
  | Exclude<keyof D, keyof S>
  | { [K in keyof S & keyof D]: SameMember<S[K], D[K]> extends true ? never : K }[keyof S & keyof D];

/** Like Differences, for constants: the value of each member fits its declared type. */
type Misfits<S, D> =
  | Exclude<keyof S, keyof D>
  | Exclude<keyof D, keyof S>
  | { [K in keyof S & keyof D]: [S[K]] extends [D[K]] ? never : K }[keyof S & keyof D];

type ElementOf<T> = T extends readonly (infer E)[] ? E : never;

/** The names of T's members that are functions. */
type FunctionNames<T> = { [K in keyof T]: T[K] extends (...args: never[]) => unknown ? K : never }[keyof T];

// --- exports ------------------------------------------------------------------------------------

export type Exports = None<Exclude<keyof SrcModule, keyof PubModule> | Exclude<keyof PubModule, keyof SrcModule>>;
export type Functions = None<Differences<Pick<SrcModule, FunctionNames<SrcModule>>, Pick<PubModule, FunctionNames<PubModule>>>>;

export type ProtocolVersion = None<Differences<{ v: typeof Src.PROTOCOL_VERSION }, { v: typeof Pub.PROTOCOL_VERSION }>>;
export type Subprotocols = None<Differences<typeof Src.SUBPROTOCOLS, typeof Pub.SUBPROTOCOLS>>;
export type EventKinds = None<Differences<{ kind: EventKind; listed: ElementOf<typeof Src.EVENT_KINDS> }, { kind: Pub.EventKind; listed: Pub.EventKind }>>;
export type Devices = None<Differences<{ device: Device; listed: ElementOf<typeof Src.DEVICES> }, { device: Pub.Device; listed: Pub.Device }>>;

// --- errors -------------------------------------------------------------------------------------

export type ServerErrorCodes = None<Differences<{ code: ServerErrorCode; name: ServerErrorName }, { code: Pub.ServerErrorCode; name: Pub.ServerErrorName }>>;
export type ServerErrorTable = None<Differences<{ [C in ServerErrorCode]: { name: ServerErrorName; fatal: boolean; retryable: boolean } }, { [C in Pub.ServerErrorCode]: Pub.ServerErrorInfo }>>;
export type ServerErrorTableFits = None<Misfits<typeof Src.SERVER_ERRORS, typeof Pub.SERVER_ERRORS>>;
export type ClientErrorCodes = None<Differences<{ code: ClientErrorCode; listed: ElementOf<typeof Src.CLIENT_ERROR_CODES> }, { code: Pub.ClientErrorCode; listed: ElementOf<typeof Pub.CLIENT_ERROR_CODES> }>>;

export type RankcastErrorClass = None<Differences<ClassMembers<typeof Src.RankcastError>, ClassMembers<typeof Pub.RankcastError>>>;
export type ServerErrorClass = None<Differences<ClassMembers<typeof Src.ServerError>, ClassMembers<typeof Pub.ServerError>>>;
export type ClientErrorClass = None<Differences<ClassMembers<typeof Src.ClientError>, ClassMembers<typeof Pub.ClientError>>>;

// --- the client ---------------------------------------------------------------------------------

export type ClientClass = None<Differences<ClassMembers<typeof Src.RankcastClient>, ClassMembers<typeof Pub.RankcastClient>>>;
export type States = None<Differences<{ state: ConnectionState }, { state: Pub.ConnectionState }>>;
export type Stats = None<Differences<ReturnType<Src.RankcastClient['stats']>, Pub.ClientStats>>;
export type TrackPromises = None<Differences<{ p: TrackPromise; id: TrackPromise['id'] }, { p: Pub.TrackPromise; id: Pub.TrackPromise['id'] }>>;

export type Subscriptions = None<Differences<PublicSubscription, Pub.Subscription>>;

// --- events -------------------------------------------------------------------------------------

export type Events = None<Differences<ClientEvents, Pub.ClientEvents>>;
export type StateChangeEvent = None<Differences<ClientEvents['state'], Pub.StateChange>>;
export type ConnectingEvent = None<Differences<ClientEvents['connecting'], Pub.ClientEvents['connecting']>>;
export type ReconnectingEvent = None<Differences<ReconnectingInfo, Pub.ReconnectingInfo>>;
export type ClosedEvent = None<Differences<ClosedInfo, Pub.ClosedInfo>>;
export type PushEvent = None<Differences<PushMessage, Pub.PushMessage>>;
export type DrainEvent = None<Differences<DrainInfo, Pub.DrainInfo>>;
export type AuthEvent = None<Differences<AuthInfo, Pub.AuthInfo>>;

// --- lists and the welcome ----------------------------------------------------------------------

export type Welcome = None<Differences<WelcomeInfo, Pub.WelcomeInfo>>;
export type LimitsShape = None<Differences<Limits, Pub.Limits>>;
export type DefaultLimits = None<Misfits<typeof Src.DEFAULT_LIMITS, typeof Pub.DEFAULT_LIMITS>>;
export type Lists = None<Differences<RecsList, Pub.RecsList>>;
export type Items = None<Differences<RecItem, Pub.RecItem>>;
export type Reasons = None<Differences<Reason, Pub.Reason>>;

// --- what the application gives ------------------------------------------------------------------

export type TrackEvents = None<Differences<TrackEvent, Pub.TrackEvent>>;
export type SubscribeOptionsShape = None<Differences<SubscribeOptions, Pub.SubscribeOptions>>;
export type DefaultOptions = None<Misfits<typeof Src.DEFAULT_OPTIONS, typeof Pub.DEFAULT_OPTIONS>>;
export type DefaultReconnect = None<Misfits<typeof Src.DEFAULT_OPTIONS.reconnect, typeof Pub.DEFAULT_OPTIONS.reconnect>>;
export type DefaultRetry = None<Misfits<typeof Src.DEFAULT_OPTIONS.retry, typeof Pub.DEFAULT_OPTIONS.retry>>;
