// SPDX-License-Identifier: Apache-2.0
// @ts-check
// Product illustrations, generated: the catalog has no photos, so each product gets an SVG
// drawn from its category (the glyph and the base hue), its id (a seeded pattern and small
// variations) and colour words in its name ("Red Retrospot Mug" is red). Deterministic: the
// same product looks the same on every page and every visit.

/** @typedef {{id: string, name?: string, category?: string}} ArtItem */

/** @type {Record<string, number>} */
const HUES = {
  kitchen: 18, 'home-decor': 340, 'candles-lights': 42, jewellery: 285, christmas: 140,
  stationery: 210, accessories: 320, storage: 30, 'cards-wrap': 355, party: 300,
  textiles: 190, 'toys-games': 50, bags: 25, bathroom: 195, garden: 110, signs: 260,
  easter: 75, crafts: 170, children: 230, furniture: 35, clocks: 220, other: 0,
};

const COLOUR_WORDS = [
  ['red', '#d23a3a'], ['pink', '#e46a9b'], ['blue', '#3569c9'], ['green', '#3c9a5f'],
  ['white', '#f4f1ea'], ['black', '#2b2b2b'], ['gold', '#d2a532'], ['silver', '#b8bec6'],
  ['ivory', '#efe6cf'], ['purple', '#7d4bb5'], ['yellow', '#e8c23a'], ['orange', '#e9823a'],
  ['cream', '#f1e5c8'], ['grey', '#8c9097'], ['turquoise', '#2bb3b1'], ['lilac', '#b596d8'],
];

