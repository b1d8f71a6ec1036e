// permessage-deflate (RFC 7692), off unless --ws-deflate: negotiated only when the server
// offers it; then lists go compressed (RSV1) and small messages as they are, each compressed
// message inflates on its own within the window the client allowed, clients that compress
// everything they send (as browsers do) are understood, and the size limit applies to the
// inflated message.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { after, afterEach, before, describe, test } from 'node:test';
import zlib from 'node:zlib';

import {
  ENCODINGS,
  SUBPROTOCOL,
  assertCleanClient,
  assertError,
  closeAllClients,
  connect,
  startServer,
  stopServerCleanly,
  uniqueId,
} from './harness.mjs';

let plain;
let deflating;
before(async () => {
  [plain, deflating] = await Promise.all([startServer(), startServer({ extraArgs: ['--ws-deflate'] })]);
});
after(async () => {
  closeAllClients();
  await Promise.all([stopServerCleanly(plain), stopServerCleanly(deflating)]);
});
afterEach(() => {
  assert.deepEqual(closeAllClients(), []);
});

const TAIL = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/**
 * A WebSocket client written against the wire, to see what the ws package hides: the RSV1 bit
 * and the compressed bytes of every frame. JSON subprotocol; sends masked, uncompressed frames.
 */
async function rawConnect(server, extensions) {
  const sock = net.connect(server.port, server.host);
  await new Promise((res, rej) => sock.once('connect', res).once('error', rej));
  sock.write([
    'GET /ws HTTP/1.1',
    `Host: ${server.host}:${server.port}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Protocol: ${SUBPROTOCOL.json}`,
    `Sec-WebSocket-Extensions: ${extensions}`,
    '', '',
  ].join('\r\n'));
  let buf = Buffer.alloc(0);
  const frames = [];
  const waiters = [];
  let headers = null;
  let upgraded;
  const upgradedP = new Promise((res) => { upgraded = res; });
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (headers === null) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n');
      headers = { status: Number(lines[0].split(' ')[1]) };
      for (const l of lines.slice(1)) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      buf = buf.subarray(end + 4);
      upgraded(headers);
    }
    for (;;) {
      if (buf.length < 2) break;
      let len = buf[1] & 0x7f;
      let at = 2;
      if (len === 126) {
        if (buf.length < 4) break;
        len = buf.readUInt16BE(2);
        at = 4;
      } else if (len === 127) {
        if (buf.length < 10) break;
        len = Number(buf.readBigUInt64BE(2));
        at = 10;
      }
      if (buf.length < at + len) break;
      assert.equal(buf[1] & 0x80, 0, 'a server frame must not be masked');
      frames.push({ fin: !!(buf[0] & 0x80), rsv1: !!(buf[0] & 0x40), opcode: buf[0] & 0x0f, payload: buf.subarray(at, at + len) });
      buf = buf.subarray(at + len);
    }
    for (const w of waiters.splice(0)) w();
  });
  const client = {
    sock,
    headers: await upgradedP,
    send(msg) {
      const payload = Buffer.from(JSON.stringify(msg));
      assert.ok(payload.length < 126);
      const mask = randomBytes(4);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]));
      sock.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    },
    /** The next data frame: {rsv1, wire (bytes on the wire), msg (decoded)}. */
    async next(windowBits = 15, timeoutMs = 3000) {
      const deadline = Date.now() + timeoutMs;
      while (frames.length === 0) {
        assert.ok(Date.now() < deadline, 'no frame in time');
        await new Promise((res) => { waiters.push(res); setTimeout(res, 50); });
      }
      const f = frames.shift();
      assert.ok(f.fin, 'every message is one frame');
      assert.equal(f.opcode, 1, 'a text frame');
      // 64 bytes of output per inflate call: zlib then checks back-references against the
      // window, as a client holding only that much history would (one big call would not).
      const text = f.rsv1 ? zlib.inflateRawSync(Buffer.concat([f.payload, TAIL]), { windowBits, chunkSize: 64, finishFlush: zlib.constants.Z_SYNC_FLUSH }) : f.payload;
      return { rsv1: f.rsv1, wire: f.payload.length, size: text.length, msg: JSON.parse(text.toString('utf8')) };
    },
    close() {
      sock.destroy();
    },
  };
  return client;
}

