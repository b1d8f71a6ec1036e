// SPDX-License-Identifier: Apache-2.0
// @ts-check
// rankcast ops dashboard: opens the ops feed (WebSocket subprotocol rankcast.ops.v1 on /ops),
// says hello (with the admin token when the server asks for one), draws the last 15 minutes
// the server sends first, then redraws from each snapshot it pushes. When the feed is down
// (or silent) the figures stay, greyed, under a banner saying since when. The feed's format
// is in proto/PROTOCOL.md, "Ops feed".

import { barChart, lineChart } from './charts.js';

const SUBPROTOCOL = 'rankcast.ops.v1';
const HISTORY = 1800;           // points kept for the time charts: 15 minutes at 500 ms
const SILENT_INTERVALS = 4;     // no snapshot for this many intervals: the figures are stale
const EVENTS_SHOWN = 14;
const TOKEN_KEY = 'rankcast.ops.token';
const BACKOFF_BASE_MS = 500, BACKOFF_CAP_MS = 10000;

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const nf = new Intl.NumberFormat('en-GB');
const nf1 = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 1 });

/**
 * One point of the time charts: a sample of the server (from the history it sends first, or
 * a snapshot). Quantiles are null when no push happened in their window; errors, refused and
 * slow count what happened since the previous point.
 * @typedef {{t: number, p50: number | null, p99: number | null, p999: number | null, events: number, pushes: number,
 *   errors: number, refused: number, slow: number}} Point
 */

const state = {
  /** @type {WebSocket | null} */ ws: null,
  attempt: 0,
  /** @type {Point[]} */ history: [],
  /** @type {Map<string, string>} */ names: new Map(), // item id -> name, from the catalog
  token: readToken(),
  refused: false,
  lastSeq: 0, // the newest event shown, so only newer rows are highlighted
  pointSeq: 0, // the newest sample in `history`: a snapshot adds a point only when newer
  intervalMs: 500,
  /** @type {{errors: number, refused: number, slow: number} | null} */ totals: null,
  lastSnapshotAt: 0,
  /** @type {number | null} */ staleSince: null,
  retryAt: 0,
};

function readToken() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromHash) {
    try { sessionStorage.setItem(TOKEN_KEY, fromHash); } catch { /* storage off */ }
    history.replaceState(null, '', location.pathname + location.search); // out of the address bar
    return fromHash;
  }
  try { return sessionStorage.getItem(TOKEN_KEY) ?? ''; } catch { return ''; }
}

/** Microseconds for people: "84 µs", "1.3 ms". @param {number} us */
function fmtUs(us) {
  if (!us) return '–';
  if (us >= 1e6) return `${nf1.format(us / 1e6)} s`;
  return us < 1000 ? `${Math.round(us)} µs` : us < 10000 ? `${(us / 1000).toFixed(2)} ms` : `${nf1.format(us / 1000)} ms`;
}

// ---- the feed --------------------------------------------------------------------------------

function connect() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const ws = new WebSocket(`${scheme}//${location.host}/ops`, SUBPROTOCOL);
  state.ws = ws;
  setFeed('connecting', 'Connecting…');
  ws.onopen = () => {
    const hello = state.token ? { type: 'hello', token: state.token } : { type: 'hello' };
    ws.send(JSON.stringify(hello));
  };
  ws.onmessage = (e) => {
    if (ws !== state.ws) return;
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.type === 'welcome') {
      state.attempt = 0;
      state.refused = false;
      state.intervalMs = msg.interval_ms;
      $('auth').hidden = true;
      setFeed('open', `Live · every ${msg.interval_ms} ms`);
    } else if (msg.type === 'history') {
      loadHistory(msg);
    } else if (msg.type === 'snapshot') {
      render(msg);
    } else if (msg.type === 'error') {
      state.refused = true;
      askToken(msg.message);
    }
  };
  // Reconnect with full-jitter backoff, unless the server refused us: then wait for a token.
  ws.onclose = () => {
    if (ws !== state.ws) return;
    state.ws = null;
    markStale();
    if (state.refused) { setFeed('closed', 'Not authorised'); return; }
    const delay = Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** state.attempt++);
    state.retryAt = Date.now() + delay;
    setFeed('closed', 'Disconnected');
    renderStale();
    setTimeout(connect, delay);
  };
}