// Glyphs in a 120x90 box, centred near (60, 48). `c` is the main colour, `d` a darker one.
/** @type {Record<string, (c: string, d: string) => string>} */
const GLYPHS = {
  kitchen: (c, d) => `<rect x="38" y="30" width="36" height="38" rx="5" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M74 38h6a8 8 0 0 1 0 16h-6" fill="none" stroke="${d}" stroke-width="4"/><path d="M48 22q4-6 0-10M58 22q4-6 0-10" stroke="${d}" stroke-width="2.5" fill="none" stroke-linecap="round"/>`,
  'home-decor': (c, d) => `<path d="M60 72 36 48a13 13 0 0 1 24-18 13 13 0 0 1 24 18z" fill="${c}" stroke="${d}" stroke-width="3"/>`,
  'candles-lights': (c, d) => `<rect x="48" y="40" width="24" height="34" rx="3" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M60 16c7 9 7 15 0 20-7-5-7-11 0-20z" fill="#f6b73c" stroke="#d9822b" stroke-width="2"/><path d="M60 36v4" stroke="${d}" stroke-width="2"/>`,
  jewellery: (c, d) => `<path d="M42 36h36l10 12-28 26-28-26z" fill="${c}" stroke="${d}" stroke-width="3" stroke-linejoin="round"/><path d="M32 48h56M52 36l8 38 8-38" fill="none" stroke="${d}" stroke-width="2"/>`,
  christmas: (c, d) => `<path d="M60 14 80 42H70l14 20H36l14-20H40z" fill="${c}" stroke="${d}" stroke-width="3" stroke-linejoin="round"/><rect x="54" y="62" width="12" height="12" fill="${d}"/><circle cx="60" cy="14" r="4" fill="#f2c14e"/>`,
  stationery: (c, d) => `<g transform="rotate(-35 60 46)"><rect x="28" y="38" width="54" height="16" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M82 38l16 8-16 8z" fill="#f1d3a8" stroke="${d}" stroke-width="3" stroke-linejoin="round"/><rect x="20" y="38" width="8" height="16" fill="#e58f9d" stroke="${d}" stroke-width="3"/></g>`,
  accessories: (c, d) => `<path d="M30 50a30 30 0 0 1 60 0z" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M60 50v20a6 6 0 0 1-12 0" fill="none" stroke="${d}" stroke-width="3" stroke-linecap="round"/><path d="M60 18v2" stroke="${d}" stroke-width="3"/>`,
  storage: (c, d) => `<path d="M32 36h56v36H32z" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M28 26h64v10H28z" fill="${c}" stroke="${d}" stroke-width="3"/><rect x="52" y="44" width="16" height="6" rx="3" fill="${d}"/>`,
  'cards-wrap': (c, d) => `<rect x="30" y="34" width="60" height="40" rx="3" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M60 34v40M30 50h60" stroke="${d}" stroke-width="4"/><path d="M60 34c-6-12-18-10-14-2s14 2 14 2c6-12 18-10 14-2s-14 2-14 2" fill="none" stroke="${d}" stroke-width="3"/>`,
  party: (c, d) => `<ellipse cx="60" cy="38" rx="18" ry="22" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M60 60l-4 5h8zM60 65q-6 8 0 14" fill="none" stroke="${d}" stroke-width="2.5"/>`,
  textiles: (c, d) => `<path d="M30 30q30 8 60 0q-8 22 0 44q-30-8-60 0q8-22 0-44z" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M40 40q20 5 40 0M40 64q20-5 40 0" fill="none" stroke="${d}" stroke-width="1.5" stroke-dasharray="3 3"/>`,
  'toys-games': (c, d) => `<rect x="38" y="26" width="44" height="44" rx="8" fill="${c}" stroke="${d}" stroke-width="3" transform="rotate(-10 60 48)"/><g fill="${d}"><circle cx="50" cy="38" r="4"/><circle cx="60" cy="48" r="4"/><circle cx="70" cy="58" r="4"/></g>`,
  bags: (c, d) => `<path d="M34 40h52l-4 34H38z" fill="${c}" stroke="${d}" stroke-width="3" stroke-linejoin="round"/><path d="M48 40v-6a12 12 0 0 1 24 0v6" fill="none" stroke="${d}" stroke-width="3"/>`,
  bathroom: (c, d) => `<path d="M60 16c12 18 20 28 20 38a20 20 0 0 1-40 0c0-10 8-20 20-38z" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M50 56a10 10 0 0 0 8 9" fill="none" stroke="#fff" stroke-width="3" stroke-linecap="round"/>`,
  garden: (c, d) => `<path d="M60 74V44" stroke="#3c7a44" stroke-width="4"/><path d="M60 62q-14 0-16-12 12 0 16 12z" fill="#5aa05f"/><g fill="${c}" stroke="${d}" stroke-width="2.5"><circle cx="60" cy="24" r="9"/><circle cx="72" cy="34" r="9"/><circle cx="48" cy="34" r="9"/><circle cx="60" cy="42" r="7"/></g><circle cx="60" cy="33" r="6" fill="#f2c14e"/>`,
  signs: (c, d) => `<path d="M60 20v54" stroke="${d}" stroke-width="4"/><rect x="30" y="26" width="60" height="26" rx="4" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M40 36h40M40 43h26" stroke="${d}" stroke-width="3" stroke-linecap="round"/>`,
  easter: (c, d) => `<ellipse cx="60" cy="48" rx="20" ry="26" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M41 44l7-6 6 6 6-6 6 6 6-6 7 6" fill="none" stroke="${d}" stroke-width="2.5"/><path d="M41 56l7 5 6-5 6 5 6-5 6 5 7-5" fill="none" stroke="${d}" stroke-width="2.5"/>`,
  crafts: (c, d) => `<circle cx="60" cy="48" r="24" fill="${c}" stroke="${d}" stroke-width="3"/><circle cx="60" cy="48" r="17" fill="none" stroke="${d}" stroke-width="1.5"/><g fill="${d}"><circle cx="54" cy="42" r="3"/><circle cx="66" cy="42" r="3"/><circle cx="54" cy="54" r="3"/><circle cx="66" cy="54" r="3"/></g>`,
  children: (c, d) => `<circle cx="44" cy="28" r="8" fill="${c}" stroke="${d}" stroke-width="3"/><circle cx="76" cy="28" r="8" fill="${c}" stroke="${d}" stroke-width="3"/><circle cx="60" cy="44" r="20" fill="${c}" stroke="${d}" stroke-width="3"/><g fill="${d}"><circle cx="53" cy="40" r="2.5"/><circle cx="67" cy="40" r="2.5"/><ellipse cx="60" cy="50" rx="4" ry="3"/></g>`,
  furniture: (c, d) => `<path d="M42 20h36v28H42z" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M36 48h48v8H36z" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M40 56v18M80 56v18" stroke="${d}" stroke-width="4"/>`,
  clocks: (c, d) => `<circle cx="60" cy="48" r="26" fill="${c}" stroke="${d}" stroke-width="3"/><path d="M60 48V32M60 48l11 7" stroke="${d}" stroke-width="3" stroke-linecap="round"/><g fill="${d}"><circle cx="60" cy="26" r="2"/><circle cx="82" cy="48" r="2"/><circle cx="60" cy="70" r="2"/><circle cx="38" cy="48" r="2"/></g>`,
  other: (c, d) => `<path d="M60 20l8 17 19 2-14 13 4 19-17-9-17 9 4-19-14-13 19-2z" fill="${c}" stroke="${d}" stroke-width="3" stroke-linejoin="round"/>`,
};

