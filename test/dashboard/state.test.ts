/**
 * The dashboard's state from a real model (the Envoy tier's manifests through buildModel) and a
 * real MetricsStore fed the deltas sidecars would send: allowed edges, live edges and the denied
 * mark, split shares, visibility by namespace. The HTTP routes and their access check run on a
 * real admin server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { deniedCounts } from '../../src/dashboard/denials';
import { dashboardState } from '../../src/dashboard/state';
import { deltasOf } from '../../src/metrics/sink';
import { MetricsStore } from '../../src/metrics/store';
import { buildModel } from '../../src/smi/build';
import type { MeshModel } from '../../src/smi/model';
import type { ProxyStatus, TypeStatus } from '../../src/xds/proxy-state';
import {
  buyerToStore,
  STORE_SPLIT,
  TIER_ROUTES,
  type TierAddresses,
  tierWorkloads,
} from '../envoy/tier-fixture';
import { startTestAdmin, type TestAdmin } from './admin-fixture';

const A: TierAddresses = {
  pods: {
    buyer: '10.9.0.1',
    thief: '10.9.0.2',
    'store-v1': '10.9.0.3',
    'store-v2': '10.9.0.4',
    'web-0': '10.9.0.5',
    'web-1': '10.9.0.6',
    outside: '10.9.0.7',
  },
  services: { store: '10.9.1.1', 'store-v1': '10.9.1.2', 'store-v2': '10.9.1.3' },
};

function model(): MeshModel {
  const text = [tierWorkloads(A), TIER_ROUTES, buyerToStore(['open']), STORE_SPLIT].join('---\n');
  const objects = parseAllDocuments(text).map((d) => d.toJSON() as unknown);
  return buildModel(objects).model;
}

const NOW = 1_700_000_000_000;

/** What the sidecars would have streamed: buyer → store-v1 and the split, thief → store-v1. */
function store(): MetricsStore {
  const s = new MetricsStore();
  const at = NOW - 20_000;
  s.add({ kind: 'out', pod: 'shop/buyer', service: 'shop/store-v1' }, at, { success: 27, failure: 3 });
  s.add({ kind: 'apex', pod: 'shop/buyer', service: 'shop/store' }, at, { success: 40 });
  s.add({ kind: 'out', pod: 'shop/buyer', service: 'shop/store-v2' }, at, { success: 10 });
  s.add({ kind: 'out', pod: 'shop/thief', service: 'shop/store-v2' }, at, { success: 6 });
  return s;
}

describe('dashboard state', () => {
  const m = model();
  const base = {
    model: m,
    conditions: [],
    proxies: [],
    patches: [],
    groupsPatchedBy: () => [],
    store: store(),
    now: NOW,
  };

  it('draws allowed edges from TrafficTargets and live edges from the traffic, marking what no target allows', () => {
    const s = dashboardState({ ...base, visible: () => true });
    assert.deepEqual(
      s.allowed.map((e) => `${e.from} -> ${e.to} by ${e.by.join(',')}`),
      [
        'w:shop/buyer -> w:shop/store-v1 by shop/buyer-to-store,shop/buyer-to-store-tcp',
        'w:shop/buyer -> w:shop/store-v2 by shop/buyer-to-store,shop/buyer-to-store-tcp',
      ],
    );
    const v1 = s.live.find((e) => e.from === 'w:shop/buyer' && e.to === 'w:shop/store-v1');
    assert.ok(v1, JSON.stringify(s.live));
    assert.equal(v1.success, 0.9);
    assert.equal(v1.rps, 0.1, '30 calls over 5 minutes');
    assert.equal(v1.denied, false);
    const thief = s.live.find((e) => e.from === 'w:shop/thief');
    assert.ok(thief, JSON.stringify(s.live));
    assert.equal(thief.to, 'w:shop/store-v2');
    assert.equal(thief.denied, true, 'no TrafficTarget lets thief reach store');
  });

  it("puts each split backend's configured share beside the observed one", () => {
    const s = dashboardState({ ...base, visible: () => true });
    assert.equal(s.splits.length, 1);
    const split = s.splits[0]!;
    assert.equal(split.name, 'store-split');
    assert.deepEqual(
      split.backends.map((b) => [b.service, b.weight, b.configuredPercent]),
      [
        ['store-v1', 90, 90],
        ['store-v2', 10, 10],
      ],
    );
    for (const b of split.backends) assert.ok(b.observedPercent !== null, JSON.stringify(b));
    assert.equal(
      split.backends.reduce((a, b) => a + (b.observedPercent ?? 0), 0),
      100,
      'the observed shares add up',
    );
  });

  it("counts the refusals of the sidecars' RBAC filters per destination pod, in the window", () => {
    // As the sink stores them: one flush's refusals per message, from the stats Envoy streams.
    const store = new MetricsStore();
    const counter = (name: string, value: number) => ({ name, type: 0, metric: [{ counter: { value } }] });
    const flush = (pod: string, families: ReturnType<typeof counter>[], at: number): void => {
      for (const d of deltasOf(pod, { envoy_metrics: families })) store.add(d.key, at, d);
    };
    flush(
      'shop/store-v1',
      [
        counter('http.inbound_8080.rbac.denied', 4),
        counter('inbound_7070.rbac.denied', 1),
        counter('http.inbound_8080.rbac.shadow_denied', 9),
        counter('http.inbound_8080.rbac.allowed', 30),
      ],
      NOW - 400_000,
    );
    flush('shop/store-v1', [counter('http.inbound_8080.rbac.denied', 2)], NOW - 10_000);
    assert.deepEqual(
      [...deniedCounts(store, NOW, 300_000)],
      [['shop/store-v1', 2]],
      'the older 5 are outside 5 minutes',
    );
    assert.deepEqual(
      [...deniedCounts(store, NOW, 600_000)],
      [['shop/store-v1', 7]],
      'shadow and allowed are not refusals',
    );
    const s = dashboardState({ ...base, denied: deniedCounts(store, NOW, 300_000), visible: () => true });
    assert.equal(s.nodes.find((n) => n.id === 'w:shop/store-v1')?.denied, 2);
    assert.equal(s.nodes.find((n) => n.id === 'w:shop/store-v2')?.denied, 0);
  });

  it('shows each proxy in sync, behind, or with the NACK in its own words', () => {
    const status = (id: string, lds: Partial<TypeStatus>): ProxyStatus => ({
      streamId: id.length,
      node: { id, cluster: '', metadata: {}, userAgent: 'envoy' },
      group: `envoy/Pod/${id}`,
      identity: undefined,
      mode: 'sotw',
      peer: '10.9.0.1:5000',
      connectedAt: new Date(NOW),
      types: { lds: { subscribed: '*', awaiting: false, acks: 1, nacks: 0, ...lds } },
    });
    const nack = {
      proxy: 'shop/store-v2',
      group: 'envoy/Pod/shop/store-v2',
      typeUrl: 'type.googleapis.com/envoy.config.listener.v3.Listener' as const,
      version: 'v2',
      nonce: '2',
      resourceNames: [],
      code: 3,
      message: 'Invalid path: /x',
      at: new Date(NOW),
    };
    const s = dashboardState({
      ...base,
      proxies: [
        status('shop/buyer', { sentVersion: 'v1', ackedVersion: 'v1' }),
        status('shop/store-v1', { sentVersion: 'v2', ackedVersion: 'v1', awaiting: true }),
        status('shop/store-v2', { sentVersion: 'v2', ackedVersion: 'v1', nacks: 1, lastNack: nack }),
      ],
      visible: () => true,
    });
    assert.deepEqual(
      s.proxies.map((p) => [p.id, p.synced, p.types[0]?.nack ?? null]),
      [
        ['shop/buyer', true, null],
        ['shop/store-v1', false, null],
        ['shop/store-v2', false, 'Invalid path: /x'],
      ],
    );
  });

  it('shows nothing of a namespace the caller may not read', () => {
    const s = dashboardState({ ...base, visible: (ns) => ns === 'elsewhere' });
    assert.deepEqual([s.nodes.length, s.allowed.length, s.live.length, s.splits.length], [0, 0, 0, 0]);
  });
});

