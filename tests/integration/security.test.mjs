// SPDX-License-Identifier: Apache-2.0
// Security, written from PROTOCOL.md sections 1, 3 and 6 against the real binary: tokens
// (HS256, RS256, ES256; hello.token, the Authorization header, refresh, expiry), isolation
// between users, the upgrade gate (Origin, connections per address), idle connections
// (ping/pong, 4023), slowloris, and TLS (1.2+ only, certificates reloaded on SIGHUP without
// dropping live connections). Keys, tokens, a CA and certificates are made here per run.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHmac, createSign, generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, test } from 'node:test';

import {
  assertError,
  closeAllClients,
  connect,
  connectHello,
  httpGet,
  metricTotals,
  parsePrometheus,
  sleep,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';

const SECRET = 'security-test-secret-0123456789abcdef';
const ISSUER = 'https://idp.example';
const AUDIENCE = 'rankcast-test';
const ADMIN = 'sec-admin-token';

const dir = mkdtempSync(join(tmpdir(), 'rankcast-sec-'));
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaPem = join(dir, 'rsa.pub.pem');
const ecPem = join(dir, 'ec.pub.pem');
writeFileSync(rsaPem, rsa.publicKey.export({ type: 'spki', format: 'pem' }));
writeFileSync(ecPem, ec.publicKey.export({ type: 'spki', format: 'pem' }));

const b64url = (x) => Buffer.from(typeof x === 'string' ? x : JSON.stringify(x)).toString('base64url');
const now = () => Math.floor(Date.now() / 1000);

/** A token as an identity provider would sign it (node:crypto, not the server's code). */
function token(claims, { alg = 'HS256', secret = SECRET, header = {} } = {}) {
  const body = { iss: ISSUER, aud: AUDIENCE, exp: now() + 300, ...claims };
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  const input = `${b64url({ alg, typ: 'JWT', ...header })}.${b64url(body)}`;
  let sig;
  if (alg === 'HS256') sig = createHmac('sha256', secret).update(input).digest();
  else if (alg === 'RS256') sig = createSign('sha256').update(input).sign(rsa.privateKey);
  else if (alg === 'ES256') sig = cryptoSign('sha256', Buffer.from(input), { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
  else sig = Buffer.alloc(0);
  return `${input}.${sig.toString('base64url')}`;
}

/** Sends hello and returns the first answer (welcome or error) and, for an error, the close. */
async function helloAnswer(server, fields, enc = 'json') {
  const client = await connect(server, enc);
  client.send({ type: 'hello', v: 1, ...fields });
  const answer = await client.nextAny();
  const close = answer.type === 'error' ? await client.waitClose() : null;
  return { client, answer, close };
}

async function refusedWith(server, fields, code) {
  const { answer, close } = await helloAnswer(server, fields);
  assertError(answer, code);
  assert.equal(close.code, code);
  return answer;
}

async function metrics(server) {
  const { body } = await httpGet(server, '/metrics');
  return metricTotals(parsePrometheus(body).samples);
}

async function sample(server, name, label) {
  const { body } = await httpGet(server, '/metrics');
  const want = Object.entries(label).map(([k, v]) => `${k}="${v}"`).join(',');
  const s = parsePrometheus(body).samples.find((x) => x.name === name && x.labels === want);
  return s ? s.value : 0;
}

/** An upgrade request by hand: the status line lws answers with. */
function rawUpgrade(server, headers = {}, { localAddress } = {}) {
  return new Promise((res, rej) => {
    const sock = netConnect({ port: server.port, host: server.host, localAddress });
    let data = '';
    sock.on('connect', () => {
      const lines = ['GET /ws HTTP/1.1', `Host: ${server.host}:${server.port}`, 'Upgrade: websocket', 'Connection: Upgrade',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Protocol: rankcast.v1.json',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
      sock.write(`${lines.join('\r\n')}\r\n\r\n`);
    });
    sock.on('data', (d) => {
      data += d.toString('latin1');
      if (data.includes('\r\n')) {
        res({ status: Number(data.split(' ')[1]), text: data, sock });
      }
    });
    sock.on('error', rej);
    sock.on('close', () => res({ status: 0, text: data, sock }));
  });
}

after(() => {
  closeAllClients();
  rmSync(dir, { recursive: true, force: true });
});

describe('tokens', () => {
  let server;
  before(async () => {
    server = await startServer({
      extraArgs: ['--anonymous', 'false', '--jwt-secret', SECRET, '--jwt-public-key', rsaPem, '--jwt-issuer', ISSUER,
        '--jwt-audience', AUDIENCE, '--jwt-leeway-s', '0', '--admin-token', ADMIN],
    });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });

  test('hello.token: HS256 and RS256 admit the token\'s subject', async () => {
    for (const alg of ['HS256', 'RS256']) {
      const user = uniqueId(`tok-${alg}`);
      const { answer } = await helloAnswer(server, { token: token({ sub: user }, { alg }) });
      assert.equal(answer.type, 'welcome', JSON.stringify(answer));
      assert.equal(answer.user, user);
    }
  });

  test('forged, expired, not yet valid, wrong issuer or audience, alg none, or missing: refused', async () => {
    const sub = uniqueId('victim');
    const good = token({ sub });
    const [h, , s] = good.split('.');
    await refusedWith(server, { token: `${h}.${b64url({ sub: 'admin', iss: ISSUER, aud: AUDIENCE, exp: now() + 300 })}.${s}` }, 4010);
    await refusedWith(server, { token: token({ sub }, { secret: 'another-secret-of-the-same-length-xx' }) }, 4010);
    await refusedWith(server, { token: token({ sub, exp: now() - 10 }) }, 4011);
    await refusedWith(server, { token: token({ sub, nbf: now() + 60 }) }, 4010);
    await refusedWith(server, { token: token({ sub, iss: 'https://evil.example' }) }, 4010);
    await refusedWith(server, { token: token({ sub, aud: 'another-service' }) }, 4010);
    await refusedWith(server, { token: token({ sub }, { alg: 'none' }) }, 4010);
    // The RSA public key is public: used as an HS256 secret it must not verify.
    await refusedWith(server, { token: token({ sub }, { secret: rsa.publicKey.export({ type: 'spki', format: 'pem' }) }) }, 4010);
    await refusedWith(server, { token: token({ sub }, { alg: 'ES256' }) }, 4010); // no EC key configured
    await refusedWith(server, {}, 4010); // anonymous sessions are off
    await refusedWith(server, { user: sub }, 4010);
    await refusedWith(server, { token: good, user: 'someone-else' }, 4010);
    assert.ok(await sample(server, 'rankcast_auth_refused_total', { reason: 'expired' }) >= 1);
    assert.ok(await sample(server, 'rankcast_auth_refused_total', { reason: 'bad_signature' }) >= 2);
    assert.ok(await sample(server, 'rankcast_auth_refused_total', { reason: 'bad_audience' }) >= 1);
  });

  test('the Authorization header at the upgrade: the subject needs no token in hello; a bad one gets 401', async () => {
    const user = uniqueId('native');
    const client = await connect(server, 'msgpack', { headers: { Authorization: `Bearer ${token({ sub: user })}` } });
    client.send({ type: 'hello', v: 1 });
    const welcome = await client.nextAny();
    assert.equal(welcome.type, 'welcome', JSON.stringify(welcome));
    assert.equal(welcome.user, user);
    await assert.rejects(connect(server, 'json', { headers: { Authorization: `Bearer ${token({ sub: user, exp: now() - 5 })}` } }),
      (e) => e.statusCode === 401);
    await assert.rejects(connect(server, 'json', { headers: { Authorization: 'Basic dXNlcjpwYXNz' } }), (e) => e.statusCode === 401);
    assert.ok(await sample(server, 'rankcast_handshakes_refused_total', { reason: 'token' }) >= 2);
    // The header's subject cannot be swapped in hello either.
    const other = await connect(server, 'json', { headers: { Authorization: `Bearer ${token({ sub: user })}` } });
    other.send({ type: 'hello', v: 1, user: 'not-me' });
    assertError(await other.nextAny(), 4010);
  });

  test('a token is refreshed on a live session (auth_ok), and one that expires ends it with 4011', async () => {
    const user = uniqueId('refresh');
    const { client: kept } = await connectHello(server, 'json', { token: token({ sub: user, exp: now() + 2 }) });
    const { client: lapsed } = await connectHello(server, 'json', { token: token({ sub: user, exp: now() + 2 }) });
    const exp = now() + 600;
    kept.send({ type: 'auth', token: token({ sub: user, exp }) });
    const ok = await kept.next((m) => m.type === 'auth_ok');
    assert.equal(ok.exp_ms, exp * 1000);
    await sleep(2600);
    lapsed.send({ type: 'ping' });
    assertError(await lapsed.next((m) => m.type === 'error'), 4011);
    assert.equal((await lapsed.waitClose()).code, 4011);
    kept.send({ type: 'ping' });
    assert.equal((await kept.next((m) => m.type === 'pong')).type, 'pong');
    // A refresh for someone else ends the connection.
    kept.send({ type: 'auth', token: token({ sub: uniqueId('mallory') }) });
    assertError(await kept.next((m) => m.type === 'error'), 4010);
    assert.equal((await kept.waitClose()).code, 4010);
  });

  test('isolation: a user never receives another user\'s lists or pushes, and cannot use the admin API', async () => {
    const alice = uniqueId('alice');
    const bob = uniqueId('bob');
    const { client: a } = await connectHello(server, 'json', { token: token({ sub: alice }) });
    const { client: b } = await connectHello(server, 'json', { token: token({ sub: bob }) });
    await a.subscribe('home', { k: 5 });
    await b.subscribe('home', { k: 5 });
    const items = server.items.slice(0, 4);
    for (const [i, it] of items.entries()) {
      a.send({ type: 'event', id: `iso-${i}`, kind: 'click', item: it.id, surface: 'home' });
      await a.next((m) => m.type === 'ack');
    }
    await sleep(200);
    assert.deepEqual(b.log.filter((m) => m.type === 'recs' && m.cause !== undefined), [], 'bob got lists caused by alice');
    // A user's token is not an admin credential: pushing to or erasing another user is refused.
    for (const path of ['/api/v1/push', '/api/v1/users/erase']) {
      const res = await fetch(`${server.httpUrl}${path}`, {
        method: 'POST', headers: { Authorization: `Bearer ${token({ sub: alice })}`, 'Content-Type': 'application/json' },
        body: JSON.stringify(path.endsWith('push') ? { user: bob, data: { x: 1 } } : { user: bob }),
      });
      assert.equal(res.status, 401, path);
    }
    const pushed = await fetch(`${server.httpUrl}/api/v1/push`, {
      method: 'POST', headers: { Authorization: `Bearer ${ADMIN}` }, body: JSON.stringify({ user: alice, topic: 't', data: { for: 'alice' } }),
    });
    assert.equal(pushed.status, 202);
    await a.next((m) => m.type === 'push');
    // The scheme is case-insensitive (RFC 9110), on the admin API as on the upgrade.
    for (const scheme of ['bearer', 'BEARER']) {
      const res = await fetch(`${server.httpUrl}/api/v1/push`, {
        method: 'POST', headers: { Authorization: `${scheme} ${ADMIN}` }, body: JSON.stringify({ user: alice, topic: 't', data: { scheme } }),
      });
      assert.equal(res.status, 202, scheme);
      await a.next((m) => m.type === 'push');
    }
    await sleep(100);
    assert.deepEqual(b.log.filter((m) => m.type === 'push'), [], 'bob got alice\'s push');
  });
});

describe('ES256 tokens and anonymous sessions beside them', () => {
  let server;
  before(async () => {
    server = await startServer({ extraArgs: ['--jwt-public-key', ecPem, '--anonymous', '--anonymous-ids', 'signed'] });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });

  test('ES256 admits its subject; without a token only ids the server issued are allowed', async () => {
    const user = uniqueId('es');
    const { answer } = await helloAnswer(server, { token: token({ sub: user }, { alg: 'ES256' }) });
    assert.equal(answer.user, user);
    await refusedWith(server, { token: token({ sub: user }, { alg: 'RS256' }) }, 4010);
    await refusedWith(server, { user }, 4010); // claiming a token holder's id without the token
    const anon = await helloAnswer(server, {});
    assert.match(anon.answer.user, ANON_ID);
    const back = await helloAnswer(server, { user: anon.answer.user });
    assert.equal(back.answer.user, anon.answer.user);
    await refusedWith(server, { user: 'anon-returning-visitor' }, 4013);
  });
});

/** The form of an issued anonymous id (PROTOCOL.md, hello): a random part and its tag. */
const ANON_ID = /^anon-[0-9a-f]{24}\.[0-9a-f]{32}$/;

/** Flips one hex digit of `id` at `at` (negative: from the end). */
function flipDigit(id, at) {
  const i = at < 0 ? id.length + at : at;
  return id.slice(0, i) + (id[i] === '0' ? '1' : '0') + id.slice(i + 1);
}

describe('anonymous ids are issued and signed (issue S 11)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'rankcast-anon-'));
  const KEY_1 = 'anon-key-one-0123456789abcdef0123456789';
  const KEY_2 = 'anon-key-two-0123456789abcdef0123456789';
  const signed = (extra = []) => startServer({ extraArgs: ['--anonymous-ids', 'signed', ...extra] });
  after(() => {
    closeAllClients();
    rmSync(dataDir, { recursive: true, force: true });
  });

  test('a fresh visitor gets a signed id and comes back as itself on a reconnect; a second tab shares its lists', async () => {
    const server = await signed();
    try {
      const { client: first, welcome } = await connectHello(server, 'json');
      assert.match(welcome.user, ANON_ID);
      await first.subscribe('home', { k: 5 });
      first.close();
      const { client: again, welcome: w2 } = await connectHello(server, 'msgpack', { user: welcome.user });
      assert.equal(w2.user, welcome.user);
      await again.subscribe('home', { k: 5 });
      // The same session: an event on one connection re-ranks the list of the other.
      const { client: tab } = await connectHello(server, 'json', { user: welcome.user });
      const id = uniqueId('ev');
      tab.send({ type: 'event', id, kind: 'purchase', item: server.items[0].id });
      await tab.next((m) => m.type === 'ack' && m.ids.includes(id));
      const pushed = await again.next((m) => m.type === 'recs' && m.cause === id);
      assert.ok(!pushed.items.some((it) => it.item === server.items[0].id), 'purchased item not recommended again');
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
  });

  test('made-up, old-style and forged ids are refused with 4013 (fatal), counted, and the server stays up', async () => {
    const server = await signed();
    try {
      const { welcome } = await connectHello(server, 'json');
      const before = await sample(server, 'rankcast_errors_total', { code: '4013', name: 'anonymous_id_refused' });
      const refused = [
        'anon-returning-visitor', // chosen by a client
        'alice', // not even anon-
        'anon-0123456789abcdef', // the form servers issued before ids were signed
        flipDigit(welcome.user, -1), // the tag changed
        flipDigit(welcome.user, 5), // the random part changed: the tag no longer fits
        `${welcome.user.slice(0, 30)}${'0'.repeat(32)}`, // a tag of zeros
        welcome.user.toUpperCase().replace('ANON-', 'anon-'),
      ];
      for (const user of refused) {
        const answer = await refusedWith(server, { user }, 4013);
        assert.match(answer.message, /not an anonymous id this server issued/);
      }
      assert.equal(await sample(server, 'rankcast_errors_total', { code: '4013', name: 'anonymous_id_refused' }) - before, refused.length);
      // Told apart on /metrics: made up (or of the old form) against altered.
      assert.equal(await sample(server, 'rankcast_anonymous_ids_total', { verdict: 'unsigned' }), 4);
      assert.equal(await sample(server, 'rankcast_anonymous_ids_total', { verdict: 'bad_tag' }), 3);
      assert.equal(await sample(server, 'rankcast_anonymous_ids_total', { verdict: 'issued' }), 1);
      // Those who come back without an id get a fresh one; the issued id still works.
      const { welcome: fresh } = await connectHello(server, 'msgpack');
      assert.match(fresh.user, ANON_ID);
      assert.notEqual(fresh.user, welcome.user);
      const { welcome: back } = await connectHello(server, 'json', { user: welcome.user });
      assert.equal(back.user, welcome.user);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
  });

  test('with --data-dir an issued id is still accepted after a restart (the key is kept); another node\'s is not', async () => {
    let server = await signed(['--data-dir', dataDir]);
    let user;
    const id = uniqueId('ev');
    try {
      const { client, welcome } = await connectHello(server, 'json');
      user = welcome.user;
      client.send({ type: 'event', id, kind: 'view', item: server.items[1].id });
      await client.next((m) => m.type === 'ack' && m.ids.includes(id));
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
    server = await signed(['--data-dir', dataDir]);
    try {
      const { client, welcome } = await connectHello(server, 'msgpack', { user });
      assert.equal(welcome.user, user);
      // The same visitor: the retried event is recognised (de-duplicated by user) and acked.
      client.send({ type: 'event', id, kind: 'view', item: server.items[1].id });
      await client.next((m) => m.type === 'ack' && m.ids.includes(id));
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
    // A node without that key (no data dir: a key of its own) does not know the id.
    server = await signed();
    try {
      await refusedWith(server, { user }, 4013);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
  });

  test('nodes that share --pseudonym-key (a cluster) accept each other\'s ids; a node with another key does not', async () => {
    const shared = ['--pseudonym-key', 'cluster-secret-0123456789abcdef0123456789'];
    const a = await signed(shared);
    const b = await signed(shared);
    const c = await signed(['--pseudonym-key', 'another-secret-0123456789abcdef012345678']);
    try {
      const user = (await connectHello(a, 'json')).welcome.user;
      assert.equal((await connectHello(b, 'msgpack', { user })).welcome.user, user);
      await refusedWith(c, { user }, 4013);
    } finally {
      closeAllClients();
      for (const s of [a, b, c]) await stopServerCleanly(s);
    }
  });

  test('key rotation: ids of --anon-id-key-previous are accepted until it is dropped', async () => {
    let server = await signed(['--anon-id-key', KEY_1]);
    let old;
    try {
      old = (await connectHello(server, 'json')).welcome.user;
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
    server = await signed(['--anon-id-key', KEY_2, '--anon-id-key-previous', KEY_1]);
    let rotated;
    try {
      assert.equal((await connectHello(server, 'json', { user: old })).welcome.user, old);
      rotated = (await connectHello(server, 'json')).welcome.user;
      assert.equal((await connectHello(server, 'json', { user: rotated })).welcome.user, rotated);
      // What tells the operator when the previous key may go.
      assert.equal(await sample(server, 'rankcast_anonymous_ids_total', { verdict: 'ok_previous_key' }), 1);
      assert.equal(await sample(server, 'rankcast_anonymous_ids_total', { verdict: 'ok' }), 1);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
    server = await signed(['--anon-id-key', KEY_2]);
    try {
      await refusedWith(server, { user: old }, 4013);
      assert.equal((await connectHello(server, 'json', { user: rotated })).welcome.user, rotated);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
  });

  test('--demo takes the id a client chooses', async () => {
    const server = await startServer({ extraArgs: ['--demo', '--anonymous-ids', 'signed'] });
    try {
      for (const user of ['anon-returning-visitor', 'shopper-42']) {
        const { welcome } = await connectHello(server, 'json', { user });
        assert.equal(welcome.user, user);
      }
      assert.match((await connectHello(server, 'json')).welcome.user, ANON_ID);
    } finally {
      closeAllClients();
      await stopServerCleanly(server);
    }
  });

  test('a short --anon-id-key or an unknown --anonymous-ids is refused at start', async () => {
    for (const extra of [['--anon-id-key', 'short'], ['--anonymous-ids', 'any']]) {
      await assert.rejects(startServer({ extraArgs: extra, readyTimeoutMs: 5000 }));
    }
  });
});

describe('the upgrade gate', () => {
  let server;
  before(async () => {
    server = await startServer({
      extraArgs: ['--allowed-origins', 'https://shop.example, https://m.shop.example', '--max-conns-per-ip', '5',
        '--ping-interval-s', '1', '--pong-timeout-s', '1'],
    });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });

  test('Origin: listed origins and native clients (no Origin) pass, others get 403', async () => {
    (await connect(server, 'json', { origin: 'https://m.shop.example' })).close();
    (await connect(server, 'json')).close();
    await assert.rejects(connect(server, 'json', { origin: 'https://evil.example' }), (e) => e.statusCode === 403);
    assert.equal(await sample(server, 'rankcast_handshakes_refused_total', { reason: 'origin' }), 1);
    await sleep(100);
  });

  test('connections per address: over the limit gets 429, other addresses and later connections are served', async () => {
    const held = [];
    for (let i = 0; i < 5; i++) held.push(await connect(server, 'json', { localAddress: '127.0.0.7' }));
    const over = await rawUpgrade(server, {}, { localAddress: '127.0.0.7' });
    assert.equal(over.status, 429, over.text);
    over.sock.destroy();
    // Another address is not affected.
    const { welcome } = await connectHello(server, 'json', {});
    assert.ok(welcome.user);
    held.pop().close();
    await sleep(200);
    const again = await connect(server, 'json', { localAddress: '127.0.0.7' });
    again.close();
    for (const c of held) c.close();
    assert.ok(await sample(server, 'rankcast_handshakes_refused_total', { reason: 'per_ip' }) >= 1);
  });

  test('a connection that answers no ping is closed with 4023; one that does stays', async () => {
    const silent = await connect(server, 'json', { autoPong: false, localAddress: '127.0.0.8' });
    await silent.hello({});
    const alive = await connect(server, 'json', { localAddress: '127.0.0.8' });
    await alive.hello({});
    const closed = await silent.waitClose(6000);
    assert.equal(closed.code, 4023);
    assertError(silent.log.find((m) => m.type === 'error'), 4023);
    await sleep(1500);
    assert.equal(alive.closeInfo, null, 'the connection that answers pings was closed');
    alive.send({ type: 'ping' });
    await alive.next((m) => m.type === 'pong');
    assert.ok((await metrics(server)).rankcast_pings_sent_total >= 2);
  });

  test('a flood of pings is rate limited (4020), then cut off (4008), while others are served', async () => {
    const flooder = await connect(server, 'json', { localAddress: '127.0.0.10' });
    await flooder.hello({});
    const calm = await connect(server, 'json', { localAddress: '127.0.0.11' });
    await calm.hello({});
    for (let i = 0; i < 400; i++) flooder.send({ type: 'ping', t: i });
    const closed = await flooder.waitClose(5000);
    assert.equal(closed.code, 4008);
    const pongs = flooder.log.filter((m) => m.type === 'pong').length;
    assert.ok(pongs >= 90 && pongs < 200, `${pongs} pongs before the limit (burst 100, hello took one)`);
    assertError(flooder.log.find((m) => m.type === 'error'), 4020);
    calm.send({ type: 'ping', t: 1 });
    await calm.next((m) => m.type === 'pong');
  });

  test('slowloris: a handshake trickled a byte at a time is cut off while others are served', { timeout: 30000 }, async () => {
    const sock = netConnect({ port: server.port, host: server.host, localAddress: '127.0.0.9' });
    const text = 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Pad: ';
    let i = 0;
    const closedAt = new Promise((res) => sock.on('close', () => res(Date.now())));
    sock.on('error', () => {});
    const t0 = Date.now();
    const drip = setInterval(() => sock.write(text[i++ % text.length]), 500);
    const { client } = await connectHello(server, 'json', {});
    client.send({ type: 'ping' });
    await client.next((m) => m.type === 'pong');
    const ms = (await closedAt) - t0;
    clearInterval(drip);
    assert.ok(ms < 15000, `closed after ${ms} ms`);
  });
});

describe('TLS', () => {
  const tlsDir = join(dir, 'tls');
  let server;
  let ca;

  /** A CA and a certificate for 127.0.0.1 signed by it (openssl CLI, as an operator would). */
  function makeCert(name, days = 2) {
    execFileSync('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tlsDir, `${name}.key`),
      '-out', join(tlsDir, `${name}.csr`), '-subj', `/CN=${name}`], { stdio: 'ignore' });
    writeFileSync(join(tlsDir, `${name}.ext`), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    execFileSync('openssl', ['x509', '-req', '-in', join(tlsDir, `${name}.csr`), '-CA', join(tlsDir, 'ca.pem'), '-CAkey', join(tlsDir, 'ca.key'),
      '-CAcreateserial', '-days', String(days), '-out', join(tlsDir, `${name}.pem`), '-extfile', join(tlsDir, `${name}.ext`)], { stdio: 'ignore' });
  }

  function peerCert(opts = {}) {
    return new Promise((res, rej) => {
      const s = tlsConnect({ host: '127.0.0.1', port: server.port, ca, ...opts }, () => {
        const c = s.getPeerX509Certificate();
        const v = s.getProtocol();
        s.destroy();
        res({ subject: c.subject, protocol: v });
      });
      s.on('error', rej);
    });
  }

  before(async () => {
    execFileSync('mkdir', ['-p', tlsDir]);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(tlsDir, 'ca.key'),
      '-out', join(tlsDir, 'ca.pem'), '-days', '2', '-subj', '/CN=rankcast test CA'], { stdio: 'ignore' });
    makeCert('first');
    makeCert('second');
    copyFileSync(join(tlsDir, 'first.pem'), join(tlsDir, 'live.pem'));
    copyFileSync(join(tlsDir, 'first.key'), join(tlsDir, 'live.key'));
    ca = execFileSync('cat', [join(tlsDir, 'ca.pem')]);
    server = await startServer({
      extraArgs: ['--tls-cert', join(tlsDir, 'live.pem'), '--tls-key', join(tlsDir, 'live.key')],
      tls: { ca },
    });
  });
  after(async () => {
    closeAllClients();
    await stopServerCleanly(server);
  });

  test('wss sessions work, TLS 1.0 and 1.1 are refused, plaintext gets nothing', async () => {
    const { client, welcome } = await connectHello(server, 'msgpack', {});
    assert.ok(welcome.user);
    const recs = await client.subscribe('home', { k: 3 });
    assert.equal(recs.items.length, 3);
    assert.match((await peerCert()).protocol, /^TLSv1\.[23]$/);
    for (const maxVersion of ['TLSv1', 'TLSv1.1']) {
      await assert.rejects(peerCert({ minVersion: 'TLSv1', maxVersion, ciphers: 'DEFAULT@SECLEVEL=0' }), /./, maxVersion);
    }
    await assert.rejects(fetch(`http://127.0.0.1:${server.port}/healthz`, { signal: AbortSignal.timeout(3000) }));
  });

  // A connection that has sent a byte that is not TLS and hung up before the server accepts it
  // fails TLS inside lws's adoption of the socket; lws then closes the descriptor itself. The
  // server closed it a second time and so freed its number for the next accept, whose
  // connection lws's close then ended: libuv aborted the process. The server is stopped
  // (SIGSTOP) while the burst connects, so every junk connection is complete before its accept.
  test('a burst of connections that send junk and hang up before their accept: the wss sessions between them are served', async () => {
    const junk = [];
    const sessions = [];
    server.proc.kill('SIGSTOP');
    try {
      const written = [];
      for (let i = 0; i < 100; i++) {
        const s = netConnect({ host: '127.0.0.1', port: server.port });
        s.on('error', () => {});
        written.push(new Promise((res) => s.end('\n', res)));
        junk.push(s);
        sessions.push(connectHello(server, 'json', {}));
      }
      await Promise.all(written);
      await sleep(200); // the wss clients' TCP handshakes and ClientHellos, into the backlog
    } finally {
      server.proc.kill('SIGCONT');
    }
    const opened = await Promise.allSettled(sessions);
    for (const s of junk) s.destroy();
    assert.deepEqual([server.proc.exitCode, server.proc.signalCode], [null, null], 'the server is up');
    const failed = opened.filter((r) => r.status === 'rejected').map((r) => String(r.reason));
    assert.deepEqual(failed, [], 'every wss session between the junk opened');
    for (const { value: { client } } of opened) {
      client.send({ type: 'ping' });
      await client.next((m) => m.type === 'pong');
      assert.equal(client.closeInfo, null);
    }
  });

  test('SIGHUP reloads the certificate: live connections stay, new ones see the new one, a bad pair is refused', async () => {
    const { client } = await connectHello(server, 'json', {});
    assert.match((await peerCert()).subject, /CN=first/);
    copyFileSync(join(tlsDir, 'second.pem'), join(tlsDir, 'live.pem'));
    copyFileSync(join(tlsDir, 'second.key'), join(tlsDir, 'live.key'));
    server.proc.kill('SIGHUP');
    await sleep(300);
    assert.match((await peerCert()).subject, /CN=second/);
    client.send({ type: 'ping' });
    await client.next((m) => m.type === 'pong');
    assert.equal(client.closeInfo, null);
    // A key that does not match: refused, the second certificate stays in service.
    copyFileSync(join(tlsDir, 'first.key'), join(tlsDir, 'live.key'));
    server.proc.kill('SIGHUP');
    await sleep(300);
    assert.match((await peerCert()).subject, /CN=second/);
    const m = await metrics(server);
    assert.equal(m.rankcast_tls_reloads_total, 1);
    assert.equal(m.rankcast_tls_reload_failures_total, 1);
    copyFileSync(join(tlsDir, 'second.key'), join(tlsDir, 'live.key'));
  });
});

test('a certificate that does not load stops the start with a clear message', async () => {
  await assert.rejects(startServer({ extraArgs: ['--tls-cert', '/nonexistent.pem', '--tls-key', '/nonexistent.key'], readyTimeoutMs: 3000 }),
    /TLS: cannot use the certificate/);
});
