// SPDX-License-Identifier: Apache-2.0
// permessage-deflate (RFC 7692), off unless --ws-deflate: negotiated only when the server
// offers it; then lists go compressed (RSV1) and small messages as they are, each compressed
// message inflates on its own within the window the client allowed, clients that compress
// everything they send (as browsers do) are understood, and the size limit applies to the
// inflated message. The server inflates whole messages itself, bounded by that limit: crafted
// or enormous compressed input is an error for its sender, never a crash or a CPU sink.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
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
  sleep,
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

function deflateMessage(buf, options = {}) {
  const out = zlib.deflateRawSync(buf, { finishFlush: zlib.constants.Z_SYNC_FLUSH, ...options });
  assert.deepEqual(out.subarray(-4), TAIL);
  return out.subarray(0, -4);
}

const pongOf = ({ msg }) => ({ type: msg.type, t: msg.t });

/** A raw client of the deflating server that offered permessage-deflate and has its welcome. */
async function rawSession(prefix) {
  const client = await rawConnect(deflating, 'permessage-deflate');
  client.send({ type: 'hello', v: 1, user: uniqueId(prefix) });
  assert.equal((await client.next()).msg.type, 'welcome');
  return client;
}

/** CPU seconds the process has used (user + system), from /proc. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

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
  let closed;
  const closedP = new Promise((res) => { closed = res; });
  sock.on('close', () => closed({ code: 1006 }));
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
      if ((buf[0] & 0x0f) === 8) {
        // Answered, as RFC 6455 asks of a client.
        const code = len >= 2 ? buf.readUInt16BE(at) : 1005;
        sock.write(Buffer.from([0x88, 0x82, 0, 0, 0, 0, code >> 8, code & 0xff]));
        closed({ code, reason: buf.subarray(at + 2, at + len).toString() });
      }
      frames.push({ fin: !!(buf[0] & 0x80), rsv1: !!(buf[0] & 0x40), opcode: buf[0] & 0x0f, payload: buf.subarray(at, at + len) });
      buf = buf.subarray(at + len);
    }
    for (const w of waiters.splice(0)) w();
  });
  const client = {
    sock,
    headers: await upgradedP,
    send(msg) {
      this.sendFrame(0x81, Buffer.from(JSON.stringify(msg)));
    },
    /** One masked frame: `b0` is its first byte (FIN, RSV1, opcode). */
    sendFrame(b0, payload) {
      const n = payload.length;
      const len = n < 126 ? Buffer.from([0x80 | n]) : n < 65536 ? Buffer.from([0x80 | 126, n >> 8, n & 0xff]) : null;
      assert.ok(len, 'frames under 64 KB');
      const mask = randomBytes(4);
      const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]));
      sock.write(Buffer.concat([Buffer.from([b0]), len, mask, masked]));
    },
    /** A message compressed as RFC 7692 says (the 00 00 ff ff tail removed), RSV1 set. */
    sendCompressed(msg) {
      const text = typeof msg === 'string' ? msg : JSON.stringify(msg);
      this.sendFrame(0xc1, deflateMessage(Buffer.from(text)));
    },
    /** The close frame the server sent ({code, reason}), or 1006 when the socket closed without one. */
    closed: (timeoutMs = 3000) => Promise.race([closedP, new Promise((_, rej) => setTimeout(() => rej(new Error('no close in time')), timeoutMs))]),
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

