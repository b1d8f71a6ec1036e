// SPDX-License-Identifier: Apache-2.0
// @ts-check
// rankcast demo shop: the demo catalog as a shop, and a "Recommended for you" rail kept live
// by the rankcast server through the project's JavaScript SDK (client-sdk/js). Product views,
// clicks on the rail and add-to-carts go out with client.track() at once (only impressions
// wait for the SDK's batch window); every list the server pushes re-renders the rail in
// place (items travel to their new places), with the time from the click that caused it,
// split into the page, the network and the server. The rail stays in view: beside the
// products on wide screens, docked at the bottom on phones (style.css).
// The visitor (returning or new) and the context (device, time of day) are the SDK's hello
// options, so switching them reconnects as another visitor or in another context.

import { createClient } from '@rankcast/client';
import { illustration } from './art.js';
import { flipUpdate } from './flip.js';

/** @typedef {import('@rankcast/client').RecsList} RecsList */
/** @typedef {import('@rankcast/client').RecItem} RecsItem */
/** @typedef {import('@rankcast/client').RankcastClient} RankcastClient */
/** @typedef {{id: string, name: string, category: string, tags?: string[], price?: number}} Product */
/** @typedef {{t: number, sentAt: number | null, label: string, verb: string}} Sent  an interaction, timed */

const SURFACE = 'home';
const RAIL_K = 8;
const PAGE_SIZE = 48;                 // grid cards rendered per "Show more"
const LATENCIES_SHOWN = 24;           // bars in the latency strip
const SENT_KEPT = 200;                // click times remembered, to match lists to clicks
const USER_KEY = 'rankcast.demo.user';
const ID_RE = /^[A-Za-z0-9._:@-]{1,64}$/;
const COLD_SOURCES = new Set(['trending', 'popular', 'explore', 'pinned']);
/** Kinds a visitor waits on (the list they change): sent at once. Impressions are batched. */
const IMMEDIATE_KINDS = /** @type {const} */ (['view', 'click', 'cart', 'purchase', 'rating', 'dwell', 'search', 'dismiss']);

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const gbp = new Intl.NumberFormat('en-GB', { style: 'currency', currency: 'GBP' });
const pretty = (/** @type {string} */ c) => c.replace(/-/g, ' ');

const state = {
  /** @type {Map<string, Product>} */ catalog: new Map(),
  /** @type {Product[]} */ mixed: [],
  /** @type {Product[]} */ filtered: [],
  shown: 0,
  category: '',
  persona: /** @type {'returning' | 'new'} */ ('returning'),
  user: '',
  device: /** @type {'desktop' | 'tablet' | 'mobile'} */ ('desktop'),
  /** @type {number | null} */ hour: null,     // chosen local hour, or null for the real clock
  /** @type {RankcastClient | null} */ client: null,
  /** @type {RecsList | null} */ list: null,
  /** @type {Map<string, Sent>} */ sent: new Map(),
  /** @type {Sent[]} */ unsent: [], // tracked, not yet written to the socket
  /** @type {Set<string>} */ viewed: new Set(), // products this visitor opened in this page
  /** @type {number[]} */ latencies: [],
  cart: 0,
};

// ---- visitor and context -------------------------------------------------------------------

function randomId() {
  const b = crypto.getRandomValues(new Uint8Array(6));
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
}

// The page's visitor ids, all made here (anonymous sessions of --demo; a server that issues
// ids itself would be asked here instead). The returning visitor is this browser's: its id is
// kept in localStorage, so the server's profile of it (history, tastes) is found again on the
// next visit and in every window. `?user=ID` names the visitor (pages of two nodes, two
// origins, are then one user). A new visitor gets a fresh id each time.
/** @param {'returning' | 'new'} persona */
function visitorId(persona) {
  if (persona === 'new') return `new-${randomId()}`;
  const named = new URLSearchParams(location.search).get('user');
  if (named && ID_RE.test(named)) return named;
  let user = null;
  try { user = localStorage.getItem(USER_KEY); } catch { /* storage off: one page long */ }
  if (user && ID_RE.test(user)) return user;
  user = `shopper-${randomId()}`;
  try { localStorage.setItem(USER_KEY, user); } catch { /* storage off */ }
  return user;
}

