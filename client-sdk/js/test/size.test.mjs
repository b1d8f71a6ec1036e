// SPDX-License-Identifier: Apache-2.0
// The size budget of the script-tag build (gzip -9 bytes): what a page on the JSON subprotocol
// downloads, which must not contain the MessagePack codec, and the MessagePack add-on fetched
// only by pages on that subprotocol. Built from the sources into a temporary directory.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { gzipSync } from 'node:zlib';

import { build } from '../build.mjs';

/**
 * Budgets in gzip bytes: 14.5 KiB for the page's script, measured 13,261 with esbuild 0.28.2
 * before structured reasons and compact lists (socket.io-client's size, 13 KiB, was the budget
 * then), 14,498 with them: compact lists cost about 1.1 KiB once and save about 4,900 bytes per
 * pushed list of 20 items (docs/benchmarks.md); the add-on measured 6,550, of which about 570
 * are the ISC notice it must carry.
 */
export const BUDGET = Object.freeze({ script: 14_848, scriptMsgpack: 7_000 });
/** A string only the MessagePack library holds: its decoder's error for an unknown type byte. */
const MSGPACK_MARK = 'Unrecognized type byte';

test('the script-tag build keeps its gzip budget and leaves MessagePack to the add-on', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'rankcast-sdk-size-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const out = await build({ outdir: dir });
  const gz = (f) => gzipSync(readFileSync(f), { level: 9 }).length;
  const sizes = { script: gz(out.script), scriptMsgpack: gz(out.scriptMsgpack), cjs: gz(out.cjs) };
  t.diagnostic(`gzip bytes: rankcast.min.js ${sizes.script} (budget ${BUDGET.script}), rankcast-msgpack.min.js ${sizes.scriptMsgpack} (budget ${BUDGET.scriptMsgpack}), rankcast.cjs ${sizes.cjs}`);
  assert.ok(!readFileSync(out.script, 'utf8').includes(MSGPACK_MARK), 'rankcast.min.js contains the MessagePack codec');
  assert.ok(!readFileSync(out.cjs, 'utf8').includes(MSGPACK_MARK), 'rankcast.cjs bundles the MessagePack codec (it must require it)');
  assert.ok(readFileSync(out.scriptMsgpack, 'utf8').includes(MSGPACK_MARK), 'the add-on holds the codec');
  assert.ok(sizes.script <= BUDGET.script, `rankcast.min.js is ${sizes.script} gzip bytes, over its budget of ${BUDGET.script}`);
  assert.ok(sizes.scriptMsgpack <= BUDGET.scriptMsgpack, `rankcast-msgpack.min.js is ${sizes.scriptMsgpack} gzip bytes, over its budget of ${BUDGET.scriptMsgpack}`);
});
