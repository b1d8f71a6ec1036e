// SPDX-License-Identifier: Apache-2.0
// A recommendation rail built on useRecommendations: the list of one surface, its status,
// impressions reported once per list version, a click tracked with the surface it came from.

import { useEffect } from 'react';

import { useRecommendations } from './use-recommendations.js';

/**
 * @param {{client: import('@rankcast/client').RankcastClient, surface: string, k?: number}} props
 */
export function Rail({ client, surface, k = 4 }) {
  const { list, items, status, error, track } = useRecommendations(client, surface, { k });

  // Impressions of what is on screen; the SDK reports each item once per list version, so
  // StrictMode's second run of this effect sends nothing more.
  useEffect(() => {
    if (list) client.trackImpressions(list).catch(() => {});
  }, [client, list]);

  return (
    <section className="rail" data-surface={surface} data-status={status} data-version={list?.version ?? ''}>
      <p role="status">{status === 'error' ? `Recommendations unavailable: ${error?.message}` : status}</p>
      <ul>
        {items.map((it) => (
          <li key={it.item} data-item={it.item}>
            <button type="button" onClick={() => track(it)}>
              {it.name ?? it.item}
            </button>{' '}
            <small>{it.why}</small>
          </li>
        ))}
      </ul>
    </section>
  );
}
