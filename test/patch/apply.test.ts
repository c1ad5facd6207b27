import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyPatches, type PatchableResources, type PatchSubject } from '../../src/patch/apply';
import { type EnvoyPatch, EnvoyPatchObject } from '../../src/patch/schema';

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
const TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';

const base = (): PatchableResources => ({
  listeners: [
    {
      name: 'bookstore:14001',
      api_listener: {
        api_listener: {
          '@type': HCM,
          stat_prefix: 'bookstore',
          rds: { route_config_name: 'r', config_source: { ads: {} } },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
        },
      },
    },
  ],
  routes: [
    {
      name: 'r',
      virtual_hosts: [
        {
          name: 'v',
          domains: ['*'],
          routes: [{ name: 'default', match: { prefix: '' }, route: { cluster: 'c' } }],
        },
      ],
    },
  ],
  clusters: [
    {
      name: 'c',
      type: 'EDS',
      eds_cluster_config: { eds_config: { ads: {} } },
      transport_socket: { name: 'tls', typed_config: { '@type': TLS, sni: 'bookstore' } },
    },
  ],
  endpoints: [],
  secrets: [],
});

const subject: PatchSubject = {
  namespace: 'bookbuyer',
  labels: { app: 'bookbuyer' },
  serviceAccount: 'bookbuyer',
  flavor: 'grpc',
};

function patch(name: string, spec: Record<string, unknown>, extra: Record<string, unknown> = {}): EnvoyPatch {
  return EnvoyPatchObject.parse({
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'EnvoyPatch',
    metadata: { name, namespace: 'bookbuyer', ...extra },
    spec,
  });
}

const opts = { meshNamespace: 'weft-system' };

