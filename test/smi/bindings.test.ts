import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AccessModel, buildModel, type MeshModel, ModelBuilder } from '../../src/smi';
import { translateProxy } from '../../src/translate';
import { binding, ib, pod, type Raw, routeGroup, sa, service, shuffled, target } from './helpers';

const v4 = { version: 'v1alpha4' };
const rules = [{ kind: 'HTTPRouteGroup', name: 'routes' }];
const id = (sa: string, ns = 'default'): string => `spiffe://cluster.local/ns/${ns}/sa/${sa}`;

/** A mesh: `api` (two pods, ServiceAccounts api and api-canary) called by buyer; thief is bound by nothing. */
const mesh: Raw[] = [
  pod('api-1', { ip: '10.0.0.1', labels: { app: 'api' }, sa: 'api' }),
  pod('api-2', { ip: '10.0.0.2', labels: { app: 'api', track: 'canary' }, sa: 'api-canary' }),
  pod('buyer', { ip: '10.0.0.3' }),
  pod('thief', { ip: '10.0.0.4' }),
  service('api', { clusterIP: '10.96.0.1', ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
  routeGroup('routes', [{ name: 'get', pathRegex: '/books', methods: ['GET'] }]),
  binding('api', { podLabelSelectors: [{ matchLabels: { app: 'api' } }] }),
  binding('buyers', {
    podLabelSelectors: [{ matchLabels: { app: 'buyer' } }],
    spiffeIdentities: ['spiffe://partner.example/billing'],
  }),
  target('api', ib('api'), [ib('buyers')], rules, v4),
];

/** Every `principal_name.exact` in a proxy's resources: who its RBAC lets in. */
function principals(model: MeshModel, name: string, flavor: 'envoy' | 'grpc'): string[] {
  const { resources } = translateProxy(model, {
    workload: { kind: 'Pod', namespace: 'default', name },
    flavor,
  });
  const text = JSON.stringify(resources);
  return [...new Set([...text.matchAll(/"principal_name":\{"exact":"([^"]+)"\}/g)].map((m) => m[1]!))].sort();
}

/** Whether a proxy's outbound config reaches Service default/api. */
function reachesApi(model: MeshModel, name: string): boolean {
  const { resources } = translateProxy(model, {
    workload: { kind: 'Pod', namespace: 'default', name },
    flavor: 'grpc',
  });
  return resources.clusters.some((c) => (c as { name?: string }).name === 'outbound|80|default/api');
}

describe('IdentityBinding: resolution', () => {
  it('a destination binding applies the target to each ServiceAccount it binds', () => {
    const r = buildModel(mesh);
    assert.deepEqual(r.conditions, []);
    assert.deepEqual(
      r.model.access.map((a: AccessModel) => [a.name, a.destination.identity]),
      [
        ['api', id('api')],
        ['api', id('api-canary')],
      ],
    );
    for (const a of r.model.access) {
      assert.deepEqual(
        a.sources.map((s) => s.identity),
        [id('buyer')],
      );
      assert.deepEqual(a.peerIdentities, ['spiffe://partner.example/billing']);
    }
  });

  it('both flavors let the bound sources in at every destination pod, and no one else', () => {
    const { model } = buildModel(mesh);
    for (const flavor of ['envoy', 'grpc'] as const) {
      for (const server of ['api-1', 'api-2']) {
        assert.deepEqual(
          principals(model, server, flavor),
          [id('buyer'), 'spiffe://partner.example/billing'],
          `${flavor} ${server}`,
        );
      }
      // The clients enforce nothing inbound: no target names them as destination.
      assert.deepEqual(principals(model, 'buyer', flavor), []);
    }
    assert.equal(reachesApi(model, 'buyer'), true);
    assert.equal(reachesApi(model, 'thief'), false);
  });

  it('does not depend on input order', () => {
    const first = buildModel(mesh);
    for (const seed of [1, 2, 3]) assert.deepEqual(buildModel(shuffled(mesh, seed)), first);
  });

  it('a missing binding converges when it appears, and grants nothing when it goes', () => {
    const builder = new ModelBuilder();
    const withoutBuyers = mesh.filter((o) => (o.metadata as { name: string }).name !== 'buyers');
    const before = builder.build(withoutBuyers);
    assert.deepEqual(
      before.conditions.map((c) => [c.object, c.reason, c.severity]),
      [
        ['TrafficTarget/default/api', 'NoSources', 'Warning'],
        ['TrafficTarget/default/api', 'IdentityBindingNotFound', 'Warning'],
      ],
    );
    assert.deepEqual(principals(before.model, 'api-1', 'envoy'), []);
    const after = builder.build(mesh);
    assert.deepEqual(after, buildModel(mesh));
    assert.deepEqual(principals(after.model, 'api-1', 'envoy'), [
      id('buyer'),
      'spiffe://partner.example/billing',
    ]);
    const gone = builder.build(withoutBuyers);
    assert.deepEqual(gone, before);
  });

  it('a pod that shares a bound ServiceAccount without matching the selector revokes it', () => {
    const builder = new ModelBuilder();
    assert.deepEqual(principals(builder.build(mesh).model, 'api-1', 'grpc'), [
      id('buyer'),
      'spiffe://partner.example/billing',
    ]);
    // thief now runs as buyer: a certificate cannot tell the two pods apart, so buyer is unbound.
    const shared = [...mesh.filter((o) => (o.metadata as { name: string }).name !== 'thief')];
    shared.push(pod('thief', { ip: '10.0.0.4', sa: 'buyer' }));
    const r = builder.build(shared);
    assert.deepEqual(
      r.conditions.map((c) => [c.object, c.reason]),
      [['IdentityBinding/default/buyers', 'SharedServiceAccount']],
    );
    assert.deepEqual(principals(r.model, 'api-1', 'grpc'), ['spiffe://partner.example/billing']);
    assert.equal(reachesApi(r.model, 'buyer'), false);
  });

  it('a serviceAccount binding and a ServiceAccount subject grant the same', () => {
    const bySubject = buildModel([...mesh.slice(0, 6), target('api', sa('api'), [sa('buyer')], rules)]);
    const byBinding = buildModel([
      ...mesh.slice(0, 6),
      binding('api', { serviceAccount: 'api' }),
      binding('buyer', { serviceAccount: 'buyer' }),
      target('api', ib('api'), [ib('buyer')], rules, v4),
    ]);
    assert.deepEqual(byBinding.conditions, []);
    assert.deepEqual(byBinding.model.access, bySubject.model.access);
  });

  it('a source binding in another namespace binds only its own namespace', () => {
    const r = buildModel([
      ...mesh.slice(0, 6),
      pod('shop', { ip: '10.0.1.1', ns: 'shop' }),
      binding('shop', { podLabelSelectors: [{ matchLabels: { app: 'shop' } }] }, 'shop'),
      // Same labels in default: a binding in shop never selects them.
      pod('shop', { ip: '10.0.0.9' }),
      target('api', sa('api'), [ib('shop', 'shop')], rules, v4),
    ]);
    assert.deepEqual(r.conditions, []);
    assert.deepEqual(
      r.model.access[0]!.sources.map((s) => s.identity),
      [id('shop', 'shop')],
    );
  });
});