/** @param {string} s @param {string} text */
function setFeed(s, text) {
  $('feed').dataset.state = s;
  $('feed').textContent = text;
}

/** @param {string} why */
function askToken(why) {
  $('waiting').textContent = 'The server sends its figures once it has the admin token.';
  $('auth').hidden = false;
  $('auth-why').textContent = why;
  $('token').focus();
}

// ---- stale figures ---------------------------------------------------------------------------

// Figures that stopped coming stay on the page (the last known state is worth seeing) but
// greyed, under a banner that says since when: a closed feed, or one that went silent.
function markStale() {
  if (state.staleSince !== null || state.lastSnapshotAt === 0) return;
  state.staleSince = state.lastSnapshotAt;
  $('main').dataset.stale = 'true';
  renderStale();
}

function renderStale() {
  if (state.staleSince === null) return;
  const since = new Date(state.staleSince).toLocaleTimeString('en-GB', { hour12: false });
  const open = state.ws?.readyState === WebSocket.OPEN;
  const retry = open || state.refused ? ''
    : state.ws === null && state.retryAt > Date.now() ? ` Reconnecting in ${Math.ceil((state.retryAt - Date.now()) / 1000)} s.`
      : ' Reconnecting…';
  $('stale').textContent = `No figures since ${since}: the feed is ${open ? 'silent' : 'disconnected'}. What you see is from then.${retry}`;
  $('stale').hidden = false;
}

function markFresh() {
  state.lastSnapshotAt = Date.now();
  if (state.staleSince === null) return;
  state.staleSince = null;
  delete $('main').dataset.stale;
  $('stale').hidden = true;
}

setInterval(() => {
  if (state.lastSnapshotAt && Date.now() - state.lastSnapshotAt > SILENT_INTERVALS * state.intervalMs) markStale();
  renderStale();
}, 1000);

// ---- rendering -------------------------------------------------------------------------------

/** Quantiles of a sample: null when no push happened in its window. @param {number} us */
const quantile = (us) => (us > 0 ? us : null);

/** The server's last 15 minutes, column by column (PROTOCOL.md, "Ops feed"). @param {any} h */
function loadHistory(h) {
  state.intervalMs = h.interval_ms;
  state.history = h.t_ms.map((/** @type {number} */ t, /** @type {number} */ i) => ({
    t, p50: quantile(h.p50_us[i]), p99: quantile(h.p99_us[i]), p999: quantile(h.p999_us[i]),
    events: h.events_per_s[i], pushes: h.pushes_per_s[i],
    errors: h.errors[i], refused: h.refused[i], slow: h.slow_consumers[i],
  })).slice(-HISTORY);
  state.pointSeq = h.last_seq;
  state.totals = null;
  renderCharts();
}