describe('applying EnvoyPatches', () => {
  it('adds a retry policy with a merge into the route by name', () => {
    const p = patch('retries', {
      patches: [
        {
          target: { type: 'RouteConfiguration', name: 'r' },
          merge: {
            virtual_hosts: [{ name: 'v', retry_policy: { retry_on: 'unavailable', num_retries: 3 } }],
          },
        },
      ],
    });
    const { resources, results } = applyPatches(base(), subject, [p], opts);
    assert.deepEqual(
      results.map((r) => [r.patch, r.applied, r.touched]),
      [['bookbuyer/retries', true, ['RouteConfiguration/r']]],
    );
    const vh = (resources.routes[0] as { virtual_hosts: { retry_policy?: unknown }[] }).virtual_hosts[0];
    assert.deepEqual(vh?.retry_policy, { retry_on: 'unavailable', num_retries: 3 });
  });

  it('inserts an HTTP filter before the router', () => {
    const p = patch('fault', {
      patches: [
        {
          target: { type: 'Listener', name: 'bookstore:14001' },
          insertHttpFilter: {
            before: 'envoy.filters.http.router',
            filter: { name: 'envoy.filters.http.fault', typed_config: { '@type': FAULT } },
          },
        },
      ],
    });
    const { resources, results } = applyPatches(base(), subject, [p], opts);
    assert.equal(results[0]?.applied, true);
    const hcm = (
      resources.listeners[0] as { api_listener: { api_listener: { http_filters: { name: string }[] } } }
    ).api_listener.api_listener;
    assert.deepEqual(
      hcm.http_filters.map((f) => f.name),
      ['envoy.filters.http.fault', 'envoy.filters.http.router'],
    );
  });

  it('adds a whole new cluster', () => {
    const p = patch('extra', {
      patches: [
        {
          add: {
            type: 'Cluster',
            resource: { name: 'audit', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } },
          },
        },
        // An EDS cluster needs its assignment in the set, or Envoy keeps it warming.
        { add: { type: 'ClusterLoadAssignment', resource: { cluster_name: 'audit', endpoints: [] } } },
      ],
    });
    const { resources } = applyPatches(base(), subject, [p], opts);
    assert.deepEqual(
      resources.clusters.map((c) => c.name),
      ['audit', 'c'],
    );
  });

  it('refuses a patch whose result is not valid Envoy config, keeping nothing of it, and applies the others', () => {
    const bad = patch('bad', {
      priority: 1,
      patches: [
        {
          target: { type: 'Cluster', name: 'c' },
          jsonPatch: [{ op: 'add', path: '/alt_stat_name', value: 'ok' }],
        },
        {
          target: { type: 'Cluster', name: 'c' },
          jsonPatch: [{ op: 'add', path: '/lb_policy', value: 'FASTEST' }],
        },
      ],
    });
    const good = patch('good', {
      priority: 2,
      patches: [{ target: { type: 'Cluster', name: 'c' }, merge: { alt_stat_name: 'good' } }],
    });
    const { resources, results } = applyPatches(base(), subject, [good, bad], opts);
    assert.deepEqual(
      results.map((r) => [r.patch, r.applied]),
      [
        ['bookbuyer/bad', false],
        ['bookbuyer/good', true],
      ],
    );
    assert.match(results[0]!.errors.join('\n'), /Cluster\/c: lb_policy: unknown LbPolicy value "FASTEST"/);
    assert.equal(resources.clusters[0]?.alt_stat_name, 'good');
    assert.equal(resources.clusters[0]?.lb_policy, undefined);
  });

  it('refuses a route to a cluster the proxy does not have, and takes one the same patch adds', () => {
    const toNowhere = patch('to-nowhere', {
      patches: [
        {
          target: { type: 'RouteConfiguration', name: 'r' },
          jsonPatch: [{ op: 'replace', path: '/virtual_hosts/0/routes/0/route/cluster', value: 'nowhere' }],
        },
      ],
    });
    const withCluster = patch('with-cluster', {
      patches: [
        { add: { type: 'Cluster', resource: { name: 'extra', type: 'STATIC', connect_timeout: '1s' } } },
        {
          target: { type: 'RouteConfiguration', name: 'r' },
          jsonPatch: [{ op: 'replace', path: '/virtual_hosts/0/routes/0/route/cluster', value: 'extra' }],
        },
      ],
    });
    const refused = applyPatches(base(), subject, [toNowhere], opts);
    assert.deepEqual(refused.results[0]!.errors, [
      'spec.patches[0]: RouteConfiguration/r: unknown cluster "nowhere"',
    ]);
    assert.equal(
      (refused.resources.routes[0]!.virtual_hosts as { routes: { route: { cluster: string } }[] }[])[0]!
        .routes[0]!.route.cluster,
      'c',
      'the unpatched route is kept',
    );
    const applied = applyPatches(base(), subject, [withCluster], opts);
    assert.deepEqual(applied.results[0]!.errors, []);
    assert.equal(applied.results[0]!.applied, true);
  });

  it('refuses to change access rules in a route (RBACPerRoute) unless allowSecurityOverride is set', () => {
    const PER_ROUTE = 'type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBACPerRoute';
    const withRules = base();
    const vhost = (withRules.routes[0]!.virtual_hosts as Record<string, unknown>[])[0]!;
    vhost.typed_per_filter_config = {
      'envoy.filters.http.rbac': { '@type': PER_ROUTE, rbac: { rules: { action: 'ALLOW', policies: {} } } },
    };
    const open = (override: boolean) =>
      patch('open-up', {
        ...(override ? { allowSecurityOverride: true } : {}),
        patches: [
          {
            target: { type: 'RouteConfiguration', name: 'r' },
            jsonPatch: [{ op: 'remove', path: '/virtual_hosts/0/typed_per_filter_config' }],
          },
        ],
      });
    const refused = applyPatches(withRules, subject, [open(false)], opts);
    assert.equal(refused.results[0]!.applied, false);
    assert.match(refused.results[0]!.errors.join('\n'), /TLS or RBAC.*allowSecurityOverride/);
    const allowed = applyPatches(withRules, subject, [open(true)], opts);
    assert.equal(allowed.results[0]!.applied, true, allowed.results[0]!.errors.join('\n'));
  });

  it('names the failing JSON Patch operation', () => {
    const p = patch('broken', {
      patches: [{ target: { type: 'Cluster', name: 'c' }, jsonPatch: [{ op: 'remove', path: '/nope' }] }],
    });
    const { results } = applyPatches(base(), subject, [p], opts);
    assert.match(
      results[0]!.errors[0]!,
      /spec\.patches\[0\]: Cluster\/c: operation 0 \(remove \/nope\): no value/,
    );
  });

  it('reports targets that are not there', () => {
    const p = patch('missing', {
      patches: [{ target: { type: 'Cluster', name: 'nope' }, merge: { alt_stat_name: 'x' } }],
    });
    const { results } = applyPatches(base(), subject, [p], opts);
    assert.deepEqual(results[0]?.notFound, ['operation 0: no Cluster "nope" on this proxy']);
    assert.equal(results[0]?.applied, false);
  });

  it('refuses to weaken TLS unless allowSecurityOverride is set', () => {
    const spec = {
      patches: [
        { target: { type: 'Cluster', name: 'c' }, jsonPatch: [{ op: 'remove', path: '/transport_socket' }] },
      ],
    };
    const refused = applyPatches(base(), subject, [patch('plain', spec)], opts).results[0]!;
    assert.equal(refused.applied, false);
    assert.match(
      refused.errors[0]!,
      /changes \.transport_socket \(TLS or RBAC\); set spec\.allowSecurityOverride: true/,
    );
    const allowed = applyPatches(
      base(),
      subject,
      [patch('plain', { ...spec, allowSecurityOverride: true })],
      opts,
    );
    assert.equal(allowed.results[0]?.applied, true);
    assert.equal(allowed.resources.clusters[0]?.transport_socket, undefined);
  });

  it('selects by labels, service account and flavor within its namespace only', () => {
    const spec = (selector: Record<string, unknown>) => ({
      selector,
      patches: [{ target: { type: 'Cluster', name: 'c' }, merge: { alt_stat_name: 'x' } }],
    });
    const sel = (p: EnvoyPatch, s = subject) => applyPatches(base(), s, [p], opts).results[0]?.selected;
    assert.equal(sel(patch('a', spec({ matchLabels: { app: 'bookbuyer' } }))), true);
    assert.equal(sel(patch('b', spec({ matchLabels: { app: 'other' } }))), false);
    assert.equal(sel(patch('c', spec({ serviceAccount: 'other' }))), false);
    assert.equal(sel(patch('d', spec({ flavor: 'envoy' }))), false);
    assert.equal(
      sel(patch('e', spec({})), { ...subject, namespace: 'bookthief' }),
      false,
      'never another namespace',
    );
    const meshWide = EnvoyPatchObject.parse({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'EnvoyPatch',
      metadata: { name: 'all', namespace: 'weft-system' },
      spec: { patches: [{ target: { type: 'Cluster', name: 'c' }, merge: { alt_stat_name: 'x' } }] },
    });
    assert.equal(
      sel(meshWide, { ...subject, namespace: 'bookthief' }),
      true,
      'mesh-wide from the mesh namespace',
    );
  });

  it('orders by priority, then creation time, then name', () => {
    const mk = (name: string, priority: number, ts: string) =>
      patch(
        name,
        { priority, patches: [{ target: { type: 'Cluster', name: 'c' }, merge: { alt_stat_name: name } }] },
        { creationTimestamp: ts },
      );
    const { resources, results } = applyPatches(
      base(),
      subject,
      [
        mk('z', 0, '2026-01-02T00:00:00Z'),
        mk('y', 0, '2026-01-01T00:00:00Z'),
        mk('a', 5, '2025-01-01T00:00:00Z'),
      ],
      opts,
    );
    assert.deepEqual(
      results.map((r) => r.patch),
      ['bookbuyer/y', 'bookbuyer/z', 'bookbuyer/a'],
    );
    assert.equal(resources.clusters[0]?.alt_stat_name, 'a');
  });

  it('rejects malformed patches at parse time with the field', () => {
    const r = EnvoyPatchObject.safeParse({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'EnvoyPatch',
      metadata: { name: 'x', namespace: 'n' },
      spec: {
        patches: [
          { target: { type: 'Cluster', name: 'c' }, merge: {}, jsonPatch: [{ op: 'remove', path: '/a' }] },
        ],
      },
    });
    assert.equal(r.success, false);
    assert.match(JSON.stringify(r.error?.issues), /exactly one of jsonPatch, merge, insertHttpFilter or add/);
  });
});
