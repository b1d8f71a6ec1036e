// SPDX-License-Identifier: Apache-2.0
// Reference push server on Socket.IO 4 (default server settings), doing rankcast's job:
// messages are rankcast's JSON objects carried as the Socket.IO event "msg" (`42["msg",{...}]`),
// and POST /api/v1/push is served on the same port, for bench/run-compare.sh.
// usage: node socketio-peer.mjs --port 18510 [--host 127.0.0.1] [--catalog FILE]
//        [--admin-token T] [--tls-cert FILE --tls-key FILE]
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { Server } from 'socket.io';
import { Engine, parseArgs, handlePushRequest, protocolHandler } from './engine.mjs';

const opt = parseArgs(process.argv.slice(2), {
  port: '18510', host: '127.0.0.1', catalog: '', 'admin-token': '', 'tls-cert': '', 'tls-key': '',
});
const engine = new Engine(opt.catalog);
const node = `socketio-peer-${process.pid}`;
const conns = new Set();
let io;

function deliver(target, msg) {
  let n = 0;
  if (target.user) {
    const s = engine.users.get(target.user);
    if (!s) return 0;
    io.to(`u:${target.user}`).emit('msg', msg);
    return s.conns.size;
  }
  if (target.segment === 'all') {
    io.emit('msg', msg); // Socket.IO's broadcast encodes once for every socket
    return conns.size;
  }
  const device = target.segment.startsWith('device:') ? target.segment.slice(7) : null;
  for (const c of conns) if (c.session && c.device === device) { c.socket.emit('msg', msg); n++; }
  return n;
}

function broadcastToUser(session, surface, msg) {
  for (const c of session.conns) if (c.surfaces.has(surface)) c.socket.emit('msg', msg);
}

const onRequest = (req, res) => { handlePushRequest(req, res, opt['admin-token'], deliver); };
const server = opt['tls-cert']
  ? https.createServer({ cert: readFileSync(opt['tls-cert']), key: readFileSync(opt['tls-key']) }, onRequest)
  : http.createServer(onRequest);
io = new Server(server);
let nextId = 0;
io.on('connection', (socket) => {
  const conn = { id: ++nextId, socket, session: null, surfaces: new Map(), device: 'other' };
  conn.send = (obj) => socket.emit('msg', obj);
  conns.add(conn);
  const handle = protocolHandler(engine, conn, node, broadcastToUser);
  socket.on('msg', (m) => {
    const hadSession = conn.session;
    handle(m);
    if (!hadSession && conn.session) socket.join(`u:${conn.session.user}`);
  });
  socket.on('disconnect', () => {
    conns.delete(conn);
    if (conn.session) conn.session.conns.delete(conn);
  });
});
server.listen(Number(opt.port), opt.host, () => {
  process.stderr.write(`socketio-peer: listening on ${opt.host}:${opt.port} (${engine.items.length} items, tls ${opt['tls-cert'] ? 'on' : 'off'})\n`);
});
const stop = () => { io.close(); process.exit(0); };
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