/** @param {any} snap */
function render(snap) {
  markFresh();
  $('waiting').hidden = true;
  $('main').setAttribute('aria-busy', 'false');
  const lat = snap.latency;
  $('node').textContent = `node ${snap.node} · up ${fmtDuration(snap.uptime_s)}`;
  $('kpi-connections').textContent = nf.format(snap.connections);
  $('kpi-sessions').textContent = `${nf.format(snap.sessions)} sessions · ${snap.dashboards} dashboard${snap.dashboards === 1 ? '' : 's'}`;
  $('kpi-events').textContent = nf1.format(snap.events_per_s);
  $('kpi-events-total').textContent = `${nf.format(snap.events_total)} in all`;
  $('kpi-pushes').textContent = nf1.format(snap.pushes_per_s);
  $('kpi-pushes-total').textContent = `${nf.format(snap.pushes_total)} in all`;
  $('kpi-p50').textContent = fmtUs(lat.p50_us);
  $('kpi-p99').textContent = fmtUs(lat.p99_us);
  $('kpi-p999').textContent = fmtUs(lat.p999_us);
  $('kpi-count').textContent = `${nf.format(lat.count)} pushes in ${nf1.format(lat.window_s)} s`;
  $('kpi-lag').textContent = fmtUs(lat.loop_lag_p99_us);

  const pr = snap.problems;
  const totals = { errors: pr.errors.total, refused: pr.refused.total, slow: pr.slow_consumers.total };
  if (snap.seq > state.pointSeq) {
    const prev = state.totals ?? totals;
    const has = lat.count > 0;
    state.history.push({ t: snap.t_ms, p50: has ? lat.p50_us : null, p99: has ? lat.p99_us : null, p999: has ? lat.p999_us : null,
      events: snap.events_per_s, pushes: snap.pushes_per_s,
      errors: totals.errors - prev.errors, refused: totals.refused - prev.refused, slow: totals.slow - prev.slow });
    if (state.history.length > HISTORY) state.history.shift();
    state.pointSeq = snap.seq;
  }
  state.totals = totals;
  renderCharts();
  const hist = /** @type {SVGSVGElement} */ (/** @type {unknown} */ ($('chart-hist')));
  const bounds = lat.histogram.le_us;
  barChart(hist, lat.histogram.counts.map((/** @type {number} */ c, /** @type {number} */ i) => ({
    label: i < bounds.length ? `≤${fmtUs(bounds[i]).replace(' ', '')}` : `>${fmtUs(bounds.at(-1)).replace(' ', '')}`,
    value: c,
  })), 'var(--c-bar)');
  hist.dataset.total = String(lat.count);

  renderProblems(pr);
  renderEvents(snap.recent);
  renderVariants(snap.variants);
  renderBackends(snap.backends);
  renderNodes(snap.nodes);
}

function renderCharts() {
  const h = state.history;
  const axis = { intervalMs: state.intervalMs };
  const latency = /** @type {SVGSVGElement} */ (/** @type {unknown} */ ($('chart-latency')));
  lineChart(latency, [
    { name: 'p50', color: 'var(--c-p50)', values: h.map((p) => p.p50) },
    { name: 'p99', color: 'var(--c-p99)', values: h.map((p) => p.p99) },
    { name: 'p999', color: 'var(--c-p999)', values: h.map((p) => p.p999) },
  ], { log: true, format: (v) => fmtUs(v), minMax: 1000, ...axis });
  const points = h.filter((p) => p.p50 !== null).length;
  latency.dataset.points = String(points);
  latency.dataset.span = String(h.length);
  $('latency-empty').hidden = points > 0 || h.length === 0;
  const rate = /** @type {SVGSVGElement} */ (/** @type {unknown} */ ($('chart-rate')));
  lineChart(rate, [
    { name: 'events', color: 'var(--c-ev)', values: h.map((p) => p.events) },
    { name: 'pushes', color: 'var(--c-pu)', values: h.map((p) => p.pushes) },
  ], { format: (v) => nf1.format(v), minMax: 5, ...axis });
  const problems = /** @type {SVGSVGElement} */ (/** @type {unknown} */ ($('chart-problems')));
  lineChart(problems, [
    { name: 'errors', color: 'var(--c-er)', values: h.map((p) => p.errors) },
    { name: 'refused', color: 'var(--c-rf)', values: h.map((p) => p.refused) },
    { name: 'slow', color: 'var(--c-sl)', values: h.map((p) => p.slow) },
  ], { format: (v) => nf.format(v), minMax: 4, ...axis });
}