describe('dashboard routes', () => {
  let admin: TestAdmin;
  let url: string;
  before(async () => {
    admin = await startTestAdmin({
      // As in a cluster: only a token the API server vouches for, and only its namespaces.
      debugAccess: async (auth) =>
        auth === 'Bearer shop-reader'
          ? { allowed: true, user: 'reader', namespaces: new Set(['shop']) }
          : { allowed: false, status: 401, reason: 'a bearer token is needed' },
      dashboard: {
        model: () => model(),
        patches: () => [],
        groupsPatchedBy: () => [],
        store: store(),
      },
    });
    url = admin.url;
  });
  after(() => admin.stop());

  it('refuses the page and its data without a token the access check accepts', async () => {
    for (const path of [
      '/dashboard/',
      '/dashboard/dashboard.js',
      '/dashboard/api/state',
      '/dashboard/api/events',
    ])
      assert.equal((await fetch(`${url}${path}`)).status, 401, path);
  });

  it('answers state and explain to a caller who may read the namespace, and is read-only', async () => {
    const auth = { authorization: 'Bearer shop-reader' };
    const state = (await (await fetch(`${url}/dashboard/api/state`, { headers: auth })).json()) as {
      nodes: unknown[];
    };
    assert.ok(state.nodes.length > 0);
    const ok = await fetch(
      `${url}/dashboard/api/explain?from=shop/buyer&to=shop/store&port=8080&path=/open`,
      {
        headers: auth,
      },
    );
    assert.equal(ok.status, 200);
    assert.equal(((await ok.json()) as { allowed: boolean }).allowed, true);
    const other = await fetch(`${url}/dashboard/api/explain?from=kube-system/x&to=shop/store&port=8080`, {
      headers: auth,
    });
    assert.equal(other.status, 403, 'a namespace the caller may not read');
    const bad = await fetch(`${url}/dashboard/api/explain?from=buyer&to=shop/store`, { headers: auth });
    assert.equal(bad.status, 400);
    const post = await fetch(`${url}/dashboard/api/state`, { method: 'POST', headers: auth });
    assert.equal(post.status, 404, 'no route changes anything');
  });

  it('streams the state as Server-Sent Events', async () => {
    const res = await fetch(`${url}/dashboard/api/events`, {
      headers: { authorization: 'Bearer shop-reader' },
    });
    assert.equal(res.headers.get('content-type'), 'text/event-stream');
    const reader = res.body!.getReader();
    let text = '';
    while (!text.includes('\n\n')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await reader.cancel();
    assert.match(text, /^event: state\ndata: \{/);
  });
});