/** @param {string} user the id the server gave this visitor */
function adoptUser(user) {
  state.user = user;
  if (state.persona !== 'returning') return;
  try { localStorage.setItem(USER_KEY, user); } catch { /* storage off */ }
}

function guessDevice(width = innerWidth) {
  return width < 700 ? 'mobile' : width < 1100 ? 'tablet' : 'desktop';
}

// The protocol's time-of-day context is the client's offset from UTC: to look like it is
// `hour` o'clock for the visitor now, claim the offset that makes it so (within ±14 h).
/** @param {number | null} hour */
function tzOffsetFor(hour) {
  if (hour === null) return undefined;
  const now = new Date();
  const utcMin = now.getUTCHours() * 60 + now.getUTCMinutes();
  let offset = (((hour * 60 - utcMin) % 1440) + 1440) % 1440;
  if (offset > 840) offset -= 1440;
  return offset;
}

function localClock() {
  const offset = tzOffsetFor(state.hour) ?? -new Date().getTimezoneOffset();
  const t = new Date(Date.now() + offset * 60000);
  return `${String(t.getUTCHours()).padStart(2, '0')}:${String(t.getUTCMinutes()).padStart(2, '0')}`;
}

// ---- connection (the SDK does the protocol) --------------------------------------------------

// Visitor and context are hello options: a change closes this client and starts another.
// The old client's lists are ignored from then on (each callback checks it is current).
function connect() {
  const old = state.client;
  state.client = null;
  old?.close().catch(() => {});
  state.list = null;
  state.unsent = [];
  $('rail-meta').replaceChildren(el('span', 'meta', 'Asking for the list of this visitor and context…'));
  const client = createClient({
    url: '/ws',
    user: state.user,
    device: state.device,
    tzOffsetMin: tzOffsetFor(state.hour),
    immediateKinds: [...IMMEDIATE_KINDS],
    // Tells when events were written to the socket: the page's share of the latency shown.
    debug: (event, detail) => { if (event === 'send' && 'bytes' in detail) onEventsSent(client); },
  });
  state.client = client;
  client.on('state', ({ state: s }) => client === state.client && renderStatus(s, client));
  client.on('open', (welcome) => {
    if (client !== state.client) return;
    // Outside --demo the server takes only ids it issued: a made-up one gets 4013 and the
    // SDK comes back under a fresh id, which the page keeps from then on.
    if (welcome.user !== state.user) adoptUser(welcome.user);
    $('who').textContent = `Visitor ${welcome.user} · session ${welcome.session} on node ${welcome.node}`;
    renderStatus('open', client);
  });
  client.on('error', (err) => client === state.client && showNotice(err.message));
  client.on('push', (msg) => showNotice(`Message from the shop (${msg.topic}): ${JSON.stringify(msg.data)}`));
  client.subscribe(SURFACE, { k: RAIL_K }, (list) => client === state.client && onList(client, list));
  renderContext();
}

/** @param {string} s @param {RankcastClient} client */
function renderStatus(s, client) {
  const text = {
    connecting: 'Connecting…',
    open: `Live · ${client.welcome?.node ?? ''}`,
    reconnecting: 'Reconnecting…',
    closed: 'Offline',
  }[s] ?? s;
  $('status').dataset.state = s;
  $('status').textContent = text;
}

/**
 * Sends one interaction and remembers when it happened (`t`, the input event's time), to time
 * the list it causes; `sentAt` is filled when the SDK writes it to the socket. Interactions
 * go out at once (IMMEDIATE_KINDS): nothing waits for a batch.
 * @param {{kind: 'view' | 'click' | 'cart', item: string, value?: number, surface?: string}} event
 * @param {{label: string, verb: string, t: number}} how
 */
