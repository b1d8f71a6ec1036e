// SPDX-License-Identifier: Apache-2.0
// `npm pack` yields an installable package: the tarball holds the sources, the builds (dist/),
// types, README and LICENSE (no tests); it installs offline into an empty project (its one
// dependency from the npm cache), and that project uses it by name from CommonJS (`require`)
// and ESM (`import`) against the real rankcast binary — connect, hello, subscribe, a list — in
// both subprotocols, without loading MessagePack for JSON; its types compile for a TypeScript
// consumer of either kind there.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { RankcastProcess, freePort, missingBinaryReason } from '../test-support/rankcast-process.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const run = (args, cwd) => execFileSync(npm, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const serverSkip = missingBinaryReason();

/**
 * The consumer program, after its import line: JSON first (and whether MessagePack got loaded
 * by then, where the module system can tell), then MessagePack; prints one JSON line.
 * `loaded()` says whether @msgpack/msgpack has been loaded: from require's cache in CommonJS,
 * from a log written by a module resolve hook (ESM_HOOKS) in ESM.
 */
const consumerBody = (format) => `
const url = process.env.RANKCAST_URL;
const timer = setTimeout(() => { console.error('consumer timed out'); process.exit(2); }, 15000);
async function once(encoding) {
  const client = createClient({ url, WebSocket, encoding, user: 'pkg-${format}-' + encoding + '-' + process.pid, reconnect: { baseMs: 50, capMs: 200 } });
  const welcome = await new Promise((resolve, reject) => {
    const off = client.on('open', (w) => { off(); resolve(w); });
    client.on('closed', (c) => reject(new Error('closed: ' + JSON.stringify(c))));
  });
  const list = await new Promise((resolve) => client.subscribe('home', { k: 4 }, resolve));
  await client.close();
  return { encoding, user: welcome.user, surface: list.surface, items: list.items.length };
}
const json = await once('json');
const msgpackAfterJson = loaded();
const msgpack = await once('msgpack');
clearTimeout(timer);
console.log(JSON.stringify({ json, msgpackAfterJson, msgpack, msgpackAtEnd: loaded(), serverError: typeof ServerError }));
`;

const CJS = `const { createClient, ServerError } = require('@rankcast/client');
const WebSocket = require(process.env.WS_MODULE);
const loaded = () => Object.keys(require.cache).some((p) => p.includes('@msgpack'));
(async () => {${consumerBody('cjs')}})().catch((e) => { console.error(e); process.exit(1); });
`;
const ESM = `import { createClient, ServerError } from '@rankcast/client';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
const WebSocket = createRequire(import.meta.url)(process.env.WS_MODULE);
const loaded = () => existsSync(process.env.MSGPACK_LOG);
${consumerBody('esm')}`;
/** Run with --import: registers RESOLVE_LOG_HOOK (module hooks run on their own thread). */
const ESM_HOOKS = "import { register } from 'node:module';\nregister('./resolve-log-hook.mjs', import.meta.url);\n";
/** Logs every resolution of @msgpack/msgpack to $MSGPACK_LOG. */
const RESOLVE_LOG_HOOK = `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (specifier.startsWith('@msgpack/msgpack')) appendFileSync(process.env.MSGPACK_LOG, specifier + ' ');
  return next(specifier, context);
}
`;

