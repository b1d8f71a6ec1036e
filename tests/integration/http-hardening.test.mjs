// SPDX-License-Identifier: Apache-2.0
// The HTTP side under hostile requests (issue S): request bodies have a total deadline,
// ambiguous framing is refused and the connection closed (no request smuggling behind a proxy),
// pipelined requests are answered in order, and static files never leave their roots (symlinks
// out of them are 404).
// Raw sockets throughout: a well-behaved client library cannot send most of these requests.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { httpGet, startServer, stopServerCleanly } from './harness.mjs';

const ADMIN = 'hardening-admin-token';
let server;

before(async () => {
  server = await startServer({ extraArgs: ['--admin-token', ADMIN] });
});
after(async () => {
  await stopServerCleanly(server);
});

/**
 * Sends `request` on a fresh connection (then, with `trickle`, one more byte every second) and
 * resolves when the server closes it, or after `waitMs`: {ms, text, closedByServer}.
 */
function exchange(request, opts = {}) {
  return exchangeWith(server, request, opts);
}

function exchangeWith(target, request, { trickle = false, waitMs = 20000 } = {}) {
  return new Promise((resolve) => {
    const sock = netConnect({ host: target.host, port: target.port });
    const t0 = Date.now();
    let text = '';
    let drip = null;
    let closedByServer = true;
    const timer = setTimeout(() => {
      closedByServer = false;
      sock.destroy();
    }, waitMs);
    sock.on('data', (d) => {
      text += d.toString('latin1');
    });
    sock.on('error', () => {});
    sock.on('close', () => {
      clearInterval(drip);
      clearTimeout(timer);
      resolve({ ms: Date.now() - t0, text, closedByServer });
    });
    sock.write(request);
    if (trickle) drip = setInterval(() => sock.writable && sock.write(' '), 1000);
  });
}

/** The status codes of every response in `text`, in order. */
const statuses = (text) => [...text.matchAll(/^HTTP\/1\.[01] (\d{3}) /gm)].map((m) => Number(m[1]));

const head = (method, path, headers = []) => `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${headers.map((h) => `${h}\r\n`).join('')}\r\n`;
const auth = `Authorization: Bearer ${ADMIN}`;