function send(event, how) {
  const client = state.client;
  if (!client) return;
  /** @type {Sent} */
  const sent = { t: how.t, sentAt: null, label: how.label, verb: how.verb };
  state.unsent.push(sent);
  const pending = event.surface && state.list ? client.trackClick(state.list, event.item) : client.track(event);
  state.sent.set(pending.id, sent);
  if (state.sent.size > SENT_KEPT) state.sent.delete(state.sent.keys().next().value ?? '');
  pending.catch(() => {}); // failures are shown through the client's 'error' event
}

/** Events were written to the socket: everything tracked so far went with them. @param {RankcastClient} client */
function onEventsSent(client) {
  if (client !== state.client) return;
  const now = performance.now();
  for (const s of state.unsent) s.sentAt = now;
  state.unsent = [];
}

// ---- the rail --------------------------------------------------------------------------------

/** @param {RankcastClient} client @param {RecsList} list */
function onList(client, list) {
  const sent = list.cause ? state.sent.get(list.cause) : undefined;
  state.list = list;
  renderRail(list);
  // Measured once the new list is in the DOM: what the visitor waits for.
  const ms = sent ? performance.now() - sent.t : null;
  renderRailMeta(list, ms, sent);
  if (ms !== null) {
    state.latencies.push(ms);
    if (state.latencies.length > LATENCIES_SHOWN) state.latencies.shift();
    renderLatencies();
  }
  renderContext();
  client.trackImpressions(list).catch(() => {}); // feeds click-through per variant
}

/** @param {RecsItem} rec */
function productOf(rec) {
  const known = state.catalog.get(rec.item);
  return {
    id: rec.item,
    name: rec.name ?? known?.name ?? rec.item,
    category: rec.category ?? known?.category ?? 'other',
    price: rec.price ?? known?.price,
  };
}

/** @param {string} key */
function railItem(key) {
  const li = el('li', 'rail-item');
  li.dataset.item = key;
  const button = el('button', 'product');
  button.type = 'button';
  button.addEventListener('click', (/** @type {MouseEvent} */ e) => {
    const rec = state.list?.items.find((r) => r.item === key);
    send({ kind: 'click', item: key, surface: SURFACE }, { label: rec?.name ?? key, verb: 'click on', t: e.timeStamp });
  });
  li.append(button);
  fillRailItem(li, key);
  return li;
}

/** @param {HTMLElement} li @param {string} key */
function fillRailItem(li, key) {
  const items = state.list?.items ?? [];
  const rank = items.findIndex((r) => r.item === key);
  const rec = items[rank];
  const p = productOf(rec);
  li.dataset.category = p.category;
  li.dataset.src = rec.src;
  const button = /** @type {HTMLButtonElement} */ (li.firstElementChild);
  const why = reasonText(rec);
  const text = el('span', 'text');
  text.append(el('span', 'name', p.name),
    el('span', 'sub', `${pretty(p.category)}${typeof p.price === 'number' ? ` · ${gbp.format(p.price)}` : ''}`),
    el('span', `why src-${rec.src}`, why));
  button.replaceChildren(art(p), el('span', 'rank', String(rank + 1)), text);
  button.setAttribute('aria-label', `${rank + 1}. ${p.name}, ${pretty(p.category)}. ${why}`);
}

/**
 * The reason an item is recommended, in words: the one place the rail reads it, so that a
 * structured reason (a code and what it refers to) can replace the server's `why` here.
 * @param {RecsItem} rec
 */
function reasonText(rec) {
  return rec.why;
}

