// SPDX-License-Identifier: Apache-2.0
// Builds dist/ from src/ with esbuild: the CommonJS bundle (`require`), the minified script-tag
// bundle (global `Rankcast`, JSON only until MessagePack is needed) and its MessagePack add-on
// (global `RankcastMsgpack`, fetched on first use from beside the main script). The ESM
// package is src/ itself. `npm pack` runs this first (prepack); tests call build() directly.

import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import * as esbuild from 'esbuild';

const root = dirname(fileURLToPath(import.meta.url));
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const msgpackDir = join(root, 'node_modules/@msgpack/msgpack');
const msgpackVersion = JSON.parse(readFileSync(join(msgpackDir, 'package.json'), 'utf8')).version;
/** ISC asks for its notice in every copy: the add-on bundles the library, so it carries it. */
const msgpackNotice = readFileSync(join(msgpackDir, 'LICENSE'), 'utf8').trim().replaceAll('*/', '* /');

/** The files build() writes into outdir. */
export const OUTPUTS = Object.freeze({
  cjs: 'rankcast.cjs',
  cjsTypes: 'index.d.cts',
  script: 'rankcast.min.js',
  scriptMsgpack: 'rankcast-msgpack.min.js',
});

/** Replaces src/msgpack-loader.js with a build's own way of finding the codec. */
const loader = (file) => ({
  name: 'msgpack-loader',
  setup(b) {
    b.onResolve({ filter: /\/msgpack-loader\.js$/ }, () => ({ path: join(root, 'bundle', file) }));
  },
});

const common = {
  absWorkingDir: root,
  bundle: true,
  target: 'es2022',
  legalComments: 'none',
  logLevel: 'warning',
  banner: { js: `/* @rankcast/client ${version} | Apache-2.0 */` },
};

/**
 * Writes the builds into `outdir` (default dist/) and returns their paths.
 * @param {{outdir?: string}} [o]
 */
export async function build({ outdir = join(root, 'dist') } = {}) {
  mkdirSync(outdir, { recursive: true });
  const out = Object.fromEntries(Object.entries(OUTPUTS).map(([k, f]) => [k, join(outdir, f)]));
  await Promise.all([
    // CommonJS for Node and bundlers that want `require`: @msgpack/msgpack stays an external
    // dependency, required lazily on the first msgpack connection.
    esbuild.build({
      ...common,
      entryPoints: ['src/index.js'],
      outfile: out.cjs,
      format: 'cjs',
      platform: 'neutral',
      external: ['@msgpack/msgpack'],
      plugins: [loader('msgpack-require.js')],
    }),
    // <script src=".../rankcast.min.js">: window.Rankcast, without MessagePack.
    esbuild.build({
      ...common,
      entryPoints: ['src/index.js'],
      outfile: out.script,
      format: 'iife',
      globalName: 'Rankcast',
      platform: 'browser',
      minify: true,
      plugins: [loader('msgpack-script.js')],
    }),
    // The MessagePack add-on: window.RankcastMsgpack = {encode, decode}.
    esbuild.build({
      ...common,
      entryPoints: ['bundle/msgpack-global.js'],
      outfile: out.scriptMsgpack,
      banner: { js: `/* @rankcast/client ${version} MessagePack add-on | Apache-2.0\n * includes @msgpack/msgpack ${msgpackVersion} (ISC):\n${msgpackNotice}\n */` },
      format: 'iife',
      platform: 'browser',
      minify: true,
    }),
  ]);
  copyFileSync(join(root, 'index.d.ts'), out.cjsTypes);
  return out;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = await build();
  for (const f of Object.values(out)) process.stderr.write(`${f}\n`);
}
