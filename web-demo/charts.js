// SPDX-License-Identifier: Apache-2.0
// @ts-check
// Small SVG charts for the ops dashboard: a time-series line chart (linear or log scale) and
// a bar chart. No library: a few paths redrawn twice a second cost less than loading one.

const NS = 'http://www.w3.org/2000/svg';

/** @param {string} tag @param {Record<string, string | number>} attrs */
function svgEl(tag, attrs) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

/**
 * @typedef {{name: string, color: string, values: (number | null)[]}} Series
 * @typedef {{log?: boolean, format: (v: number) => string, minMax?: number, intervalMs?: number}} LineOptions
 */

/**
 * Draws `series` (equal lengths, oldest first) into `svg`, which keeps its viewBox size.
 * @param {SVGSVGElement} svg @param {Series[]} series @param {LineOptions} opts
 */
export function lineChart(svg, series, opts) {
  const [W, H] = size(svg), L = 60, R = 10, T = 12, B = 22;
  const all = series.flatMap((s) => s.values).filter(/** @returns {v is number} */ (v) => v !== null && v > 0);
  const n = Math.max(2, ...series.map((s) => s.values.length));
  let lo, hi;
  if (opts.log) {
    lo = 10 ** Math.floor(Math.log10(Math.max(1, Math.min(...all, 100))));
    hi = 10 ** Math.ceil(Math.log10(Math.max(opts.minMax ?? 1000, ...all) * 1.05));
  } else {
    lo = 0;
    const step = niceCeil(Math.max(opts.minMax ?? 1, ...all) * 1.05 / 4);
    hi = step * Math.ceil(Math.max(opts.minMax ?? 1, ...all) * 1.05 / step);
  }
  const y = (/** @type {number} */ v) => {
    const f = opts.log ? (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : (v - lo) / (hi - lo);
    return T + (1 - f) * (H - T - B);
  };
  const x = (/** @type {number} */ i) => L + (i / (n - 1)) * (W - L - R);
  const kids = [];
  const ticks = opts.log ? decades(lo, hi) : linearTicks(hi);
  for (const t of ticks) {
    kids.push(svgEl('line', { x1: L, x2: W - R, y1: y(t), y2: y(t), class: 'grid' }));
    const label = svgEl('text', { x: L - 6, y: y(t) + 4, class: 'tick', 'text-anchor': 'end' });
    label.textContent = opts.format(t);
    kids.push(label);
  }
  const axis = svgEl('text', { x: W - R, y: H - 6, class: 'tick', 'text-anchor': 'end' });
  axis.textContent = 'now';
  const start = svgEl('text', { x: L, y: H - 6, class: 'tick' });
  start.textContent = `−${fmtSpan((n - 1) * (opts.intervalMs ?? 500))}`;
  kids.push(axis, start);
  for (const s of series) {
    let d = '';
    s.values.forEach((v, i) => {
      if (v === null || (opts.log && v <= 0)) return;
      d += `${d && s.values[i - 1] !== null ? 'L' : 'M'}${x(i + n - s.values.length).toFixed(1)} ${y(v).toFixed(1)}`;
    });
    kids.push(svgEl('path', { d, fill: 'none', stroke: s.color, 'stroke-width': 2, 'stroke-linejoin': 'round', 'data-series': s.name }));
  }
  svg.replaceChildren(...kids);
}

/**
 * Vertical bars with a label under each.
 * @param {SVGSVGElement} svg @param {{label: string, value: number}[]} bars @param {string} color
 */
export function barChart(svg, bars, color) {
  const [W, H] = size(svg), L = 8, R = 8, T = 16, B = 34;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const w = (W - L - R) / Math.max(1, bars.length);
  const every = Math.max(1, Math.ceil(54 / w)); // a label per ~54 px, so they never overlap
  const kids = [svgEl('line', { x1: L, x2: W - R, y1: H - B, y2: H - B, class: 'grid' })];
  bars.forEach((b, i) => {
    const h = (b.value / max) * (H - T - B);
    kids.push(svgEl('rect', { x: L + i * w + 2, y: H - B - h, width: Math.max(1, w - 4), height: h, fill: color, rx: 2 }));
    if (b.value > 0) {
      const v = svgEl('text', { x: L + i * w + w / 2, y: H - B - h - 4, class: 'tick', 'text-anchor': 'middle' });
      v.textContent = String(b.value);
      kids.push(v);
    }
    if (i % every === 0) {
      const t = svgEl('text', { x: L + i * w + w / 2, y: H - B + 14, class: 'tick', 'text-anchor': 'middle' });
      t.textContent = b.label;
      kids.push(t);
    }
  });
  svg.replaceChildren(...kids);
}

// Drawn in the element's own pixels, so text keeps its size at every width.
/** @param {SVGSVGElement} svg @returns {[number, number]} */
function size(svg) {
  const W = Math.max(200, Math.round(svg.clientWidth)), H = Math.max(120, Math.round(svg.clientHeight));
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  return [W, H];
}

/** The time a chart spans, for its axis: "40 s", "15 min". @param {number} ms */
function fmtSpan(ms) {
  return ms < 90_000 ? `${Math.round(ms / 1000)} s` : `${Math.round(ms / 60_000)} min`;
}

/** Ticks at a round step: 0, step, 2·step… up to `hi`. @param {number} hi */
function linearTicks(hi) {
  const step = niceCeil(hi / 4);
  const out = [];
  for (let v = 0; v <= hi * 1.001; v += step) out.push(v);
  return out;
}

/** @param {number} v */
function niceCeil(v) {
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

/** @param {number} lo @param {number} hi */
function decades(lo, hi) {
  const out = [];
  for (let v = lo; v <= hi * 1.001; v *= 10) out.push(v);
  return out;
}
