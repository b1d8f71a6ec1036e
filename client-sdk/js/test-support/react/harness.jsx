// SPDX-License-Identifier: Apache-2.0
// Drives the React example (examples/react/) for react.test.mjs: window.harness mounts <Rail>
// (in StrictMode or not), changes its props, unmounts it, and reports what the page shows next to
// what went over the wire (a recording WebSocket, JSON subprotocol) and the subscription handles
// the hook holds (client.subscribe is wrapped to keep every handle it returns).

import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';

import { createClient } from '../../src/index.js';
import { Rail } from '../../examples/react/Rail.jsx';

const sent = [];
const received = [];

class RecordingWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols);
    this.addEventListener('message', (e) => received.push(JSON.parse(e.data)));
  }

  send(data) {
    sent.push(JSON.parse(data));
    super.send(data);
  }
}

const user = new URLSearchParams(location.search).get('user') ?? undefined;
const client = createClient({ url: '/ws', user, encoding: 'json', device: 'desktop', storage: null, WebSocket: RecordingWebSocket });

const handles = [];
const subscribe = client.subscribe.bind(client);
client.subscribe = (...args) => {
  const handle = subscribe(...args);
  handles.push(handle);
  return handle;
};

// Every state the rail went through, as the DOM showed it after each change.
const shown = [];
const railState = () => {
  const rail = document.querySelector('.rail');
  return {
    mounted: rail !== null,
    surface: rail?.dataset.surface ?? null,
    status: rail?.dataset.status ?? null,
    version: rail?.dataset.version ? Number(rail.dataset.version) : null,
    items: [...document.querySelectorAll('.rail li')].map((li) => li.dataset.item),
  };
};
new MutationObserver(() => shown.push(railState())).observe(document.getElementById('root'), {
  subtree: true,
  childList: true,
  attributes: true,
  characterData: true,
});

let root = null;
let props = null;

function render() {
  const rail = <Rail client={client} surface={props.surface} k={props.k} />;
  root.render(props.strict ? <StrictMode>{rail}</StrictMode> : rail);
}

window.harness = {
  client,
  /** More clients of the page's user (the server's limits are per user), on the plain WebSocket. */
  otherClient: () => createClient({ url: '/ws', user: client.user, encoding: 'json', storage: null }),
  /** @param {{surface: string, k?: number, strict?: boolean}} p */
  mount(p) {
    props = { k: 4, strict: false, ...p };
    root = createRoot(document.getElementById('root'));
    render();
    return handles.length;
  },
  /** New props for the mounted rail (a re-render even when nothing changed). */
  update(p = {}) {
    props = { ...props, ...p };
    render();
  },
  unmount() {
    root.unmount();
    root = null;
  },
  /** Clicks the i-th item's button; resolves once the click's event is acknowledged. */
  async click(i) {
    const before = sent.length;
    document.querySelectorAll('.rail li button')[i].click();
    // The event goes out after the SDK's batch window, alone or in a batch.
    const deadline = Date.now() + 5000;
    let id;
    while (!(id = sent.slice(before).flatMap((m) => (m.type === 'events' ? m.events : [m])).find((m) => m.kind === 'click')?.id)) {
      if (Date.now() > deadline) throw new Error('the click was not sent');
      await new Promise((r) => setTimeout(r, 5));
    }
    while (!received.some((m) => m.type === 'ack' && (m.ids ?? [m.id]).includes(id))) {
      if (Date.now() > deadline) throw new Error('the click was not acknowledged');
      await new Promise((r) => setTimeout(r, 5));
    }
    return id;
  },
  /** What the page shows (and showed), what went over the wire, and the handles held. */
  snapshot() {
    return {
      ...railState(),
      shown,
      handlesCreated: handles.length,
      activeHandles: handles.filter((h) => h.active).map((h) => h.surface),
      sdkSurfaces: client.stats().subscriptions,
      sent: sent.filter((m) => m.type === 'subscribe' || m.type === 'unsubscribe').map((m) => `${m.type} ${m.surface}`),
      lists: received.filter((m) => m.type === 'recs').map((m) => ({ surface: m.surface, version: m.version, cause: m.cause ?? null, items: m.items.map((it) => it.item) })),
    };
  },
};
