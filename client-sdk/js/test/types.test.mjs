// The shipped types: the sources type-check (tsconfig.json: checkJs, strict) together with
// index.d.ts; test-support/types/consumer.ts must compile under strict settings with no DOM or
// Node types (TypeScript, a pinned devDependency, resolving the package by its own name), and
// index.d.ts must declare exactly what src/index.js exports.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
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

test('a strict TypeScript consumer compiles against index.d.ts', { skip: noTsc }, () => {
  typecheck(join(root, 'test-support/types/tsconfig.json'));
});
