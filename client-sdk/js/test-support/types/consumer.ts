// SPDX-License-Identifier: Apache-2.0
// Compiled (never run) by types.test.mjs with strict settings and no DOM or Node types: the
// shipped index.d.ts must describe the API completely and on its own. The expected-error
// directives at the end must stay errors.

import {
  ClientError,
  RankcastError,
  ServerError,
  SERVER_ERRORS,
  createClient,
  type ClientStats,
  type ConnectionState,
  type RecsList,
  type Subscription,
  type TrackPromise,
  type WebSocketConstructor,
} from '@rankcast/client';

declare const WebSocketImpl: WebSocketConstructor;

const client = createClient({
  url: 'wss://recs.example.com/ws',
  WebSocket: WebSocketImpl,
  tokenProvider: async ({ reason }) => (reason === 'unauthorized' ? 'fresh' : 'cached'),
  device: 'mobile',
  consent: false,
  encoding: 'json',
  reconnect: { baseMs: 250, capMs: 10_000 },
});

const state: ConnectionState = client.state;
const offState: () => void = client.on('state', ({ state: next, previous }) => void [next, previous, state]);
client.on('open', (w) => w.limits.maxBatch.toFixed());
client.on('reconnecting', (r) => r.delayMs + r.attempt);
client.on('error', (e) => (e instanceof ServerError ? e.codeName : e.code));
client.on('push', (p) => p.topic.toUpperCase());
offState();

const sub: Subscription = client.subscribe('home', { k: 5, category: 'kitchen', priceMax: 20 }, (list: RecsList) => {
  const first = list.items[0];
  if (first) void client.trackClick(list, first);
  void client.trackImpressions(list);
  return list.cause?.length;
});
client.subscribe('pdp', (list) => list.version);
sub.unsubscribe();

const p: TrackPromise = client.track({ kind: 'rating', item: 'sku-1', value: 4 });
const id: string = p.id;
p.then((acked: string) => acked === id).catch((err: unknown) => {
  if (err instanceof ServerError) return err.code === 4012 && err.eventId === id && err.retryable;
  if (err instanceof ClientError) return err.code === 'queue_overflow';
  return err instanceof RankcastError;
});

const stats: ClientStats = client.stats();
const timers: number = stats.timers;
const fatal: boolean = SERVER_ERRORS[4010].fatal;
void [timers, fatal];
void client.flush(1000).then(() => client.close());

// @ts-expect-error an unknown event kind
client.track({ kind: 'like', item: 'x' });
// @ts-expect-error options use camelCase
client.subscribe('home', { price_max: 3 }, () => {});
// @ts-expect-error no such client event
client.on('message', () => {});
// @ts-expect-error a device class of the page only
createClient({ url: 'ws://h/ws', device: 'phone' });