describe('the npm package', { timeout: 240_000 }, () => {
  let work;
  let app;
  let packed;
  before(() => {
    work = mkdtempSync(join(tmpdir(), 'rankcast-sdk-pack-'));
    // `npm pack` runs the build first (prepack), so the tarball has dist/ however fresh the tree.
    [packed] = JSON.parse(run(['pack', '--json', '--pack-destination', work], root));
    app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    // Offline: the tarball itself, and its dependency from the npm cache (scripts/setup's `npm ci` filled it).
    run(['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', join(work, packed.filename)], app);
  });
  after(() => work && rmSync(work, { recursive: true, force: true }));

  test('the tarball has the sources, the builds, the types and the license, and nothing else', () => {
    const files = packed.files.map((f) => f.path).sort();
    const required = ['package.json', 'README.md', 'LICENSE', 'index.d.ts', 'src/index.js', 'src/codec.js', 'dist/rankcast.cjs', 'dist/index.d.cts', 'dist/rankcast.min.js', 'dist/rankcast-msgpack.min.js'];
    for (const f of required) assert.ok(files.includes(f), `${f} is in the tarball (${files.join(', ')})`);
    assert.ok(files.every((f) => required.includes(f) || /^src\/[a-z-]+\.js$/.test(f)), `unexpected files: ${files}`);
    const installed = JSON.parse(readFileSync(join(app, 'node_modules/@rankcast/client/package.json'), 'utf8'));
    assert.equal(installed.license, 'Apache-2.0');
    assert.notEqual(installed.private, true, 'the package is not private');
    assert.match(readFileSync(join(app, 'node_modules/@rankcast/client/LICENSE'), 'utf8'), /Apache License\s+Version 2\.0/);
  });

  describe('against the real server', { skip: serverSkip ?? false }, () => {
    let rc;
    before(async () => {
      rc = await new RankcastProcess(await freePort()).start();
    });
    after(() => rc?.stop('SIGTERM'));

    for (const [format, file, source] of [['CommonJS', 'check.cjs', CJS], ['ESM', 'check.mjs', ESM]]) {
      test(`${format}: connect, hello, subscribe and a list, in JSON and MessagePack`, () => {
        writeFileSync(join(app, file), source);
        writeFileSync(join(app, 'hooks.mjs'), ESM_HOOKS);
        writeFileSync(join(app, 'resolve-log-hook.mjs'), RESOLVE_LOG_HOOK);
        const log = join(work, `msgpack-${file}.log`);
        const r = spawnSync(process.execPath, [...(format === 'ESM' ? ['--import', './hooks.mjs'] : []), file], {
          cwd: app,
          encoding: 'utf8',
          env: { ...process.env, RANKCAST_URL: rc.url, WS_MODULE: join(root, 'node_modules/ws'), MSGPACK_LOG: log },
        });
        assert.equal(r.status, 0, `${file} failed:\n${r.stdout}${r.stderr}`);
        const out = JSON.parse(r.stdout);
        for (const enc of ['json', 'msgpack']) {
          assert.equal(out[enc].surface, 'home');
          assert.ok(out[enc].items > 0, `a ${enc} list has items`);
          assert.match(out[enc].user, new RegExp(`^pkg-${format === 'ESM' ? 'esm' : 'cjs'}-${enc}-`));
        }
        assert.equal(out.serverError, 'function');
        // The lazy codec: a JSON client never loads @msgpack/msgpack; a msgpack one does.
        assert.equal(out.msgpackAfterJson, false, 'MessagePack was loaded by a JSON-only client');
        assert.equal(out.msgpackAtEnd, true);
      });
    }
  });

  test('its types compile for a strict TypeScript consumer, ESM (.ts) and CommonJS (.cts)', (t) => {
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    if (!existsSync(tsc)) {
      t.skip('typescript not installed');
      return;
    }
    copyFileSync(join(root, 'test-support/types/consumer.ts'), join(app, 'consumer.mts'));
    copyFileSync(join(root, 'test-support/types/consumer.ts'), join(app, 'consumer.cts'));
    writeFileSync(
      join(app, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, noEmit: true, target: 'es2022', lib: ['es2022'], types: [], module: 'nodenext', moduleResolution: 'nodenext' },
        files: ['consumer.mts', 'consumer.cts'],
      }),
    );
    const r = spawnSync(process.execPath, [tsc, '-p', app, '--traceResolution'], { encoding: 'utf8' });
    assert.equal(r.status, 0, `tsc on the installed package failed:\n${r.stdout.split('\n').filter((l) => /error/.test(l)).join('\n')}${r.stderr}`);
    // Each consumer got the declarations of its own module system.
    assert.match(r.stdout, /'@rankcast\/client' was successfully resolved to '[^']*\/dist\/index\.d\.cts'/);
    assert.match(r.stdout, /'@rankcast\/client' was successfully resolved to '[^']*\/index\.d\.ts'/);
  });
});
