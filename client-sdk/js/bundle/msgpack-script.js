// SPDX-License-Identifier: Apache-2.0
// The script-tag build's src/msgpack-loader.js: the codec is the global RankcastMsgpack, from
// rankcast-msgpack.min.js. A page may load that script itself; otherwise it is added on the
// first msgpack connection, from the directory rankcast.min.js was loaded from.

/** The URL of the running script, read while it runs (document.currentScript is null later). */
const scriptUrl = typeof document !== 'undefined' && document.currentScript instanceof HTMLScriptElement ? document.currentScript.src : '';

/** @returns {Promise<{encode: (value: unknown) => Uint8Array, decode: (bytes: Uint8Array) => unknown}>} */
export function importMsgpack() {
  const present = () => globalThis.RankcastMsgpack;
  if (present()) return Promise.resolve(present());
  return new Promise((resolve, reject) => {
    if (typeof document === 'undefined') throw new Error('no RankcastMsgpack global and no document to load rankcast-msgpack.min.js into');
    const s = document.createElement('script');
    s.src = new URL('rankcast-msgpack.min.js', scriptUrl || document.baseURI).href;
    s.onload = () => (present() ? resolve(present()) : reject(new Error(`${s.src} did not define RankcastMsgpack`)));
    s.onerror = () => reject(new Error(`cannot load ${s.src}`));
    document.head.appendChild(s);
  });
}
