// rankcast demo shop: shows the demo catalog, sends clicks and add-to-carts to the rankcast
// server over WebSocket (subprotocol rankcast.v1.json, see proto/PROTOCOL.md) and renders
// the live "Recommended for you" rail it pushes back. The first working demo; it will later
// be rebuilt on the project's JS SDK, so it keeps to plain DOM and one small file.

const SUBPROTOCOL = 'rankcast.v1.json';
const SURFACE = 'home';
const RAIL_K = 12;
const PAGE_SIZE = 60;                  // grid cards rendered per "Show more"
const BACKOFF_BASE_MS = 500;           // reconnect delay ceiling doubles from here...
const BACKOFF_CAP_MS = 15000;          // ...up to this; full jitter then picks 0..ceiling
const PING_EVERY_MS = 25000;           // keeps idle proxies from dropping the connection
const MAX_PENDING = 100;               // unacked events (and click times) kept, oldest dropped
const RETRYABLE = new Set([4020, 4500, 4503]); // errors meaning "not taken, send it again"
const USER_KEY = 'rankcast.demo.user';

const $ = (id) => document.getElementById(id);
const gbp = new Intl.NumberFormat('en-GB', { style: 'currency', currency: 'GBP' });

const state = {
  catalog: new Map(),      // item id -> {id, name, category, tags, price}
  mixed: [],               // all items, categories interleaved (see loadCatalog)
  filtered: [],            // items of the chosen category, in grid order
  shown: 0,                // how many of `filtered` are rendered
  user: loadUser(),
  device: guessDevice(),
  ws: null,                // the current socket; handlers of an older one ignore themselves
  welcomed: false,         // `hello` answered: other messages may be sent
  attempt: 0,              // failed connects in a row, for the backoff
  retryTimer: 0, pingTimer: 0,
  drainDelayMs: null,      // set by `drain`: the server says when to come back
  pending: new Map(),      // event id -> event message, until acked (at-least-once delivery)
  clickedAt: new Map(),    // event id -> performance.now() of the click, for the latency
  railVersion: -1,         // highest `recs` version seen on this connection
  status: { kind: 'connecting', text: 'Connecting…' },
};

// ---- identity and context ----------------------------------------------------------------

// crypto.randomUUID exists only in secure contexts (https, localhost); a demo opened over
// plain http on a LAN address still needs ids, so fall back to a v4 UUID by hand.
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; // version 4
  b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
  const h = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return h.replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');
}

// The user id persists across visits; without storage (some private modes) it lasts as long
// as the page. `fresh` makes a new one: the "New visitor" button. `?user=ID` in the address
// names the visitor, so pages of two nodes (two origins, two storages) can be one user.
function loadUser(fresh = false) {
  let user = null;
  const named = new URLSearchParams(window.location.search).get('user');
  if (!fresh && named && /^[A-Za-z0-9._:@-]{1,64}$/.test(named)) return named;
  try { user = fresh ? null : localStorage.getItem(USER_KEY); } catch { /* no storage */ }
  if (user && /^[A-Za-z0-9._:@-]{1,64}$/.test(user)) return user;
  user = `u-${uuid()}`;
  try { localStorage.setItem(USER_KEY, user); } catch { /* no storage */ }
  return user;
}

function guessDevice(width = window.innerWidth) {
  return width < 700 ? 'mobile' : width < 1100 ? 'tablet' : 'desktop';
}

// ---- connection ------------------------------------------------------------------------------

