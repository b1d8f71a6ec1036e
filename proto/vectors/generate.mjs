// SPDX-License-Identifier: Apache-2.0
// Writes vectors.json from cases.mjs: the JSON text of each case and its MessagePack form made by
// the @msgpack/msgpack reference encoder (never by the C codec the vectors test).
// Run from anywhere: `node proto/vectors/generate.mjs` (needs `npm ci` in tests/ first). Tests
// import buildVectors() to check that vectors.json is what cases.mjs says.
// The output is deterministic, so a diff of vectors.json shows exactly what a case change did.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import { cases } from './cases.mjs';

const here = dirname(fileURLToPath(import.meta.url));
// The encoder is a devDependency of tests/, pinned in its lockfile.
const require = createRequire(join(here, '../../tests/package.json'));
const { encode, decode } = require('@msgpack/msgpack');

const hex = (bytes) => Buffer.from(bytes).toString('hex');

/** Decodes `hexText` as exactly one MessagePack value, or throws. */
function decodeHex(hexText) {
  return decode(Buffer.from(hexText, 'hex'));
}

/** Whether `hexText` is one complete MessagePack value with nothing after it. */
function decodesCleanly(hexText) {
  try {
    decodeHex(hexText);
    return true;
  } catch {
    return false;
  }
}

function jsonText(c) {
  if (c.json !== undefined) return c.json;
  if ('value' in c) return JSON.stringify(c.value);
  return undefined;
}

function msgpackHex(c) {
  if (c.msgpack_hex !== undefined) {
    assert.match(c.msgpack_hex, /^([0-9a-f]{2})*$/, `${c.name}: msgpack_hex must be lower-case hex`);
    return c.msgpack_hex;
  }
  if (c.msgpack === false) return undefined;
  if ('value' in c) return hex(encode(c.value));
  // Raw JSON text with no hand-written MessagePack: encode what it parses to. Text that does
  // not parse must say `msgpack: false`, so a typo cannot silently drop the MessagePack form.
  return hex(encode(JSON.parse(c.json)));
}

/** Checks what the page promises of a case, so a wrong hand-written buffer fails here. */
function checkCase(c, out) {
  assert.ok(out.json !== undefined || out.msgpack_hex !== undefined, `${c.name}: no encoding`);
  if (c.decodes === false) {
    assert.ok(!decodesCleanly(out.msgpack_hex), `${c.name}: expected a buffer that does not decode`);
  }
  if (out.error === undefined) {
    // A valid message must decode in both encodings to the same value.
    const fromJson = out.json !== undefined ? JSON.parse(out.json) : undefined;
    const fromMsgpack = out.msgpack_hex !== undefined ? decodeHex(out.msgpack_hex) : undefined;
    if (fromJson !== undefined && fromMsgpack !== undefined) {
      assert.deepStrictEqual(fromMsgpack, fromJson, `${c.name}: JSON and MessagePack differ`);
    }
    const msg = fromJson ?? fromMsgpack;
    assert.equal(typeof msg.type, 'string', `${c.name}: a valid message needs a type`);
  } else {
    assert.ok(Number.isInteger(out.error) && out.error >= 4000 && out.error < 5000, `${c.name}: bad error code`);
  }
}

/** The vectors for `cases`, checked; what vectors.json holds. */
export function buildVectors() {
  const names = new Set();
  return cases.map((c) => buildCase(c, names));
}

function buildCase(c, names) {
  assert.ok(typeof c.name === 'string' && c.name.length > 0, 'every case needs a name');
  assert.ok(!names.has(c.name), `duplicate case name: ${c.name}`);
  names.add(c.name);
  assert.ok(c.dir === 'c2s' || c.dir === 's2c', `${c.name}: dir must be c2s or s2c`);
  assert.ok(c.dir === 'c2s' || c.error === undefined, `${c.name}: s2c cases carry no error`);

  // Key order is fixed here so the file is stable whatever order a case was written in.
  const out = { name: c.name, dir: c.dir };
  const json = jsonText(c);
  if (json !== undefined) out.json = json;
  const mp = msgpackHex(c);
  if (mp !== undefined) out.msgpack_hex = mp;
  if (c.error !== undefined) out.error = c.error;
  checkCase(c, out);
  return out;
}

/** The text of vectors.json: pretty-printed with two spaces, newline at the end. */
export const vectorsText = (vectors) => `${JSON.stringify(vectors, null, 2)}\n`;

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const vectors = buildVectors();
  const target = join(here, 'vectors.json');
  writeFileSync(target, vectorsText(vectors));
  const count = (pred) => vectors.filter(pred).length;
  console.log(
    `wrote ${target}: ${vectors.length} cases ` +
      `(c2s valid ${count((v) => v.dir === 'c2s' && v.error === undefined)}, ` +
      `c2s invalid ${count((v) => v.error !== undefined)}, s2c ${count((v) => v.dir === 's2c')})`,
  );
}