for (const [name, compressed] of [['uncompressed', false], ['compressed', true]]) {
  test(`a text message that is not UTF-8 fails the connection with 1007 (${name})`, async () => {
    const client = await rawConnect(compressed ? deflating : plain, 'permessage-deflate');
    try {
      client.send({ type: 'hello', v: 1, user: uniqueId('utf8') });
      assert.equal((await client.next()).msg.type, 'welcome');
      const bad = Buffer.from('{"type":"ping","t":1,"x":"\xff\xfe"}', 'latin1');
      if (compressed) client.sendFrame(0xc1, deflateMessage(bad));
      else client.sendFrame(0x81, bad);
      assert.deepEqual(await client.closed(), { code: 1007, reason: 'invalid UTF-8' });
    } finally {
      client.close();
    }
  });
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

  test('the answer asks the client to compress each message on its own', async () => {
    const client = await rawConnect(deflating, 'permessage-deflate; client_max_window_bits');
    try {
      assert.equal(client.headers['sec-websocket-extensions'], 'permessage-deflate; client_no_context_takeover');
    } finally {
      client.close();
    }
  });

  test('eight crafted bytes that aborted the process in lws 4.1.6 are an ordinary malformed message', async () => {
    // 517 times "a" at zlib level 1, ending in a final block: lws's inflater filled its output
    // buffer with the last input byte and failed assert(avail_out) on the tail it appends.
    const client = await rawSession('crafted');
    try {
      client.sendFrame(0xc1, Buffer.from('4b4c1c05233e0400', 'hex'));
      assertError((await client.next()).msg, 4000);
      client.sendCompressed({ type: 'ping', t: 7 });
      assert.deepEqual(pongOf(await client.next()), { type: 'pong', t: 7 });
      assert.equal(deflating.exitResult, null, 'the server is up');
    } finally {
      client.close();
    }
  });

  test('a compression bomb is refused at the size limit, and nothing after the refusal is inflated', async () => {
    // 16 KB that inflate to 16 MB. lws 4.1.6 inflated the rest of a refused message 256 bytes
    // per loop turn while the close handshake ran: seconds of CPU per message.
    const bomb = deflateMessage(Buffer.concat([Buffer.from('{"type":"ping","t":1,"x":"'), Buffer.alloc(16 << 20, 0x20)]), { level: 9 });
    assert.ok(bomb.length < 20000, `${bomb.length} bytes`);
    const cpu0 = cpuSeconds(deflating.proc.pid);
    for (let i = 0; i < 3; i++) {
      const client = await rawSession('bomb');
      try {
        client.sendFrame(0xc1, bomb);
        assertError((await client.next()).msg, 4003);
        assert.equal((await client.closed()).code, 1009);
        await sleep(1000); // the close handshake, answered: the old server inflated meanwhile
      } finally {
        client.close();
      }
    }
    const used = cpuSeconds(deflating.proc.pid) - cpu0;
    assert.ok(used < 1, `the server used ${used.toFixed(2)} s of CPU on 3 bombs`);
  });

  test('invalid compressed data fails the connection with 1007', async () => {
    const client = await rawSession('junk');
    try {
      client.sendFrame(0xc1, Buffer.from([0xff, 0xff, 0xff, 0xff]));
      assert.deepEqual(await client.closed(), { code: 1007, reason: 'invalid compressed data' });
    } finally {
      client.close();
    }
  });

  test('a message that refers back to an earlier one (context takeover, which the answer ruled out) fails with 1007', async () => {
    const client = await rawConnect(deflating, 'permessage-deflate');
    try {
      const hello = Buffer.from(JSON.stringify({ type: 'hello', v: 1, user: uniqueId('takeover') }));
      const ping = Buffer.from(JSON.stringify({ type: 'ping', t: 1 }));
      const z = zlib.createDeflateRaw();
      const flush = (buf) => new Promise((res) => {
        const parts = [];
        const onData = (d) => parts.push(d);
        z.on('data', onData);
        z.write(buf);
        z.flush(zlib.constants.Z_SYNC_FLUSH, () => { z.off('data', onData); res(Buffer.concat(parts).subarray(0, -4)); });
      });
      client.sendFrame(0xc1, await flush(hello));
      assert.equal((await client.next()).msg.type, 'welcome');
      client.sendFrame(0xc1, await flush(Buffer.concat([ping.subarray(0, 8), hello.subarray(0, 40)])));
      assert.equal((await client.closed()).code, 1007);
      z.close();
    } finally {
      client.close();
    }
  });

  test('RSV1 on a continuation frame fails the connection with 1002', async () => {
    const client = await rawSession('rsv1');
    try {
      const z = deflateMessage(Buffer.from(JSON.stringify({ type: 'ping', t: 2 })));
      client.sendFrame(0x41, z.subarray(0, 4)); // first frame, not final
      client.sendFrame(0xc0, z.subarray(4)); // continuation with RSV1
      assert.deepEqual(await client.closed(), { code: 1002, reason: 'RSV1 on a continuation frame' });
    } finally {
      client.close();
    }
  });

  test('a compressed message in several frames is one message', async () => {
    const client = await rawSession('frag');
    try {
      const z = deflateMessage(Buffer.from(JSON.stringify({ type: 'ping', t: 3 })));
      client.sendFrame(0x41, z.subarray(0, 3));
      client.sendFrame(0x00, z.subarray(3, 6));
      client.sendFrame(0x80, z.subarray(6));
      assert.deepEqual(pongOf(await client.next()), { type: 'pong', t: 3 });
    } finally {
      client.close();
    }
  });
});
