// SPDX-License-Identifier: Apache-2.0
// Compact lists in the SDK (PROTOCOL.md, `recs_delta`; src/compact.js): the shared vectors'
// deltas read and applied in turn give whole lists with the details and reasons they
// defined; a delta that does not apply (a base not held, a reason never defined, places that
// do not fill the list) throws and changes nothing held; a new connection and a surface
// subscribed again start from nothing; subscribe({compact}) is checked.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { CompactLists } from '../src/compact.js';
import { ClientError } from '../src/errors.js';
import { readServerMessage } from '../src/incoming.js';
import { subscribeMessage } from '../src/outgoing.js';

const here = dirname(fileURLToPath(import.meta.url));
const vectors = JSON.parse(readFileSync(join(here, '../../../proto/vectors/vectors.json'), 'utf8'));
const delta = (name) => {
  const v = vectors.find((c) => c.name === name);
  assert.ok(v, name);
  const { type, ...rest } = readServerMessage(JSON.parse(v.json));
  assert.equal(type, 'recs_delta');
  return rest;
};
const WHOLE = 'recs_delta whole list (compact, from nothing)';
const CHANGES = 'recs_delta changes';
const SAME_ORDER = 'recs_delta with no change of order';

test('the vectors\' deltas applied in turn are whole lists', () => {
  const lists = new CompactLists();
  const first = lists.apply(delta(WHOLE));
  assert.deepEqual(first, {
    surface: 'home', version: 1763800000000001, tookUs: 41, variant: 'control',
    items: [
      { item: '22423', score: 0.91, src: 'trending', why: 'Trending on mobile', reason: { code: 'trending_context', segment: 'mobile' }, name: 'REGENCY CAKESTAND 3 TIER', category: 'kitchen', price: 12.75 },
      {
        item: '85123A', score: 0.5, src: 'popular', why: 'Popular in Candles & lights', reason: { code: 'popular', category: 'candles-lights', categoryName: 'Candles & lights' },
        name: 'WHITE HANGING HEART T-LIGHT HOLDER', category: 'candles-lights', price: 2.55,
      },
      { item: 'x-unknown', score: 0.125, src: 'explore', why: 'New', reason: { code: 'new_item' } },
    ],
  });
  const second = lists.apply(delta(CHANGES));
  assert.equal(second.cause, 'e-0001');
  assert.deepEqual(second.items.map((it) => [it.item, it.score, it.src]), [['84406B', 1.75, 'covisit'], ['85123A', 0.5, 'popular'], ['22423', 0.25, 'trending']]);
  // Details kept from the first list, a reason defined in the second.
  assert.equal(second.items[2].name, 'REGENCY CAKESTAND 3 TIER');
  assert.deepEqual(second.items[0].reason, { code: 'co_visited', item: '85123A', itemName: 'White Hanging Heart T-Light Holder' });
  assert.equal(second.items[0].name, 'CREAM CUPID HEARTS COAT HANGER');
  const third = lists.apply(delta(SAME_ORDER));
  assert.deepEqual(third.items.map((it) => it.item), ['84406B', '85123A', '22423']);
  assert.equal(third.items[0].score, 1.5);
});

test('a delta that does not apply throws and leaves the list held as it was', () => {
  const lists = new CompactLists();
  assert.throws(() => lists.apply(delta(CHANGES)), (e) => e instanceof ClientError && e.code === 'protocol' && /base/.test(e.message));
  lists.apply(delta(WHOLE));
  const held = lists.held.get('home');
  const bad = [
    { ...delta(CHANGES), base: 42 }, // not the version held
    { ...delta(CHANGES), r: [99, 1, 0] }, // a reason never defined
    { ...delta(CHANGES), place: [[5, '84406B']] }, // a place beyond the list
    { ...delta(CHANGES), place: [[0, '84406B'], [0, '22423']] }, // one position twice
  ];
  for (const d of bad) {
    assert.throws(() => lists.apply(d), ClientError, JSON.stringify(d).slice(0, 80));
    assert.equal(lists.held.get('home'), held);
  }
  assert.equal(lists.apply(delta(CHANGES)).items.length, 3);
});

test('a new connection, or a surface subscribed again, starts from nothing', () => {
  const lists = new CompactLists();
  lists.apply(delta(WHOLE));
  lists.forget('home');
  // Changes of the old subscription still in flight: dropped without a word.
  assert.equal(lists.apply(delta(CHANGES)), null);
  lists.apply(delta(WHOLE));
  assert.equal(lists.apply(delta(CHANGES)).version, 1763800000000002);
  lists.apply(delta(WHOLE));
  lists.reset();
  assert.equal(lists.details.size, 0);
  assert.throws(() => lists.apply(delta(CHANGES)), ClientError);
});

test('recs_delta is read strictly where applying relies on it', () => {
  const base = JSON.parse(vectors.find((c) => c.name === CHANGES).json);
  for (const broken of [{ scores_e4: 'x' }, { scores_e4: [1.5, 2, 3] }, { r: [1] }, { r: [1, 2, -1] }, { place: [[0]] }, { place: [['0', 'a']] }, { remove: [1] }, { version: 1.5 }, { base: 'x' }, { reasons: { a: {} } }]) {
    assert.throws(() => readServerMessage({ ...base, ...broken }), ClientError, JSON.stringify(broken));
  }
  // Parts an older or newer server might vary are read leniently.
  const read = readServerMessage({ ...base, items: { a: { name: 1, price: 'x', later: true } }, took_us: 'x' });
  assert.deepEqual(read.items.get('a'), {});
  assert.equal(read.tookUs, 0);
});

test('subscribe({compact}) asks for compact lists; it must be a boolean', () => {
  assert.deepEqual(subscribeMessage('home', { k: 20, compact: true }), { type: 'subscribe', surface: 'home', k: 20, compact: true });
  assert.deepEqual(subscribeMessage('home', { compact: false }), { type: 'subscribe', surface: 'home', compact: false });
  assert.throws(() => subscribeMessage('home', { compact: 'yes' }), (e) => e instanceof ClientError && e.code === 'invalid_argument');
});
