// SPDX-License-Identifier: Apache-2.0
// Reference push server on Node's `ws` (default settings: no permessage-deflate), speaking
// rankcast's JSON subprotocol on /ws and serving POST /api/v1/push, for bench/run-compare.sh.
// usage: node ws-peer.mjs --port 18500 [--host 127.0.0.1] [--catalog FILE] [--admin-token T]
//        [--tls-cert FILE --tls-key FILE]
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { WebSocketServer } from 'ws';
import { Engine, parseArgs, handlePushRequest, protocolHandler } from './engine.mjs';

const opt = parseArgs(process.argv.slice(2), {
  port: '18500', host: '127.0.0.1', catalog: '', 'admin-token': '', 'tls-cert': '', 'tls-key': '',
});
const engine = new Engine(opt.catalog);
const node = `ws-peer-${process.pid}`;
const conns = new Set();

function deliver(target, msg) {
  const text = JSON.stringify(msg); // encoded once, written to every connection
  let n = 0;
  const send = (c) => { c.ws.send(text); n++; };
  if (target.user) {
    const s = engine.users.get(target.user);
    if (s) for (const c of s.conns) send(c);
  } else {
    const device = target.segment.startsWith('device:') ? target.segment.slice(7) : null;
    for (const c of conns) if (c.session && (!device || c.device === device)) send(c);
  }
  return n;
}

function broadcastToUser(session, surface, msg) {
  const text = JSON.stringify(msg);
  for (const c of session.conns) if (c.surfaces.has(surface)) c.ws.send(text);
}

const onRequest = (req, res) => { handlePushRequest(req, res, opt['admin-token'], deliver); };
const server = opt['tls-cert']
  ? https.createServer({ cert: readFileSync(opt['tls-cert']), key: readFileSync(opt['tls-key']) }, onRequest)
  : http.createServer(onRequest);
const wss = new WebSocketServer({
  server,
  path: '/ws',
  handleProtocols: (protocols) => (protocols.has('rankcast.v1.json') ? 'rankcast.v1.json' : false),
});
let nextId = 0;
wss.on('connection', (ws) => {
  const conn = { id: ++nextId, ws, session: null, surfaces: new Map(), device: 'other' };
  conn.send = (obj) => ws.send(JSON.stringify(obj));
  conns.add(conn);
  const handle = protocolHandler(engine, conn, node, broadcastToUser);
  ws.on('message', (data, isBinary) => {
    if (isBinary) return conn.send({ type: 'error', code: 4007, name: 'wrong_frame_kind', message: 'binary' });
    let m;
    try { m = JSON.parse(data); } catch { return conn.send({ type: 'error', code: 4000, name: 'malformed', message: 'bad json' }); }
    return handle(m);
  });
  ws.on('close', () => {
    conns.delete(conn);
    if (conn.session) conn.session.conns.delete(conn);
  });
  ws.on('error', () => {});
});
server.listen(Number(opt.port), opt.host, () => {
  process.stderr.write(`ws-peer: listening on ${opt.host}:${opt.port} (${engine.items.length} items, tls ${opt['tls-cert'] ? 'on' : 'off'})\n`);
});
const stop = () => { for (const c of conns) c.ws.terminate(); server.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