/** @param {RecsList} list */
function renderRail(list) {
  const rail = $('rail');
  // On phones the rail scrolls sideways: one looking at its start keeps looking at the start
  // (the new first items), not at wherever the item it showed first has moved to.
  const atStart = rail.scrollLeft < 8;
  // A clicked item usually leaves the list (the server does not recommend what you just
  // chose): keep keyboard focus in the rail, on the item that took its place.
  const focused = rail.contains(document.activeElement)
    ? [...rail.children].findIndex((li) => li.contains(document.activeElement)) : -1;
  flipUpdate(rail, list.items.map((r) => r.item), railItem, fillRailItem, (e) => e.dataset.item);
  if (focused >= 0 && !rail.contains(document.activeElement)) {
    const next = rail.children[Math.min(focused, rail.children.length - 1)]?.querySelector('button');
    if (next) next.focus({ preventScroll: true });
    else $('rail-title').focus({ preventScroll: true });
  }
  if (atStart) rail.scrollLeft = 0;
  // Attributes last: a watcher of the rail sees them change once the items are in place.
  rail.dataset.version = String(list.version);
  rail.dataset.cause = list.cause ?? '';
}

/**
 * The line above the rail: how long the visitor waited for this list, and where that time
 * went: in this page before the event was written to the socket (no batching for
 * interactions), in the server (`took_us`, from reading the event to encoding the list), and
 * the rest: the network both ways, the browser, and drawing the rail.
 * @param {RecsList} list @param {number | null} ms @param {Sent | undefined} sent
 */
function renderRailMeta(list, ms, sent) {
  const meta = $('rail-meta');
  const serverMs = list.tookUs / 1000;
  const parts = [];
  if (ms !== null && sent) {
    parts.push(el('strong', 'lat', `${fmtMs(ms)}`),
      document.createTextNode(` from your ${sent.verb} “${sent.label}” to this list`));
    const pageMs = sent.sentAt === null ? null : Math.max(0, sent.sentAt - sent.t);
    const rest = Math.max(0, ms - serverMs - (pageMs ?? 0));
    const split = el('span', 'lat-split');
    split.append(
      part('this page', pageMs === null ? '?' : fmtMs(pageMs), 'this page, until the event was on the socket (interactions are not batched)'),
      part('network & browser', fmtMs(rest), 'the network both ways, the browser, and drawing the rail'),
      part('server', fmtMs(serverMs), 'the server, from reading the event to the encoded list (took_us)'));
    parts.push(split);
  } else {
    parts.push(document.createTextNode(list.cause ? 'Updated by your activity in another window' : 'Your current list'),
      el('span', 'meta', ` · ${fmtMs(serverMs)} in the server`));
  }
  if (list.variant && list.variant !== 'control') parts.push(el('span', 'meta', ` · variant ${list.variant}`));
  meta.replaceChildren(...parts);
  if (ms !== null) pulse($('rail-section'));
}

/** @param {string} name @param {string} value @param {string} title */
function part(name, value, title) {
  const span = el('span', `part part-${name.split(' ').at(-1)}`);
  span.title = title;
  span.append(el('span', 'part-name', name), document.createTextNode(' '), el('b', '', value));
  return span;
}

/** "0.04 ms", "1.3 ms", "14 ms". @param {number} ms */
function fmtMs(ms) {
  return ms < 1 ? `${ms.toFixed(2)} ms` : ms < 10 ? `${ms.toFixed(1)} ms` : `${Math.round(ms)} ms`;
}

/** A short highlight of the rail when your action changed it (seen at the edge of the eye). @param {HTMLElement} box */
function pulse(box) {
  if (typeof box.animate !== 'function' || matchMedia('(prefers-reduced-motion: reduce)').matches) return;
  box.animate([{ boxShadow: '0 0 0 3px #1d4ed8' }, { boxShadow: '0 0 0 0 rgb(29 78 216 / 0)' }], { duration: 700, easing: 'ease-out' });
}

