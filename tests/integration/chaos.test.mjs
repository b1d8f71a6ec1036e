// SPDX-License-Identifier: Apache-2.0
// Chaos at the transport, against the real binary over plaintext and over TLS: bursts of
// connections that send junk and hang up, upgrades reset at once, sessions that vanish mid-frame,
// mid-fragment, with lists pending, after a close frame, over the size limit, in a ping flood or
// with broken compressed data; HTTP API requests cut short; /ops upgrades abandoned. Half the
// rounds run with the server stopped (SIGSTOP) while the burst connects, so whole requests and
// hang-ups wait in the backlog before their accept. A seeded generator picks the actions
// (RANKCAST_CHAOS_SEED replays them; what the server makes of them also depends on timing).
// After every round the server must be up and serve a fresh session; at the end it holds no
// descriptor and no connection for any of it.
//
// A second part drives sessions instead: up to 40 connections of 4 users (so sessions, their
// lists and their frames are shared), each sent a random mix of valid and invalid hello,
// subscribe, unsubscribe, event, batch, ping and auth messages, some never read (slow
// consumers), each ended with a close frame or dropped; in between, the admin API changes the
// catalog under live lists, replaces the rules, starts and stops experiments, erases live
// users and pushes. Its
// worth is mostly under the sanitizers (the ASan pass of scripts/test runs it too): a session
// that outlives its connection or a list freed while encoded shows up there.
//
// The transport part guards against two crashes found while it was written, each also with a
// test of its own: a descriptor closed twice when TLS failed while lws adopted it
// (security.test.mjs), and the close of a connection whose 101 could not be written taken for
// an established one's (bad-input.test.mjs).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';