/** FNV-1a: a small, stable string hash. @param {string} s */
function hash(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** A seeded generator (mulberry32), so variations depend on the product only. @param {number} seed */
function rng(seed) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** @param {string} category */
export function categoryHue(category) {
  return HUES[category] ?? hash(category) % 360;
}

/** @param {() => number} r @param {number} hue @param {string} id */
function pattern(r, hue, id) {
  const ink = `hsl(${hue} 45% 35% / .13)`;
  const kind = Math.floor(r() * 4);
  const size = 10 + Math.floor(r() * 8);
  const pid = `p${id.replace(/[^A-Za-z0-9]/g, '')}`;
  const shapes = [
    `<circle cx="${size / 2}" cy="${size / 2}" r="${size / 6}" fill="${ink}"/>`,
    `<path d="M0 ${size}L${size} 0" stroke="${ink}" stroke-width="${size / 5}"/>`,
    `<path d="M0 ${size / 2}q${size / 4} -${size / 3} ${size / 2} 0t${size / 2} 0" fill="none" stroke="${ink}" stroke-width="1.5"/>`,
    `<rect x="${size / 4}" y="${size / 4}" width="${size / 2}" height="${size / 2}" fill="${ink}" transform="rotate(45 ${size / 2} ${size / 2})"/>`,
  ];
  return {
    defs: `<pattern id="${pid}" width="${size}" height="${size}" patternUnits="userSpaceOnUse">${shapes[kind]}</pattern>`,
    fill: `url(#${pid})`,
  };
}

const cache = new Map();

/**
 * The illustration of a product, as SVG markup (decorative: the caller hides it from
 * assistive technology, the product's name is next to it).
 * @param {ArtItem} item
 * @returns {string}
 */
export function illustration(item) {
  const hit = cache.get(item.id);
  if (hit) return hit;
  const category = item.category || 'other';
  const r = rng(hash(item.id));
  const hue = (categoryHue(category) + Math.round((r() - 0.5) * 30) + 360) % 360;
  const name = (item.name || '').toLowerCase();
  const word = COLOUR_WORDS.find(([w]) => new RegExp(`\\b${w}\\b`).test(name));
  const main = word ? word[1] : `hsl(${(hue + 180 + Math.round(r() * 40)) % 360} 55% 62%)`;
  const dark = `hsl(${hue} 35% 25%)`;
  const glyph = (GLYPHS[category] ?? GLYPHS.other)(main, dark);
  const p = pattern(r, hue, item.id);
  const tilt = Math.round((r() - 0.5) * 12);
  const svg = `<svg viewBox="0 0 120 90" preserveAspectRatio="xMidYMid slice" xmlns="http://www.w3.org/2000/svg" aria-hidden="true" focusable="false">`
    + `<defs><linearGradient id="g${p.fill.slice(6, -1)}" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl(${hue} 70% 92%)"/><stop offset="1" stop-color="hsl(${hue} 55% 80%)"/></linearGradient>${p.defs}</defs>`
    + `<rect width="120" height="90" fill="url(#g${p.fill.slice(6, -1)})"/><rect width="120" height="90" fill="${p.fill}"/>`
    + `<ellipse cx="60" cy="80" rx="34" ry="5" fill="hsl(${hue} 40% 30% / .15)"/>`
    + `<g transform="rotate(${tilt} 60 48)">${glyph}</g></svg>`;
  cache.set(item.id, svg);
  return svg;
}