function renderLatencies() {
  const box = $('latency');
  const max = Math.max(20, ...state.latencies) * 1.15;
  if (state.latencies.length === 0) { box.replaceChildren(); return; }
  const sorted = [...state.latencies].sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const bars = el('span', 'bars');
  bars.append(...state.latencies.map((ms) => {
    const bar = el('span', 'bar');
    bar.style.height = `${Math.max(6, (ms / max) * 100)}%`;
    bar.title = `${Math.round(ms)} ms`;
    return bar;
  }));
  box.replaceChildren(el('span', 'latency-label', 'Action → new list'), bars,
    el('span', 'latency-label', `median ${fmtMs(median)} over ${sorted.length} update${sorted.length > 1 ? 's' : ''}`));
}

// Says who the rail is for and why it looks as it does: a list made only of trending and
// popular items is a cold start (nothing known about this visitor yet), ranked by context.
function renderContext() {
  const items = state.list?.items ?? [];
  const cold = items.length > 0 && items.every((r) => COLD_SOURCES.has(r.src));
  const who = state.persona === 'new'
    ? `New visitor (${state.user}), no history`
    : `Returning user (${state.user}), history kept by the server`;
  const ctx = `${state.device}, ${localClock()} local time`;
  const line = $('persona-help');
  line.replaceChildren(el('strong', '', who), document.createTextNode(` · ${ctx}`),
    ...(state.list ? [el('span', cold ? 'badge cold' : 'badge warm',
      cold ? `Cold start: trending on ${state.device} at this hour` : 'Personalized from this visitor\u2019s activity')] : []));
}

// ---- the shop grid ---------------------------------------------------------------------------

/**
 * @param {string} tag @param {string} className @param {string} [text]
 * @returns {any} the element (typed loosely: callers know what they asked for)
 */
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** @param {{id: string, name?: string, category?: string}} p */
function art(p) {
  const box = el('span', 'art');
  box.innerHTML = illustration(p); // generated markup: numbers and colours only, no input text
  return box;
}

/** @param {Product} p */
function card(p) {
  const li = el('li', 'card');
  li.dataset.item = p.id;
  li.dataset.category = p.category;
  const open = el('button', 'product');
  open.type = 'button';
  open.append(art(p), el('span', 'name', p.name), el('span', 'sub', pretty(p.category)),
    el('span', 'price', typeof p.price === 'number' ? gbp.format(p.price) : ''));
  // Opening a product of the shop is a view; a click is kept for lists (the rail), where
  // clicks over impressions make the click-through rate.
  open.addEventListener('click', (/** @type {MouseEvent} */ e) => {
    send({ kind: 'view', item: p.id }, { label: p.name, verb: 'view of', t: e.timeStamp });
    state.viewed.add(p.id);
    markViewed(li, true);
  });
  if (state.viewed.has(p.id)) markViewed(li, true);
  const add = el('button', 'add', 'Add to cart');
  add.type = 'button';
  add.setAttribute('aria-label', `Add ${p.name} to cart`);
  add.addEventListener('click', (/** @type {MouseEvent} */ e) => {
    send({ kind: 'cart', item: p.id, value: 1 }, { label: p.name, verb: 'add to cart of', t: e.timeStamp });
    $('cart-count').textContent = String(++state.cart);
    add.textContent = 'Added ✓';
    add.classList.add('done');
    setTimeout(() => { add.textContent = 'Add to cart'; add.classList.remove('done'); }, 1200);
  });
  li.append(open, add);
  return li;
}

/**
 * A product the visitor opened shows it ("Viewed"), for assistive technology too.
 * @param {HTMLElement} li @param {boolean} viewed
 */
function markViewed(li, viewed) {
  li.classList.toggle('viewed', viewed);
  li.querySelector('.seen')?.remove();
  if (viewed) li.querySelector('.product')?.append(el('span', 'seen', 'Viewed'));
}

/** @param {boolean} reset */
function renderGrid(reset) {
  const grid = $('grid');
  if (reset) { grid.textContent = ''; state.shown = 0; }
  const next = state.filtered.slice(state.shown, state.shown + PAGE_SIZE);
  grid.append(...next.map(card));
  state.shown += next.length;
  $('more').hidden = state.shown >= state.filtered.length;
  grid.setAttribute('aria-busy', 'false');
}