/** @param {number} s */
function fmtDuration(s) {
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** @param {string} tag @param {string} [text] @param {string} [className] */
function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// On a phone the tables stack: each row is a card and each cell shows its column's name,
// taken from the table's own header so the two never disagree.
/** @param {HTMLElement} tbody */
function labelCells(tbody) {
  const table = /** @type {HTMLTableElement} */ (tbody.closest('table'));
  const names = [...table.tHead?.rows[0]?.cells ?? []].map((th) => th.textContent ?? '');
  for (const tr of /** @type {HTMLTableRowElement[]} */ ([...tbody.children])) {
    [...tr.cells].forEach((td, i) => { if (td.colSpan === 1) td.dataset.label = names[i] ?? ''; });
  }
}

/**
 * Errors by code, upgrades refused by reason and slow consumers: counts in the server's 5 s
 * window and since it started; a line with a count in the window is red.
 * @param {any} pr
 */
function renderProblems(pr) {
  const recent = pr.errors.window + pr.refused.window + pr.slow_consumers.window;
  $('kpi-problems').textContent = `${nf.format(pr.errors.window)} · ${nf.format(pr.refused.window)} · ${nf.format(pr.slow_consumers.window)}`;
  $('kpi-problems-tile').classList.toggle('alert', recent > 0);
  $('kpi-problems-sub').textContent = `last ${nf1.format(pr.window_s)} s · ${nf.format(pr.errors.total + pr.refused.total)} since start`;
  /** @param {string} what @param {number} win @param {number} total @param {string} [detail] */
  const row = (what, win, total, detail) => {
    const tr = el('tr', undefined, `${win ? 'hot' : ''}${detail ? ' detail' : ''}`.trim() || undefined);
    const name = el('td', what);
    if (detail) name.append(el('span', ` ${detail}`, 'mono muted'));
    tr.append(name, el('td', nf.format(win), 'num'), el('td', nf.format(total), 'num'));
    return tr;
  };
  $('problems').replaceChildren(
    row('Errors answered', pr.errors.window, pr.errors.total),
    ...pr.error_codes.map((/** @type {any} */ c) => row(String(c.code), c.window, c.total, c.name)),
    row('Connections refused', pr.refused.window, pr.refused.total),
    ...pr.refused_reasons.map((/** @type {any} */ r) => row('', r.window, r.total, r.reason)),
    row('Slow consumers closed', pr.slow_consumers.window, pr.slow_consumers.total),
  );
}

/** @param {any[]} recent */
function renderEvents(recent) {
  const rows = recent.slice(0, EVENTS_SHOWN).map((e) => {
    const tr = el('tr', undefined, e.seq > state.lastSeq && state.lastSeq > 0 ? 'new' : undefined);
    tr.dataset.seq = String(e.seq);
    const t = new Date(e.t_ms);
    const time = `${t.toLocaleTimeString('en-GB', { hour12: false })}.${String(t.getMilliseconds()).padStart(3, '0')}`;
    const item = e.item ? (state.names.get(e.item) ?? e.item) : '';
    tr.append(el('td', time, 'mono'), el('td', e.user, 'mono'), el('td', '', ''), el('td', item, 'item'));
    tr.children[2].append(el('span', e.kind, `kind kind-${e.kind}`));
    if (e.surface) tr.children[3].append(el('span', ` from ${e.surface}`, 'muted'));
    return tr;
  });
  if (rows.length === 0) {
    const tr = el('tr');
    tr.append(Object.assign(el('td', 'No events yet: open the shop and click a product.', 'muted'), { colSpan: 4 }));
    rows.push(tr);
  }
  state.lastSeq = Math.max(state.lastSeq, recent[0]?.seq ?? 0);
  $('events').replaceChildren(...rows);
  labelCells($('events'));
}

/** @param {any[]} variants */
function renderVariants(variants) {
  const rows = variants.map((v) => {
    const tr = el('tr');
    const ctr = el('td', `${(v.ctr * 100).toFixed(1)} %`, 'num');
    const bar = el('span', '', 'ctr-bar');
    bar.style.width = `${Math.min(100, v.ctr * 100 * 4)}%`;
    ctr.prepend(bar);
    tr.append(el('td', v.variant, 'mono'), el('td', nf.format(v.impressions), 'num'), el('td', nf.format(v.clicks), 'num'), ctr);
    return tr;
  });
  if (rows.length === 0) {
    const tr = el('tr');
    tr.append(Object.assign(el('td', 'No impressions yet.', 'muted'), { colSpan: 4 }));
    rows.push(tr);
  }
  $('variants').replaceChildren(...rows);
  labelCells($('variants'));
}

/** @type {Record<string, Record<string, string>>} */
const BACKEND_LABELS = {
  profiles: { redis: 'Redis (profiles)', memory: 'Profiles in memory (no Redis configured)' },
  bus: { kafka: 'Kafka (bus)', local: 'In-process bus (no Kafka configured)' },
};

/** @param {any} backends */
function renderBackends(backends) {
  $('backends').replaceChildren(...['profiles', 'bus'].map((key) => {
    const b = backends[key];
    const li = el('li', '', b.ok ? 'ok' : 'bad');
    li.append(el('span', b.ok ? 'up' : 'down', 'dot'),
      el('strong', BACKEND_LABELS[key][b.backend] ?? `${key}: ${b.backend}`));
    const extra = key === 'profiles' ? `${nf.format(b.buffered_bytes)} bytes waiting` : `${nf.format(b.queued)} messages not yet durable`;
    li.append(el('span', b.ok ? ` · ${extra}` : ` · ${b.reason}`, 'muted'));
    return li;
  }));
}

/** @param {any[]} nodes */
function renderNodes(nodes) {
  const live = nodes.filter((n) => !n.stale);
  const sum = (/** @type {string} */ k) => live.reduce((a, n) => a + n[k], 0);
  $('cluster').textContent = nodes.length > 1
    ? `${live.length} of ${nodes.length} nodes live · ${nf.format(sum('connections'))} connections · ${nf1.format(sum('events_per_s'))} events/s in all`
    : 'one node (several share their figures through Kafka)';
  $('nodes').replaceChildren(...nodes.map((n) => {
    const tr = el('tr');
    const status = n.stale ? `silent ${Math.round(n.age_ms / 1000)} s` : n.self ? 'this node' : `heard ${Math.round(n.age_ms)} ms ago`;
    tr.append(el('td', n.node, 'mono'), el('td', status, n.stale ? 'bad' : 'okc'),
      el('td', nf.format(n.connections), 'num'), el('td', nf.format(n.sessions), 'num'),
      el('td', nf1.format(n.events_per_s), 'num'), el('td', nf1.format(n.pushes_per_s), 'num'),
      el('td', fmtUs(n.p50_us), 'num'), el('td', fmtUs(n.p99_us), 'num'),
      el('td', n.profiles_ok ? 'ok' : 'down', n.profiles_ok ? 'okc' : 'bad'),
      el('td', n.bus_ok ? 'ok' : 'down', n.bus_ok ? 'okc' : 'bad'));
    return tr;
  }));
  labelCells($('nodes'));
}

// Item names for the event stream: the demo catalog, when this server serves it.
async function loadNames() {
  const res = await fetch('catalog/demo-catalog.jsonl');
  if (!res.ok) return;
  for (const line of (await res.text()).split('\n')) {
    if (!line.trim()) continue;
    const p = JSON.parse(line);
    state.names.set(p.id, p.name);
  }
}

$('auth').addEventListener('submit', (e) => {
  e.preventDefault();
  state.token = /** @type {HTMLInputElement} */ ($('token')).value;
  try { sessionStorage.setItem(TOKEN_KEY, state.token); } catch { /* storage off */ }
  state.refused = false;
  const old = state.ws;
  state.ws = null; // its close must not schedule a reconnect of its own
  old?.close();
  connect();
});
loadNames().catch(() => {}).finally(connect);