describe('request bodies have a deadline', () => {
  test('a body trickled a byte a second, or stalled, gets 408 and a close within about 10 s (9.5), with or without a credential', { timeout: 60000 }, async () => {
    const cases = [
      ['trickled, admin token', head('POST', '/api/v1/push', [auth, 'Content-Length: 5000']), { trickle: true }],
      ['stalled after a byte, admin token', `${head('POST', '/api/v1/push', [auth, 'Content-Length: 5000'])}{`, {}],
      ['trickled, no token', head('POST', '/api/v1/push', ['Content-Length: 5000']), { trickle: true }],
      ['trickled, wrong token', head('POST', '/api/v1/catalog/items', ['Authorization: Bearer nope', 'Content-Length: 5000']), { trickle: true }],
      ['trickled, unknown API path', head('POST', '/api/v1/nothing-here', ['Content-Length: 5000']), { trickle: true }],
      ['trickled, static file', head('POST', '/index.html', ['Content-Length: 5000']), { trickle: true }],
      ['trickled, GET with a body', head('GET', '/healthz', ['Content-Length: 5000']), { trickle: true }],
    ];
    const results = await Promise.all(cases.map(([, req, opts]) => exchange(req, { ...opts, waitMs: 25000 })));
    results.forEach((r, i) => {
      const name = cases[i][0];
      assert.ok(r.closedByServer, `${name}: still open after ${r.ms} ms`);
      assert.ok(r.ms < 14000, `${name}: closed after ${r.ms} ms`);
      assert.equal(statuses(r.text).length, 1, `${name}: ${JSON.stringify(r.text)}`);
    });
    // With the credential the body is awaited, for its deadline and no longer.
    for (const i of [0, 1]) {
      assert.equal(statuses(results[i].text)[0], 408, `${cases[i][0]}: ${results[i].text}`);
      assert.match(results[i].text, /connection: close/i);
      assert.match(results[i].text, /"error":/);
      assert.ok(results[i].ms >= 8000, `${cases[i][0]}: 408 after only ${results[i].ms} ms`);
    }
    // Without it, or where no body is read, the answer comes at once and the body is not waited for.
    for (const i of [2, 3, 4, 5, 6]) {
      assert.ok(results[i].ms < 3000, `${cases[i][0]}: answered after ${results[i].ms} ms`);
      assert.ok([400, 401, 404].includes(statuses(results[i].text)[0]), `${cases[i][0]}: ${results[i].text}`);
    }
    const m = await httpGet(server, '/metrics');
    assert.match(m.body, /rankcast_http_refused_total\{reason="body_timeout"\} [1-9]/);
  });

  test('a body that arrives in time is answered, and the connection is kept for the next request', async () => {
    const body = JSON.stringify({ user: 'anon-nobody', data: { n: 1 } });
    const req = head('POST', '/api/v1/push', [auth, 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`]) + body
      + head('GET', '/healthz');
    const r = await exchange(req, { waitMs: 1500 });
    assert.equal(r.closedByServer, false, r.text);
    assert.equal(statuses(r.text).length, 2, r.text);
    assert.equal(statuses(r.text)[1], 200);
  });
});

describe('request framing', () => {
  const cases = [
    ['two different Content-Lengths', head('POST', '/api/v1/push', [auth, 'Content-Length: 2', 'Content-Length: 40']) + '{}', 400],
    ['two equal Content-Lengths', head('POST', '/api/v1/push', [auth, 'Content-Length: 2', 'Content-Length: 2']) + '{}', 400],
    ['a list in Content-Length', head('POST', '/api/v1/push', [auth, 'Content-Length: 2, 40']) + '{}', 400],
    ['a signed Content-Length', head('POST', '/api/v1/push', [auth, 'Content-Length: +2']) + '{}', 400],
    ['a Content-Length that is not a number', head('POST', '/api/v1/push', [auth, 'Content-Length: 2x']) + '{}', 400],
    ['Content-Length with Transfer-Encoding', head('POST', '/api/v1/push', [auth, 'Content-Length: 40', 'Transfer-Encoding: chunked']) + '2\r\n{}\r\n0\r\n\r\n', 400],
    ['a chunked body', head('POST', '/api/v1/push', [auth, 'Transfer-Encoding: chunked']) + '2\r\n{}\r\n0\r\n\r\n', 411],
    ['a chunked body on a GET', head('GET', '/healthz', ['Transfer-Encoding: chunked']) + '0\r\n\r\n', 411],
    ['a POST without a length', head('POST', '/api/v1/push', [auth]) + '{}', 411],
    ['an upgrade with a body', head('GET', '/ws', ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Content-Length: 5']) + 'hello', 400],
    ['an upgrade with Transfer-Encoding', head('GET', '/ws', ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', 'Transfer-Encoding: chunked']) + '0\r\n\r\n', 411],
  ];
  for (const [name, req, status] of cases) {
    test(`${name}: ${status} and the connection closes, nothing after it is read as a request`, async () => {
      // A smuggled request follows; it must never be answered.
      const r = await exchange(req + head('GET', '/healthz'), { waitMs: 5000 });
      assert.ok(r.closedByServer, `not closed: ${JSON.stringify(r.text)}`);
      assert.ok(r.ms < 3000, `closed after ${r.ms} ms`);
      assert.deepEqual(statuses(r.text), [status], JSON.stringify(r.text));
    });
  }

  test('the same on a kept-alive connection, after a good request', async () => {
    const r = await exchange(head('GET', '/healthz') + head('POST', '/api/v1/push', [auth, 'Content-Length: 40', 'Transfer-Encoding: chunked'])
      + '0\r\n\r\n' + head('GET', '/healthz'), { waitMs: 5000 });
    assert.ok(r.closedByServer);
    assert.deepEqual(statuses(r.text), [200, 400], JSON.stringify(r.text));
  });

  test('pipelined requests are answered whole and in order', async () => {
    const r = await exchange(head('GET', '/healthz') + head('GET', '/readyz') + head('GET', '/healthz'), { waitMs: 1500 });
    const parts = r.text.split(/(?=HTTP\/1\.1 )/);
    assert.equal(parts.length, 3, JSON.stringify(r.text));
    for (const part of parts) {
      const [headers, body] = part.split('\r\n\r\n');
      const length = Number(/content-length: (\d+)/i.exec(headers)[1]);
      assert.equal(Buffer.byteLength(body, 'latin1'), length, `a response whose body is not its length: ${JSON.stringify(part)}`);
    }
  });

  test('counted in rankcast_http_refused_total', async () => {
    const m = await httpGet(server, '/metrics');
    assert.match(m.body, /rankcast_http_refused_total\{reason="framing"\} [1-9]/);
    assert.match(m.body, /rankcast_http_refused_total\{reason="length_required"\} [1-9]/);
    assert.match(m.body, /rankcast_handshakes_refused_total\{reason="framing"\} [1-9]/);
  });
});

describe('static files never leave their roots', () => {
  // A web root and an SDK root of our own, each with symlinks out of it (to a file and to a
  // directory) and within it; the secret lies beside them, outside both.
  const dir = mkdtempSync(join(tmpdir(), 'rankcast-roots-'));
  const web = join(dir, 'web');
  const sdk = join(dir, 'sdk');
  const outside = join(dir, 'outside');
  let roots;

  before(async () => {
    for (const d of [join(web, 'sub'), join(sdk, 'src'), join(sdk, 'node_modules/@msgpack/msgpack/dist.esm'), outside]) mkdirSync(d, { recursive: true });
    writeFileSync(join(outside, 'secret.txt'), 'SECRET outside the roots\n');
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>home</title>\n');
    writeFileSync(join(web, 'sub', 'page.txt'), 'inside\n');
    writeFileSync(join(sdk, 'src', 'index.js'), 'export const sdk = 1;\n');
    symlinkSync(join(outside, 'secret.txt'), join(web, 'leak.txt'));
    symlinkSync('../outside/secret.txt', join(web, 'relative-leak.txt'));
    symlinkSync(outside, join(web, 'leakdir'));
    symlinkSync('sub/page.txt', join(web, 'inside.txt'));
    symlinkSync(join(outside, 'secret.txt'), join(sdk, 'src', 'leak.js'));
    symlinkSync(outside, join(sdk, 'node_modules/@msgpack/msgpack/dist.esm', 'leakdir'));
    roots = await startServer({ extraArgs: ['--web-root', web, '--sdk-root', sdk] });
  });
  after(async () => {
    await stopServerCleanly(roots);
    rmSync(dir, { recursive: true, force: true });
  });

  const get = async (path) => {
    const res = await fetch(`${roots.httpUrl}${path}`);
    return { status: res.status, body: await res.text() };
  };

  test('a symlink out of the web root or the SDK mounts is 404; files and links inside are served', async () => {
    for (const path of ['/leak.txt', '/relative-leak.txt', '/leakdir/secret.txt', '/sdk/src/leak.js', '/vendor/msgpack/leakdir/secret.txt']) {
      const r = await get(path);
      assert.equal(r.status, 404, `${path}: ${r.status} ${r.body}`);
      assert.doesNotMatch(r.body, /SECRET/, path);
    }
    assert.equal((await get('/')).status, 200);
    assert.equal((await get('/sub/page.txt')).body, 'inside\n');
    assert.equal((await get('/inside.txt')).body, 'inside\n');
    assert.match((await get('/sdk/src/index.js')).body, /sdk = 1/);
  });

  test('a path spelt with .. through a link is 404 too', async () => {
    const r = await exchangeWith(roots, head('GET', '/sub/../leak.txt'));
    assert.deepEqual(statuses(r.text), [404], r.text);
    assert.doesNotMatch(r.text, /SECRET/);
  });
});