/** @param {string} category */
function chooseCategory(category) {
  state.category = category;
  state.filtered = category ? state.mixed.filter((p) => p.category === category) : state.mixed;
  for (const chip of $('categories').querySelectorAll('button')) {
    chip.setAttribute('aria-pressed', String(chip.dataset.category === category));
  }
  renderGrid(true);
}

// The catalog is JSON Lines sorted by id. "All" interleaves the categories (the first item of
// each, then the second of each…) so the first page shows the whole range.
async function loadCatalog() {
  const response = await fetch('catalog/demo-catalog.jsonl');
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  /** @type {Map<string, number>} */
  const seen = new Map();
  const ranked = (await response.text()).split('\n').filter((l) => l.trim()).map((line, i) => {
    const p = /** @type {Product} */ (JSON.parse(line));
    state.catalog.set(p.id, p);
    seen.set(p.category, (seen.get(p.category) ?? 0) + 1);
    return { p, key: /** @type {number} */ (seen.get(p.category)) * 1e6 + i };
  });
  state.mixed = ranked.sort((a, b) => a.key - b.key).map((r) => r.p);
  const chips = [['', 'All', state.mixed.length], ...[...seen].sort((a, b) => b[1] - a[1]).map(([c, n]) => [c, pretty(c), n])];
  $('categories').replaceChildren(...chips.map(([c, label, n]) => {
    const chip = el('button', 'chip');
    chip.type = 'button';
    chip.dataset.category = String(c);
    chip.append(document.createTextNode(String(label)), el('span', 'count', String(n)));
    chip.addEventListener('click', () => chooseCategory(String(c)));
    return chip;
  }));
}

let noticeTimer = 0;
/** Shows a message under the shop's title for a few seconds. @param {string} text */
function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { $('notice').hidden = true; }, 8000);
}

// ---- start -----------------------------------------------------------------------------------

/** @param {'returning' | 'new'} persona */
function choosePersona(persona) {
  state.persona = persona;
  state.user = visitorId(persona);
  state.viewed.clear();
  for (const card of document.querySelectorAll('#grid > li.viewed')) markViewed(/** @type {HTMLElement} */ (card), false);
  $('persona-returning').setAttribute('aria-pressed', String(persona === 'returning'));
  $('persona-new').setAttribute('aria-pressed', String(persona === 'new'));
  state.latencies = [];
  renderLatencies();
  connect();
}

// The rail docked at the bottom on phones covers the end of the page: its height is a CSS
// variable, so the page ends above it and the last products can be reached.
function trackDockHeight() {
  const rail = $('rail-section');
  const ro = new ResizeObserver(() => {
    const docked = getComputedStyle(rail).position === 'fixed';
    document.documentElement.style.setProperty('--dock-h', docked ? `${rail.getBoundingClientRect().height}px` : '0px');
  });
  ro.observe(document.body);
  ro.observe(rail);
}

function start() {
  trackDockHeight();
  state.device = guessDevice();
  const device = /** @type {HTMLSelectElement} */ ($('device'));
  const daytime = /** @type {HTMLSelectElement} */ ($('daytime'));
  device.value = state.device;
  device.addEventListener('change', () => {
    state.device = /** @type {typeof state.device} */ (device.value);
    connect();
  });
  daytime.addEventListener('change', () => {
    state.hour = daytime.value === '' ? null : Number(daytime.value);
    connect();
  });
  $('persona-returning').addEventListener('click', () => choosePersona('returning'));
  $('persona-new').addEventListener('click', () => choosePersona('new'));
  $('more').addEventListener('click', () => renderGrid(false));
  choosePersona('returning'); // the rail does not wait for the catalog: lists carry names
  loadCatalog().then(() => chooseCategory('')).catch((err) => {
    showNotice(`Could not load the catalog (${err.message}); recommendations still work.`);
    $('grid').setAttribute('aria-busy', 'false');
  });
}

start();