function connect() {
  clearTimeout(state.retryTimer);
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/ws`, SUBPROTOCOL);
  Object.assign(state, { ws, welcomed: false, railVersion: -1 }); // versions: per connection
  setStatus('connecting', 'Connecting…');

  ws.onopen = () => {
    if (ws !== state.ws) return;
    const hello = { type: 'hello', v: 1, user: state.user, device: state.device,
                    tz_offset_min: -new Date().getTimezoneOffset() };
    if (navigator.language?.length <= 16) hello.locale = navigator.language;
    ws.send(JSON.stringify(hello));
  };
  ws.onmessage = (e) => {
    if (ws !== state.ws) return;
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; } // the server only sends JSON text
    HANDLERS[msg.type]?.(msg);
  };
  // A failed connect fires `error` and then `close`, so everything happens in `close`.
  ws.onclose = (e) => {
    if (ws !== state.ws) return;
    clearInterval(state.pingTimer);
    Object.assign(state, { ws: null, welcomed: false });
    scheduleReconnect(e.code);
  };
}

// Full-jitter exponential backoff: a random delay in [0, min(cap, base * 2^attempt)], so
// clients dropped together do not all come back together. After `drain` the server's hint
// wins (plus up to a second of jitter).
function scheduleReconnect(code) {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** state.attempt++);
  const delay = state.drainDelayMs !== null ? state.drainDelayMs + Math.random() * 1000
                                            : Math.random() * ceiling;
  state.drainDelayMs = null;
  setStatus('offline', `Disconnected (${code}); retrying in ${(delay / 1000).toFixed(1)} s`);
  state.retryTimer = setTimeout(connect, delay);
}

// Device change and "New visitor" reconnect at once. The old socket stops mattering as soon
// as it is no longer state.ws. Closing one that is still connecting makes browsers log an
// error, so such a socket is closed when it opens.
function reconnectNow() {
  const old = state.ws;
  state.ws = null;
  if (old?.readyState === WebSocket.CONNECTING) old.onopen = () => old.close(1000);
  else old?.close(1000, 'client reconnect');
  clearInterval(state.pingTimer);
  state.attempt = 0;
  connect();
}

const send = (msg) => state.ws && state.welcomed && state.ws.send(JSON.stringify(msg));

// ---- server messages ---------------------------------------------------------------------

const HANDLERS = {
  welcome(msg) {
    Object.assign(state, { welcomed: true, attempt: 0, user: msg.user }); // server may rename
    setStatus('online', `Connected to ${msg.node}`);
    $('who').textContent = `user ${msg.user} · session ${msg.session} · device ${state.device}`;
    send({ type: 'subscribe', surface: SURFACE, k: RAIL_K });
    for (const event of state.pending.values()) send(event); // resend what was never acked
    state.pingTimer = setInterval(() => send({ type: 'ping', t: Date.now() }), PING_EVERY_MS);
  },
  ack(msg) {
    for (const id of msg.ids) state.pending.delete(id);
    renderStatus();
  },
  recs(msg) {
    if (msg.surface !== SURFACE || msg.version <= state.railVersion) return; // a late old list
    state.railVersion = msg.version;
    renderRail(msg.items);
    renderRailMeta(msg);
  },
  // A refused event is dropped, unless the code says "retry": then it stays pending, is sent
  // again after a pause and, if the connection drops meanwhile, after the next `welcome`.
  error(msg) {
    const event = msg.id && state.pending.get(msg.id);
    if (event && RETRYABLE.has(msg.code)) {
      setTimeout(() => state.pending.has(msg.id) && send(event), 1000);
    } else if (event) {
      state.pending.delete(msg.id);
    }
    showNotice(`Server error ${msg.code} ${msg.name}: ${msg.message}`);
    renderStatus();
  },
  drain(msg) {
    state.drainDelayMs = msg.reconnect_after_ms;
    setStatus('connecting', `Server draining (${msg.reason}); moving to another node…`);
  },
  push: (msg) => showNotice(`Message from the shop (${msg.topic}): ${JSON.stringify(msg.data)}`),
  pong: () => {},
};

// ---- user actions --------------------------------------------------------------------------

// Events stay pending until acked; they go out now if the connection is up, else after the
// next `welcome`. The server de-duplicates by event id, so a resend is harmless.
function sendEvent(kind, item, surface) {
  const event = { type: 'event', id: uuid(), kind, item, ts_ms: Date.now() };
  if (surface) event.surface = surface;
  state.clickedAt.set(event.id, performance.now());
  state.pending.set(event.id, event);
  for (const map of [state.pending, state.clickedAt]) {
    if (map.size > MAX_PENDING) map.delete(map.keys().next().value); // Maps keep insert order
  }
  send(event);
  renderStatus();
}

function newVisitor() {
  state.user = loadUser(true);
  state.pending.clear(); // the old visitor's events must not be replayed as the new one's
  state.clickedAt.clear();
  renderRail([]);
  $('rail-meta').textContent = '';
  reconnectNow();
}

// ---- rendering -------------------------------------------------------------------------------

function el(tag, className, text = '') {
  const node = document.createElement(tag);
  Object.assign(node, { className, textContent: text });
  return node;
}

// A coloured placeholder instead of a product photo: the hue is a hash of the category
// name, so each category keeps its colour without a table to maintain.
function tile(category) {
  let hash = 0;
  for (const c of category) hash = (hash * 31 + c.charCodeAt(0)) >>> 0;
  const node = el('span', 'tile', category.replace(/-/g, ' '));
  node.style.setProperty('--hue', String(hash % 360));
  node.setAttribute('aria-hidden', 'true'); // the category is also written out as text
  return node;
}

// The whole product is one button (keyboard and screen readers get it for free); clicking
// it is the `click` event. `surface` is set when the product was shown in a rec list.
function productButton(item, surface) {
  const button = el('button', 'product');
  button.type = 'button';
  const price = typeof item.price === 'number' ? gbp.format(item.price) : '';
  button.append(tile(item.category || 'other'), el('span', 'name', item.name || item.id),
    el('span', 'category', item.category), el('span', 'price', price));
  button.addEventListener('click', () => sendEvent('click', item.id, surface));
  return button;
}

function card(item) {
  const cart = el('button', 'add', 'Add to cart');
  cart.type = 'button';
  cart.setAttribute('aria-label', `Add ${item.name} to cart`);
  cart.addEventListener('click', () => sendEvent('cart', item.id));
  const li = el('li', 'card');
  li.append(productButton(item), cart);
  return li;
}

function renderGrid(reset) {
  if (reset) { $('grid').textContent = ''; state.shown = 0; }
  const next = state.filtered.slice(state.shown, state.shown + PAGE_SIZE);
  $('grid').append(...next.map(card));
  state.shown += next.length;
  $('more').hidden = state.shown >= state.filtered.length;
  $('grid').setAttribute('aria-busy', 'false');
}

// Rec entries carry name, category and price when the server's catalog knows the item;
// the local catalog fills any gap.
function renderRail(items) {
  const rail = $('rail');
  rail.textContent = '';
  if (!items.length) rail.append(el('li', 'rail-empty', 'No recommendations yet.'));
  for (const rec of items) {
    const item = { ...state.catalog.get(rec.item), id: rec.item };
    for (const key of ['name', 'category', 'price']) item[key] = rec[key] ?? item[key];
    const button = productButton(item, SURFACE);
    button.append(el('span', 'why', rec.why));
    rail.appendChild(el('li', 'rail-item')).append(button);
  }
}

// took_us is the server's own time; the click-to-list latency is measured here, from the
// click to the arrival of the list whose `cause` is that click's event id.
function renderRailMeta(msg) {
  const parts = [`server took ${msg.took_us} µs`];
  if (state.clickedAt.has(msg.cause)) {
    const ms = Math.round(performance.now() - state.clickedAt.get(msg.cause));
    parts.push(`${ms} ms from your click to this list`);
  } else if (msg.cause) {
    parts.push('updated by your activity in another tab'); // same user, other connection
  }
  if (msg.variant && msg.variant !== 'control') parts.push(`variant ${msg.variant}`);
  $('rail-meta').textContent = parts.join(' · ');
}

// The status line: the connection state (kept for redraws), plus the unacked events if any.
function setStatus(kind, text) {
  state.status = { kind, text };
  renderStatus();
}

function renderStatus() {
  const n = state.pending.size;
  $('status').dataset.state = state.status.kind;
  $('status').textContent = state.status.text
    + (n ? ` · ${n} unacknowledged event${n > 1 ? 's' : ''}` : '');
}

function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = false;
}

// ---- start -------------------------------------------------------------------------------------

// The catalog is JSON Lines sorted by id. "All categories" interleaves the categories (the
// first item of each, then the second of each, ...) so the first page shows the range.
async function loadCatalog() {
  const response = await fetch('catalog/demo-catalog.jsonl');
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  const seen = new Map(); // category -> items of it so far
  const ranked = (await response.text()).split('\n').filter((l) => l.trim()).map((line, i) => {
    const item = JSON.parse(line);
    state.catalog.set(item.id, item);
    seen.set(item.category, (seen.get(item.category) || 0) + 1);
    return { item, key: seen.get(item.category) * 1e6 + i };
  });
  state.mixed = ranked.sort((a, b) => a.key - b.key).map((r) => r.item);
  const categories = [...seen.keys()].sort();
  $('category').append(...categories.map((c) => new Option(c.replace(/-/g, ' '), c)));
}

function applyFilter() {
  const category = $('category').value;
  state.filtered = category ? state.mixed.filter((i) => i.category === category) : state.mixed;
  renderGrid(true);
}

function start() {
  $('device').value = state.device;
  $('device').addEventListener('change', (e) => { state.device = e.target.value; reconnectNow(); });
  $('new-visitor').addEventListener('click', newVisitor);
  $('category').addEventListener('change', applyFilter);
  $('more').addEventListener('click', () => renderGrid(false));
  connect(); // the rail does not wait for the catalog: recs carry names
  loadCatalog().then(applyFilter).catch((err) => {
    showNotice(`Could not load the catalog (${err.message}); recommendations still work.`);
    $('grid').setAttribute('aria-busy', 'false');
  });
}

start();