test('without --ws-deflate the extension is not taken, and a client offering it is served', async () => {
  const client = await connect(plain, 'json', { perMessageDeflate: true });
  assert.equal(client.handshakeHeaders['sec-websocket-extensions'], undefined);
  await client.hello({ user: uniqueId('nodefl') });
  await client.subscribe('home', { k: 20 });
  assertCleanClient(client);
});

describe('with --ws-deflate', () => {
  for (const enc of ENCODINGS) {
    test(`${enc}: a client compressing all it sends (as browsers do) gets its welcome, lists and acks`, async () => {
      const client = await connect(deflating, enc, { perMessageDeflate: { threshold: 0 } });
      assert.match(client.handshakeHeaders['sec-websocket-extensions'] ?? '', /^permessage-deflate/);
      await client.hello({ user: uniqueId('defl') });
      const home = await client.subscribe('home', { k: 20 });
      const item = home.items[0].item;
      client.send({ type: 'event', id: 'd1', kind: 'view', item });
      const ack = await client.next((m) => m.type === 'ack');
      assert.deepEqual(ack.ids, ['d1']);
      const pushed = await client.next((m) => m.type === 'recs' && m.cause === 'd1');
      assert.ok(!pushed.items.some((x) => x.item === item), 'the viewed item left the list');
      await client.roundTrip();
      assertCleanClient(client);
    });
  }

  test('lists go compressed and inflate on their own; small messages go as they are', async () => {
    const client = await rawConnect(deflating, 'permessage-deflate; client_max_window_bits');
    try {
      assert.equal(client.headers.status, 101);
      assert.match(client.headers['sec-websocket-extensions'] ?? '', /^permessage-deflate/);
      client.send({ type: 'hello', v: 1, user: uniqueId('raw') });
      const welcome = await client.next();
      assert.equal(welcome.msg.type, 'welcome');
      assert.ok(welcome.size < 256 && !welcome.rsv1, `a ${welcome.size}-byte welcome goes uncompressed`);
      client.send({ type: 'subscribe', surface: 'home', k: 20 });
      const first = await client.next();
      assert.equal(first.msg.type, 'recs');
      assert.equal(first.msg.items.length, 20);
      assert.ok(first.rsv1, 'a list is compressed');
      assert.ok(first.wire < first.size * 0.6, `compressed ${first.size} bytes to ${first.wire}`);
      client.send({ type: 'event', id: 'r1', kind: 'click', item: first.msg.items[0].item });
      const got = [await client.next(), await client.next()];
      const ack = got.find((f) => f.msg.type === 'ack');
      const pushed = got.find((f) => f.msg.type === 'recs');
      assert.ok(ack && !ack.rsv1, 'the ack goes uncompressed');
      assert.deepEqual(ack.msg.ids, ['r1']);
      // Inflated with a fresh stream: nothing refers back to an earlier message.
      assert.ok(pushed && pushed.rsv1);
      assert.equal(pushed.msg.cause, 'r1');
    } finally {
      client.close();
    }
  });

  test('a client limiting the server window to 2^9 bytes inflates every list with that window', async () => {
    const client = await rawConnect(deflating, 'permessage-deflate; server_max_window_bits=9');
    try {
      // lws 4.1.6 accepts the offer without echoing the limit; the server keeps to it anyway.
      assert.match(client.headers['sec-websocket-extensions'] ?? '', /^permessage-deflate/);
      client.send({ type: 'hello', v: 1, user: uniqueId('win9') });
      assert.equal((await client.next(9)).msg.type, 'welcome');
      client.send({ type: 'subscribe', surface: 'home', k: 50 });
      const list = await client.next(9);
      assert.ok(list.rsv1 && list.size > 2048, `a ${list.size}-byte list, compressed`);
      assert.equal(list.msg.items.length, 50);
    } finally {
      client.close();
    }
  });

  test('the size limit applies to the inflated message', async () => {
    // 70,000 repeated bytes compress to a few hundred; the limit is on the message, not the wire.
    const client = await connect(deflating, 'json', { perMessageDeflate: { threshold: 0 } });
    await client.hello({ user: uniqueId('zip') });
    client.sendRaw(JSON.stringify({ type: 'ping', t: 1, pad: 'x'.repeat(70000) }), { binary: false });
    assertError(await client.nextAny(), 4003);
    assert.equal((await client.waitClose()).code, 1009);
  });
});
