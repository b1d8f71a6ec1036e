// SPDX-License-Identifier: Apache-2.0
// @ts-check
// FLIP ("first, last, invert, play") for a keyed list: children keep their elements across
// updates, so an item that moves is seen to travel from its old place to its new one, and
// an item that arrives fades in. The DOM is updated at once; only the motion is deferred.

const reducedMotion = () => window.matchMedia('(prefers-reduced-motion: reduce)').matches;

/**
 * Replaces the children of `list` with the elements for `keys`, in that order, reusing the
 * element of a key already present (`make(key)` builds a missing one, `update(el, key)`
 * refreshes a kept one), and animates the moves.
 * @template {HTMLElement} E
 * @param {HTMLElement} list
 * @param {string[]} keys
 * @param {(key: string) => E} make
 * @param {(el: E, key: string) => void} update
 * @param {(el: HTMLElement) => string | undefined} keyOf
 * @returns {{moved: number, added: number, removed: number}}
 */
export function flipUpdate(list, keys, make, update, keyOf) {
  /** @type {Map<string, {el: HTMLElement, rect: DOMRect}>} */
  const first = new Map();
  for (const el of /** @type {HTMLElement[]} */ ([...list.children])) {
    const key = keyOf(el);
    if (key !== undefined) first.set(key, { el, rect: el.getBoundingClientRect() });
  }
  const wanted = new Set(keys);
  let removed = 0;
  for (const [key, { el }] of first) {
    if (!wanted.has(key)) { el.remove(); removed++; }
  }
  /** @type {HTMLElement[]} */
  const next = keys.map((key) => {
    const kept = first.get(key);
    if (kept) { update(/** @type {E} */ (kept.el), key); return kept.el; }
    return make(key);
  });
  // Moves the existing elements instead of re-creating them, so focus stays where it was.
  next.forEach((el, i) => { if (list.children[i] !== el) list.insertBefore(el, list.children[i] ?? null); });
  while (list.children.length > next.length) list.lastElementChild?.remove();

  let moved = 0, added = 0;
  const animate = !reducedMotion() && typeof Element.prototype.animate === 'function';
  for (const el of next) {
    const before = first.get(keyOf(el) ?? '');
    if (!before) {
      added++;
      if (animate) el.animate([{ opacity: 0, transform: 'scale(.92)' }, { opacity: 1, transform: 'none' }],
        { duration: 320, easing: 'cubic-bezier(.2,.7,.3,1)' });
      continue;
    }
    const last = el.getBoundingClientRect();
    const dx = before.rect.left - last.left, dy = before.rect.top - last.top;
    if (Math.abs(dx) < 1 && Math.abs(dy) < 1) continue;
    moved++;
    if (animate) el.animate([{ transform: `translate(${dx}px, ${dy}px)` }, { transform: 'none' }],
      { duration: 420, easing: 'cubic-bezier(.2,.7,.3,1)' });
  }
  return { moved, added, removed };
}
