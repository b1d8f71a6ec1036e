// SPDX-License-Identifier: Apache-2.0
// WebSocket frames as RFC 6455 sets them, against hostile clients (issue S): invalid close
// frames fail the connection with 1002 or 1007 instead of being echoed, and WebSocket ping
// frames share a connection's rate budget. Raw sockets: `ws` refuses to send most of these.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect as netConnect } from 'node:net';
import { after, before, describe, test } from 'node:test';

import WebSocket from 'ws';

import { SUBPROTOCOL, closeAllClients, connectHello, sleep, startServer, stopServerCleanly, uniqueId } from './harness.mjs';

let server;
before(async () => {
  server = await startServer();
});
after(async () => {
  closeAllClients();
  await stopServerCleanly(server);
});

/** One client frame: FIN set, masked unless told otherwise. */
function frame(opcode, payload, { mask = true } = {}) {
  const body = Buffer.from(payload);
  const head = [0x80 | opcode];
  if (body.length < 126) head.push((mask ? 0x80 : 0) | body.length);
  else head.push((mask ? 0x80 : 0) | 126, body.length >> 8, body.length & 255);
  const key = mask ? randomBytes(4) : Buffer.alloc(0);
  if (mask) for (let i = 0; i < body.length; i++) body[i] ^= key[i % 4];
  return Buffer.concat([Buffer.from(head), key, body]);
}

const closePayload = (code, reason = Buffer.alloc(0)) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(code);
  return Buffer.concat([b, Buffer.from(reason)]);
};

/**
 * A raw WebSocket session: upgrades, says hello, and parses the server's frames into `frames`
 * ({op, payload}). `waitFor(pred, ms)` resolves with the first frame matching.
 */
