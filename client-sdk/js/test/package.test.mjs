// SPDX-License-Identifier: Apache-2.0
// `npm pack` yields an installable package: the tarball holds the sources, types, README and LICENSE
// (no tests), installs into an empty project with its one dependency, imports by name, encodes
// MessagePack through that dependency, and its types compile for a TypeScript consumer there.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (args, cwd) => execFileSync(npm, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

test('npm pack yields a package that installs, imports and type-checks', { timeout: 180_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'rankcast-sdk-pack-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));

  const [packed] = JSON.parse(run(['pack', '--json', '--pack-destination', work], root));
  const files = packed.files.map((f) => f.path).sort();
  for (const required of ['package.json', 'README.md', 'LICENSE', 'index.d.ts', 'src/index.js', 'src/client.js', 'src/codec.js']) {
    assert.ok(files.includes(required), `${required} is in the tarball (${files.join(', ')})`);
  }
  assert.ok(files.every((f) => ['package.json', 'README.md', 'LICENSE', 'index.d.ts'].includes(f) || /^src\/[a-z]+\.js$/.test(f)), `unexpected files: ${files}`);

  const app = join(work, 'app');
  execFileSync('mkdir', ['-p', app]);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
  run(['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', join(work, packed.filename)], app);
  // Publishable: a license an SPDX-aware tool reads, and not marked private.
  const installed = JSON.parse(readFileSync(join(app, 'node_modules/@rankcast/client/package.json'), 'utf8'));
  assert.equal(installed.license, 'Apache-2.0');
  assert.notEqual(installed.private, true, 'the package is not private');
  assert.match(readFileSync(join(app, 'node_modules/@rankcast/client/LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);

  writeFileSync(
    join(app, 'check.mjs'),
    `import { createClient, encodeMessage, decodeMessage, SUBPROTOCOLS, ServerError } from '@rankcast/client';
class NoSocket { constructor() { throw new Error('not used'); } }
const client = createClient({ url: 'ws://127.0.0.1:1/ws', WebSocket: NoSocket, autoConnect: false });
const bytes = encodeMessage({ type: 'ping', t: 1 }, 'msgpack');
const back = decodeMessage(bytes, 'msgpack');
console.log(JSON.stringify({ state: client.state, back, proto: SUBPROTOCOLS.msgpack, err: typeof ServerError }));
await client.close();
`,
  );
  const out = JSON.parse(execFileSync(process.execPath, ['check.mjs'], { cwd: app, encoding: 'utf8' }));
  assert.deepEqual(out, { state: 'closed', back: { type: 'ping', t: 1 }, proto: 'rankcast.v1.msgpack', err: 'function' });

  const tsc = join(root, 'node_modules/typescript/bin/tsc');
  if (!existsSync(tsc)) {
    t.diagnostic('typescript not installed: the type check of the installed package is skipped');
    return;
  }
  copyFileSync(join(root, 'test-support/types/consumer.ts'), join(app, 'consumer.ts'));
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: 'es2022', lib: ['es2022'], types: [], module: 'nodenext', moduleResolution: 'nodenext' },
      files: ['consumer.ts'],
    }),
  );
  const r = spawnSync(process.execPath, [tsc, '-p', app], { encoding: 'utf8' });
  assert.equal(r.status, 0, `tsc on the installed package failed:\n${r.stdout}${r.stderr}`);
});
