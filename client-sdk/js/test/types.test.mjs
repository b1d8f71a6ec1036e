// SPDX-License-Identifier: Apache-2.0
// The shipped types: the sources type-check (tsconfig.json: checkJs, strict) and index.d.ts is
// checked against them (test-support/types/published-vs-source.ts), a check seen to fail when
// the two drift apart; test-support/types/consumer.ts must compile under strict settings with no
// DOM or Node types (TypeScript, a pinned devDependency, resolving the package by its own name),
// and index.d.ts must declare exactly what src/index.js exports.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import * as sdk from '../src/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const tsc = join(root, 'node_modules/typescript/bin/tsc');
const noTsc = existsSync(tsc) ? false : 'typescript is not installed (npm ci)';

/** Runs tsc on a project; fails with its diagnostics. */
function typecheck(project) {
  const r = spawnSync(process.execPath, [tsc, '-p', project], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc -p ${project} failed:\n${r.stdout}${r.stderr}`);
}

test('index.d.ts declares exactly the runtime exports', () => {
  const dts = readFileSync(join(root, 'index.d.ts'), 'utf8');
  const code = dts.replace(/\/\*[\s\S]*?\*\/|\/\/.*/g, '');
  const declared = [...code.matchAll(/^export declare (?:const|function|class) (\w+)/gm)].map((m) => m[1]).sort();
  assert.deepEqual(declared, Object.keys(sdk).sort());
  assert.doesNotMatch(code, /\bany\b/, 'no `any` in the public types');
});

test('the sources type-check with index.d.ts (tsc -p tsconfig.json)', { skip: noTsc }, () => {
  typecheck(join(root, 'tsconfig.json'));
});

/** Replaces `from` (which must be there) by `to` in a file. */
function edit(file, from, to) {
  const text = readFileSync(file, 'utf8');
  assert.ok(text.includes(from), `${file} no longer contains ${JSON.stringify(from)}: update this test`);
  writeFileSync(file, text.replace(from, to));
}

test('the check of index.d.ts against the sources fails when they drift apart', { skip: noTsc }, (t) => {
  const work = mkdtempSync(join(tmpdir(), 'rankcast-sdk-drift-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  for (const path of ['package.json', 'tsconfig.json', 'index.d.ts', 'src', 'test-support/types/published-vs-source.ts']) {
    cpSync(join(root, path), join(work, path), { recursive: true });
  }
  symlinkSync(join(root, 'node_modules'), join(work, 'node_modules'), 'dir');
  // One drift on each side, both invisible to the rest of the type check: an optional field of
  // subscribe()'s options renamed in the declaration, a parameter added to a method in the source.
  edit(join(work, 'index.d.ts'), '  priceMax?: number;', '  maxPrice?: number;');
  edit(join(work, 'src/client.js'), '  trackClick(list, item) {', '  trackClick(list, item, /** @type {number} */ at) {');
  const r = spawnSync(process.execPath, [tsc, '-p', '.'], { cwd: work, encoding: 'utf8' });
  const out = `${r.stdout}${r.stderr}`;
  assert.notEqual(r.status, 0, 'tsc passed despite the drift');
  const files = new Set([...out.matchAll(/^(\S+?)\(\d+,\d+\): error/gm)].map((m) => m[1]));
  assert.deepEqual([...files], ['test-support/types/published-vs-source.ts'], `errors elsewhere:\n${out}`);
  assert.match(out, /"priceMax"/, out);
  assert.match(out, /"trackClick"/, out);
});

test('a strict TypeScript consumer compiles against index.d.ts', { skip: noTsc }, () => {
  typecheck(join(root, 'test-support/types/tsconfig.json'));
});