import { frame, generator, json, sessionChaos, upgrade } from './chaos-harness.mjs';
import { eventually } from './redis-harness.mjs';
import { SUBPROTOCOL, closeAllClients, connectHello, httpGetFresh, metricTotals, parsePrometheus, sleep, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

const SEED = Number(process.env.RANKCAST_CHAOS_SEED ?? 20261122);
const ROUNDS = 10;
const PER_ROUND = 100;


/** The bytes of one chaotic connection, chosen by `rnd`, for a user of `items`. */
function chaoticBytes(rnd, user, items) {
  const pick = (xs) => xs[Math.floor(rnd() * xs.length)];
  const hello = json({ type: 'hello', v: 1, user });
  const subscribe = json({ type: 'subscribe', surface: pick(['home', 'pdp']), k: 1 + Math.floor(rnd() * 20) });
  const event = () => json({ type: 'event', id: randomBytes(6).toString('hex'), kind: pick(['view', 'click', 'cart']), item: pick(items).id });
  const eventBytes = Buffer.from(JSON.stringify({ type: 'event', id: 'e', kind: 'view', item: items[0].id }));
  const cases = [
    () => Buffer.from('\n'), // not HTTP, not TLS
    () => randomBytes(1 + Math.floor(rnd() * 300)),
    () => Buffer.from('GET / HTTP/1.1\r\n'), // half a request
    () => upgrade(), // an upgrade, then the end below
    () => Buffer.concat([upgrade(), hello, subscribe, event(), event()]), // lists pending
    () => { const e = event(); return Buffer.concat([upgrade(), hello, subscribe, e.subarray(0, 1 + Math.floor(rnd() * (e.length - 1)))]); },
    () => Buffer.concat([upgrade(), hello, frame(1, eventBytes.subarray(0, 5), false), frame(0, eventBytes.subarray(5, 9), false)]),
    () => Buffer.concat([upgrade(), hello, frame(1, Buffer.alloc(70000, 120))]), // over max_message_bytes
    () => Buffer.concat([upgrade(), hello, frame(8, Buffer.from([3, 232])), event(), event()]), // data after a close
    () => Buffer.concat([upgrade(), hello, ...Array.from({ length: 300 }, () => frame(9, 'pi'))]), // ping flood
    () => Buffer.concat([upgrade('/ws', SUBPROTOCOL.json, 'Sec-WebSocket-Extensions: permessage-deflate\r\n'), hello, Buffer.from([0xc1, 0x85]), randomBytes(9)]),
    () => Buffer.concat([Buffer.from('POST /api/v1/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{"user":"'), Buffer.alloc(Math.floor(rnd() * 3000), 97)]),
    () => Buffer.concat([upgrade('/ops', 'rankcast.ops.v1'), frame(1, '{"type":"hel')]),
    () => Buffer.concat([upgrade(), hello, subscribe, json({ type: 'events', events: Array.from({ length: 100 }, () => ({ id: randomBytes(5).toString('hex'), kind: 'view', item: pick(items).id })) })]),
    () => Buffer.concat([upgrade('/ws', SUBPROTOCOL.msgpack), frame(2, randomBytes(1 + Math.floor(rnd() * 200)))]),
  ];
  return pick(cases)();
}

/**
 * Opens one connection, writes `bytes` and ends it one of three ways: a reset (plaintext only:
 * a TLS socket cannot reset under its own close_notify), a half-close then a close, or a close.
 * Resolves once the bytes are handed to the kernel and the end is under way; never rejects.
 */
function chaoticConnection(server, bytes, rnd, { tls }) {
  return new Promise((res) => {
    const s = tls ? tlsConnect({ host: server.host, port: server.port, rejectUnauthorized: false })
      : netConnect({ host: server.host, port: server.port });
    s.on('error', () => res());
    s.once(tls ? 'secureConnect' : 'connect', () => {
      s.write(bytes); // an idle socket takes it at once
      const how = Math.floor(rnd() * 3);
      if (how === 0 && !tls) s.resetAndDestroy();
      else if (how === 1) s.end(() => s.destroy());
      else s.destroy();
      res();
    });
  });
}

/**
 * A connection made, written and ended (reset or closed) while the server is stopped, so all of
 * it waits in the backlog for the accept. Plain TCP on the TLS server too: bytes that are not TLS.
 */
function backloggedConnection(server, bytes, rnd) {
  return new Promise((res) => {
    const s = netConnect({ host: server.host, port: server.port }, () => {
      s.write(bytes);
      if (rnd() < 0.5) s.resetAndDestroy();
      else s.end();
      res();
    });
    s.on('error', () => res());
  });
}

const openDescriptors = (pid) => readdirSync(`/proc/${pid}/fd`).length;

/** The server's descriptor count once it holds still (the same in 5 readings 100 ms apart):
 * the baseline the end of the chaos is compared with must not include a connection that was
 * still closing. */
async function settledDescriptors(pid) {
  let last = -1;
  let same = 0;
  for (let i = 0; i < 100 && same < 5; i++) {
    const n = openDescriptors(pid);
    same = n === last ? same + 1 : 1;
    last = n;
    await sleep(100);
  }
  return last;
}

/** The `rankcast_connections` gauge, read over a connection of its own that closes (no
 * keep-alive descriptor left on the server to count). */
async function connectionsGauge(server) {
  const { body } = await httpGetFresh(server, '/metrics');
  return metricTotals(parsePrometheus(body).samples).rankcast_connections;
}

/** Waits up to 15 s for `get()` to give `want` (a failure names the last value seen). */
function reaches(get, want, what) {
  return eventually(async () => {
    const v = await get();
    if (v !== want) throw new Error(`${v}, not ${want}`);
    return true;
  }, 15_000, what);
}

for (const tls of [false, true]) {
  describe(`chaos over ${tls ? 'TLS' : 'plaintext'} (seed ${SEED})`, () => {
    let server;
    let dir;
    before(async () => {
      const extraArgs = ['--ws-deflate', '--max-conns-per-ip', '0'];
      let tlsOpt = null;
      if (tls) {
        dir = mkdtempSync(join(tmpdir(), 'rankcast-chaos-'));
        execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2',
          '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
        extraArgs.push('--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem'));
        tlsOpt = { ca: readFileSync(join(dir, 'cert.pem')) };
      }
      server = await startServer({ extraArgs, tls: tlsOpt });
    });
    after(async () => {
      closeAllClients();
      await stopServerCleanly(server);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test(`${ROUNDS} rounds of ${PER_ROUND} chaotic connections: the server stays up, serves, and leaks nothing`, { timeout: 120_000 }, async () => {
      const rnd = generator(SEED + (tls ? 1 : 0));
      const fdsBefore = await settledDescriptors(server.proc.pid);
      for (let round = 0; round < ROUNDS; round++) {
        const users = Array.from({ length: 5 }, (_, i) => `anon-chaos-${round}-${i}`);
        const stopped = round % 2 === 1; // over TLS too: junk that is not TLS, before its accept
        if (stopped) server.proc.kill('SIGSTOP');
        try {
          for (let i = 0; i < PER_ROUND; i++) {
            const bytes = chaoticBytes(rnd, users[Math.floor(rnd() * users.length)], server.items);
            if (stopped) await backloggedConnection(server, bytes, rnd);
            else await chaoticConnection(server, bytes, rnd, { tls });
          }
        } finally {
          if (stopped) server.proc.kill('SIGCONT');
        }
        assert.equal(server.exitResult, null, `the server exited in round ${round}: ${server.output().slice(-2000)}`);
        const { client } = await connectHello(server, 'json', { user: uniqueId('chaos-probe') });
        assert.equal((await client.subscribe('home', { k: 3 })).items.length, 3, `round ${round}: a fresh session gets its list`);
        client.close();
      }
      // Half-closed and stalled connections end within the handshake and hello timeouts (10 s).
      await reaches(() => connectionsGauge(server), 0, 'WebSocket connections left open after the chaos');
      await reaches(async () => openDescriptors(server.proc.pid), fdsBefore, 'descriptors left open after the chaos');
    });
  });
}

describe(`chaos in sessions (seed ${SEED})`, () => {
  const ADMIN = 'chaos-admin-token';
  let server;
  before(async () => {
    server = await startServer({ extraArgs: ['--admin-token', ADMIN, '--max-conns-per-ip', '0', '--ws-deflate'] });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server); // under ASan, a leak makes the exit code non-zero
  });

  test('shared sessions under message churn, slow readers and admin changes: the server stays up, serves, and leaks nothing', { timeout: 180_000 }, async () => {
    const users = ['anon-chaos-a', 'anon-chaos-b', 'anon-chaos-c', 'anon-chaos-d'];
    const counts = await sessionChaos([server], { seed: SEED + 2, admin: ADMIN, users });
    console.log(`# session chaos: ${counts.messages} messages, admin answers ${JSON.stringify(counts.admin)}`);
    const { client } = await connectHello(server, 'json', { user: uniqueId('chaos-probe') });
    assert.equal((await client.subscribe('home', { k: 3 })).items.length, 3, 'a fresh session gets its list');
    client.close();
    const m = metricTotals(parsePrometheus((await httpGetFresh(server, '/metrics')).body).samples);
    console.log(`# re-ranks ${m.rankcast_reranks_total}, pushes sent ${m.rankcast_pushes_sent_total}, coalesced ${m.rankcast_pushes_coalesced_total}, errors answered ${m.rankcast_errors_total}`);
    assert.ok(m.rankcast_reranks_total > 1000, `the churn re-ranked lists (${m.rankcast_reranks_total})`);
    assert.ok(m.rankcast_pushes_sent_total > 100, `and pushed them (${m.rankcast_pushes_sent_total})`);
    await reaches(() => connectionsGauge(server), 0, 'WebSocket connections left open after the chaos');
  });
});