async function rawSession() {
  const sock = netConnect({ host: server.host, port: server.port });
  sock.on('error', () => {});
  const frames = [];
  const waiters = [];
  let buf = Buffer.alloc(0);
  let upgraded = false;
  let closed = false;
  const opened = new Promise((resolve, reject) => {
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString();
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(head));
        upgraded = true;
        buf = buf.subarray(end + 4);
        resolve();
      }
      while (buf.length >= 2) {
        let len = buf[1] & 127;
        let off = 2;
        if (len === 126) {
          if (buf.length < 4) break;
          len = buf.readUInt16BE(2);
          off = 4;
        }
        if (buf.length < off + len) break;
        frames.push({ op: buf[0] & 15, payload: buf.subarray(off, off + len) });
        buf = buf.subarray(off + len);
      }
      for (const w of [...waiters]) w();
    });
  });
  sock.on('close', () => {
    closed = true;
    for (const w of [...waiters]) w();
  });
  sock.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    + `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n`
    + `Sec-WebSocket-Protocol: ${SUBPROTOCOL.json}\r\n\r\n`);
  await opened;
  const session = {
    sock,
    frames,
    get closed() {
      return closed;
    },
    send: (f) => sock.write(f),
    waitFor(pred, ms = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const f = frames.find(pred);
          if (f || closed) {
            waiters.splice(waiters.indexOf(check), 1);
            clearTimeout(timer);
            if (f) resolve(f);
            else reject(new Error(`closed without the frame; got ${JSON.stringify(frames.map((x) => x.op))}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(check), 1);
          reject(new Error(`no such frame within ${ms} ms; got ${JSON.stringify(frames.map((x) => x.op))}`));
        }, ms);
        waiters.push(check);
        check();
      });
    },
  };
  session.send(frame(1, JSON.stringify({ type: 'hello', v: 1, user: uniqueId('anon-rfc') })));
  await session.waitFor((f) => f.op === 1 && JSON.parse(f.payload).type === 'welcome');
  return session;
}

/** Sends a close frame with `payload`; resolves to the code of the server's close frame. */
async function closeWith(payload) {
  const s = await rawSession();
  s.send(frame(8, payload));
  const f = await s.waitFor((x) => x.op === 8);
  s.sock.destroy();
  return { code: f.payload.length >= 2 ? f.payload.readUInt16BE(0) : null, reason: f.payload.subarray(2) };
}

describe('close frames (RFC 6455 section 5.5.1, 7.4)', () => {
  for (const code of [5000, 5001, 65535, 999, 1004, 1005, 1006, 1015, 1016, 2999]) {
    test(`close code ${code} is not valid on the wire: answered with 1002, not echoed`, async () => {
      assert.equal((await closeWith(closePayload(code))).code, 1002);
    });
  }
  test('a 1-byte close payload (half a code) gets 1002', async () => {
    assert.equal((await closeWith(Buffer.from([0x03]))).code, 1002);
  });
  test('a close reason that is not UTF-8 gets 1007', async () => {
    assert.equal((await closeWith(closePayload(1000, Buffer.from([0x66, 0xff, 0xfe])))).code, 1007);
    assert.equal((await closeWith(closePayload(1000, Buffer.from([0xed, 0xa0, 0x80])))).code, 1007, 'a UTF-16 surrogate');
  });
  for (const code of [1000, 1001, 3000, 4000, 4999]) {
    test(`valid close code ${code} is echoed, with a UTF-8 reason`, async () => {
      const r = await closeWith(closePayload(code, 'bye é'));
      assert.equal(r.code, code);
    });
  }
  test('an empty close is answered with an empty close', async () => {
    assert.equal((await closeWith(Buffer.alloc(0))).code, null);
  });
  test('the server still serves', async () => {
    const { client } = await connectHello(server, 'json', {});
    assert.equal((await client.subscribe('home', { k: 3 })).items.length, 3);
  });
});

describe('WebSocket ping frames share the rate budget of messages other than events', () => {
  /** A `ws` client that has said hello; `messages` collects what the server sends. */
  async function open(user) {
    const ws = new WebSocket(server.wsUrl, SUBPROTOCOL.json);
    const messages = [];
    ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
    ws.on('error', () => {});
    const closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'hello', v: 1, user }));
    while (!messages.some((m) => m.type === 'welcome')) await sleep(10);
    return { ws, messages, closed };
  }

  test('a flood of pings gets 4020 and then a close with 4008, while another client is served', { timeout: 30000 }, async () => {
    const flooder = await open(uniqueId('anon-pingflood'));
    const calm = await open(uniqueId('anon-calm'));
    let sent = 0;
    const t0 = Date.now();
    let code = null;
    flooder.closed.then((c) => {
      code = c;
    });
    while (code === null && Date.now() - t0 < 15000) {
      if (flooder.ws.readyState !== WebSocket.OPEN) break;
      if (flooder.ws.bufferedAmount < 1 << 16) {
        for (let i = 0; i < 200; i++) flooder.ws.ping();
        sent += 200;
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(await flooder.closed, 4008, `the flooder was not cut off after ${sent} pings`);
    const limited = flooder.messages.filter((m) => m.type === 'error' && m.code === 4020);
    assert.ok(limited.length >= 1, JSON.stringify(flooder.messages.slice(-3)));
    assert.match(limited[0].message, /ping/i);
    calm.ws.send(JSON.stringify({ type: 'ping', t: 1 }));
    while (!calm.messages.some((m) => m.type === 'pong')) await sleep(10);
    calm.ws.close();
  });

  test('pings at a modest rate (20 a second for 3 s) are answered and never limited', async () => {
    const c = await open(uniqueId('anon-pinger'));
    let pongs = 0;
    c.ws.on('pong', () => {
      pongs += 1;
    });
    for (let i = 0; i < 60; i++) {
      c.ws.ping();
      await sleep(50);
    }
    await sleep(300);
    assert.ok(pongs >= 55, `${pongs} pongs for 60 pings`);
    assert.deepEqual(c.messages.filter((m) => m.type === 'error'), []);
    assert.equal(c.ws.readyState, WebSocket.OPEN);
    c.ws.close();
  });
});
