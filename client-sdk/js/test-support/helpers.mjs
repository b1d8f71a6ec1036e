// SPDX-License-Identifier: Apache-2.0
// Shared helpers of the SDK tests: a client with test-friendly timings, waiting for a client
// event, and an in-memory Storage.

import WebSocket from 'ws';

import { createClient } from '../src/index.js';

export const ENCODINGS = ['msgpack', 'json'];

const liveClients = new Set();

/** Closes every client makeClient() made: an afterEach, so a failed test leaves none running. */
export async function closeAllClients() {
  const clients = [...liveClients];
  liveClients.clear();
  await Promise.all(clients.map((c) => c.close()));
}

/** A client of `url` with short timings; `extra` overrides any option. */
export function makeClient(url, encoding, extra = {}) {
  const client = createClient({
    url,
    WebSocket,
    encoding,
    user: 'u-test',
    reconnect: { baseMs: 5, capMs: 20 },
    retry: { baseMs: 5, capMs: 20 },
    batchWindowMs: 5,
    pingIntervalMs: 0,
    locale: null,
    ...extra,
  });
  liveClients.add(client);
  return client;
}

/** Resolves with the next value of client event `type` that passes `filter`. */
export function nextEvent(client, type, { timeoutMs = 3000, filter = () => true } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no '${type}' event within ${timeoutMs} ms (state ${client.state})`));
    }, timeoutMs);
    const off = client.on(type, (value) => {
      if (!filter(value)) return;
      clearTimeout(timer);
      off();
      resolve(value);
    });
  });
}

/** Records every value of the given client events, in order, as [type, value]. */
export function recordEvents(client, types) {
  const seen = [];
  const offs = types.map((type) => client.on(type, (value) => seen.push([type, value])));
  seen.stop = () => offs.forEach((off) => off());
  return seen;
}

/** A Storage in memory, like localStorage. */
export class MemoryStorage {
  constructor() {
    this.map = new Map();
    this.writes = 0;
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.writes++;
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}
