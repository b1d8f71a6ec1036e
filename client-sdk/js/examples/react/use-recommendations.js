// SPDX-License-Identifier: Apache-2.0
// useRecommendations: the live list of one surface from an @rankcast/client client, as React
// state. Plain JavaScript (no JSX), React 18 or 19; copy it into an app. Tested in Chromium
// against the real server by test/react.test.mjs.

import { useCallback, useEffect, useState, useSyncExternalStore } from 'react';

/**
 * @typedef {import('@rankcast/client').RankcastClient} RankcastClient
 * @typedef {import('@rankcast/client').RecsList} RecsList
 * @typedef {import('@rankcast/client').RecItem} RecItem
 * @typedef {import('@rankcast/client').SubscribeOptions} SubscribeOptions
 * @typedef {import('@rankcast/client').EventKind} EventKind
 * @typedef {'loading' | 'live' | 'reconnecting' | 'closed' | 'error'} RecommendationsStatus
 */

/** @type {RecItem[]} one empty array, so `items` keeps its identity while there is no list */
const NO_ITEMS = Object.freeze([]);

/**
 * The current list of `surface` and what the UI needs around it. Subscribes on mount, when
 * `client`, `surface` or the *value* of `options` changes (an inline `{k: 8}` is fine), and
 * unsubscribes on unmount.
 *
 * status: 'loading' (no list yet for this surface and options), 'live' (a list from an open
 * connection), 'reconnecting' (the last list, while the client reconnects: it resubscribes by
 * itself and the list comes back), 'closed' (the client was closed), 'error' (subscribe()
 * refused the options, or the server refused the surface: see `error`).
 *
 * @param {RankcastClient} client  one client for the whole app, created outside components
 * @param {string} surface
 * @param {SubscribeOptions} [options]
 * @returns {{list: RecsList | null, items: RecItem[], status: RecommendationsStatus,
 *   error: Error | null, track: (item: string | RecItem, kind?: EventKind) => Promise<string>}}
 */
export function useRecommendations(client, surface, options) {
  const optionsKey = JSON.stringify(options ?? {});
  // What the held list belongs to: a list of another surface or other options is never shown.
  const key = `${surface}\n${optionsKey}`;
  const [held, setHeld] = useState(
    /** @type {{key: string | null, list: RecsList | null, error: Error | null}} */ ({ key: null, list: null, error: null }),
  );

  useEffect(() => {
    /** @type {import('@rankcast/client').Subscription} */
    let handle;
    try {
      handle = client.subscribe(surface, JSON.parse(optionsKey), (list) => setHeld({ key, list, error: null }));
    } catch (error) {
      setHeld({ key, list: null, error: /** @type {Error} */ (error) });
      return undefined;
    }
    const offError = client.on('error', (err) => {
      // The server refused this subscription (e.g. 4040 unknown_surface).
      if ('about' in err && err.about === 'subscribe' && err.surface === surface) setHeld({ key, list: null, error: err });
    });
    return () => {
      offError();
      // Let go a microtask later. StrictMode's second effect (and a re-mount in the same
      // commit) subscribes the same surface first, so the SDK just moves from one handle to
      // the other: no unsubscribe/subscribe round trip, and never two handles left behind.
      queueMicrotask(() => handle.unsubscribe());
    };
  }, [client, surface, optionsKey, key]);

  const connection = useSyncExternalStore(
    useCallback((/** @type {() => void} */ onChange) => client.on('state', onChange), [client]),
    () => client.state,
  );

  const current = held.key === key ? held : { list: null, error: null };
  /** @type {RecommendationsStatus} */
  let status;
  if (current.error) status = 'error';
  else if (connection === 'closed') status = 'closed';
  else if (!current.list) status = 'loading';
  else status = connection === 'open' ? 'live' : 'reconnecting';

  // A click (or any kind) on an item of this surface: the event names the surface, so the
  // server knows which list it came from. Resolves with the event id once acknowledged, after
  // every list the event changed was delivered (and so rendered).
  const track = useCallback(
    (/** @type {string | RecItem} */ item, /** @type {EventKind} */ kind = 'click') =>
      client.track({ kind, item: typeof item === 'string' ? item : item.item, surface }),
    [client, surface],
  );

  return { list: current.list, items: current.list?.items ?? NO_ITEMS, status, error: current.error, track };
}
