// SPDX-License-Identifier: Apache-2.0
// The demo pages' JavaScript type-checks (strict, JSDoc types, `// @ts-check`) against the
// SDK's shipped index.d.ts: the pages use the SDK's API as it is typed. The compiler is the
// SDK's own dev dependency (client-sdk/js/node_modules/typescript).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const tsc = join(here, '../../client-sdk/js/node_modules/typescript/bin/tsc');
const skip = existsSync(tsc) ? false : `no TypeScript at ${tsc} (scripts/setup installs the SDK's packages)`;

test('web-demo/*.js type-check against client-sdk/js/index.d.ts', { skip, timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [tsc, '-p', join(here, 'tsconfig.web-demo.json')], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc found errors:\n${r.stdout}${r.stderr}`);
});
