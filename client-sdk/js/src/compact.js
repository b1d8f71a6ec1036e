// SPDX-License-Identifier: Apache-2.0
// Compact lists (PROTOCOL.md, `recs_delta`): what one connection keeps to turn each list's
// changes back into the whole list the application sees. Per connection, the item details
// and the reasons by number the server sent once; per surface, the ids of the list held and
// its version. A new connection starts empty (reset), a surface subscribed again starts from
// nothing (forget); a delta whose base is not the version held cannot be applied and throws
// (the client then subscribes that surface again, and the server answers with the whole list).

import { ClientError } from './errors.js';

/**
 * @typedef {import('./incoming.js').RecsDelta} RecsDelta
 * @typedef {import('./incoming.js').RecsList} RecsList
 * @typedef {import('./incoming.js').RecItem} RecItem
 */

/** @param {string} what */
const unusable = (what) => new ClientError('protocol', `recs_delta: ${what}`);

/** What a surface subscribed again holds until its whole list arrives. */
const AWAITING = Object.freeze({ version: -1, items: /** @type {string[]} */ ([]) });

export class CompactLists {
  constructor() {
    /** @type {Map<string, import('./incoming.js').ItemDetails>} */
    this.details = new Map();
    /** @type {Map<number, import('./incoming.js').ReasonDef>} */
    this.reasons = new Map();
    /** @type {Map<string, {version: number, items: string[]}>} */
    this.held = new Map();
  }

  /** A new connection: the server starts afresh, so does the client. */
  reset() {
    this.details.clear();
    this.reasons.clear();
    this.held.clear();
  }

  /**
   * `surface` was subscribed (again) or dropped: its next list comes whole, and until it does,
   * changes still in flight for the old subscription are dropped without a word.
   * @param {string} surface
   */
  forget(surface) {
    this.held.set(surface, AWAITING);
  }

  /**
   * The whole list `d` stands for, shaped as a `recs`; null for changes of a subscription
   * replaced since (see forget). Throws ClientError('protocol') when it does not apply (then
   * nothing is changed but the tables it defines, which stay valid).
   * @param {RecsDelta} d
   * @returns {RecsList | null}
   */
  apply(d) {
    const holds = this.held.get(d.surface);
    if (holds === AWAITING && d.base !== 0) return null;
    if (d.base !== 0 && holds?.version !== d.base) throw unusable(`base ${d.base} not held`);
    for (const [id, det] of d.items) this.details.set(id, det);
    for (const [rid, def] of d.reasons) this.reasons.set(rid, def);
    const held = d.base === 0 ? [] : /** @type {{items: string[]}} */ (holds).items;
    const removed = new Set(d.remove);
    /** @type {Map<number, string>} */
    const at = new Map();
    for (const [pos, id] of d.place) at.set(pos, id);
    const placed = new Set(at.values());
    const rest = held.filter((id) => !removed.has(id) && !placed.has(id));
    const n = d.scores.length;
    if (at.size !== d.place.length || rest.length + at.size !== n) throw unusable('places do not fill the list');
    /** @type {string[]} */
    const ids = [];
    for (let p = 0, k = 0; p < n; p++) {
      const id = at.get(p) ?? rest[k++];
      if (id === undefined) throw unusable(`position ${p} empty`);
      ids.push(id);
    }
    /** @type {RecItem[]} */
    const items = [];
    for (let i = 0; i < n; i++) {
      const why = this.reasons.get(d.r[i]);
      if (why === undefined) throw unusable(`reason ${d.r[i]} undefined`);
      /** @type {RecItem} */
      const it = { item: ids[i], score: d.scores[i], src: why.src, why: why.why };
      if (why.reason !== undefined) it.reason = why.reason;
      const det = this.details.get(ids[i]);
      if (det?.name !== undefined) it.name = det.name;
      if (det?.category !== undefined) it.category = det.category;
      if (det?.price !== undefined) it.price = det.price;
      items.push(it);
    }
    this.held.set(d.surface, { version: d.version, items: ids });
    /** @type {RecsList} */
    const list = { surface: d.surface, version: d.version, items, tookUs: d.tookUs, variant: d.variant };
    if (d.cause !== undefined) list.cause = d.cause;
    return list;
  }
}
