import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildModel } from '../../src/smi/build';
import { parseYamlObjects } from '../../src/smi/load';
import type { MeshModel } from '../../src/smi/model';
import { checkConsistency, groupKey, type ProxyResources, translateProxy } from '../../src/translate';
import { rbacPolicies } from '../../src/translate/common';
import { MATCH_ROUTES_LIMIT } from '../../src/translate/envoy';
import { routeStatPrefix } from '../../src/translate/names';

const BASE = `
apiVersion: v1
kind: Namespace
metadata: { name: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: web, namespace: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: api, namespace: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: db, namespace: shop }
---
apiVersion: v1
kind: Service
metadata: { name: api, namespace: shop }
spec: { clusterIP: 10.0.0.10, selector: { app: api }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: api-v1, namespace: shop }
spec: { clusterIP: 10.0.0.11, selector: { app: api, v: "1" }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: api-v2, namespace: shop }
spec: { clusterIP: 10.0.0.12, selector: { app: api, v: "2" }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: api-v3, namespace: shop }
spec: { clusterIP: 10.0.0.13, selector: { app: api, v: "3" }, ports: [{ name: http, port: 80, targetPort: 8080 }] }
---
apiVersion: v1
kind: Service
metadata: { name: db, namespace: shop }
spec: { clusterIP: 10.0.0.20, selector: { app: db }, ports: [{ name: tcp-db, port: 5432 }] }
---
apiVersion: v1
kind: Pod
metadata: { name: web-1, namespace: shop, labels: { app: web } }
spec: { serviceAccountName: web }
status: { podIP: 10.1.0.1 }
---
apiVersion: v1
kind: Pod
metadata: { name: web-2, namespace: shop, labels: { app: web } }
spec: { serviceAccountName: web }
status: { podIP: 10.1.0.2 }
---
apiVersion: v1
kind: Pod
metadata: { name: api-1, namespace: shop, labels: { app: api, v: "1" } }
spec: { serviceAccountName: api }
status: { podIP: 10.1.0.3 }
---
apiVersion: v1
kind: Pod
metadata: { name: api-2, namespace: shop, labels: { app: api, v: "2" } }
spec: { serviceAccountName: api }
status: { podIP: 10.1.0.4 }
---
apiVersion: v1
kind: Pod
metadata: { name: api-3, namespace: shop, labels: { app: api, v: "3" } }
spec: { serviceAccountName: api }
status: { podIP: 10.1.0.5 }
---
apiVersion: v1
kind: Pod
metadata: { name: db-1, namespace: shop, labels: { app: db } }
spec: { serviceAccountName: db }
status: { podIP: 10.1.0.6 }
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: api-routes, namespace: shop }
spec:
  matches:
    - { name: read, pathRegex: /books, methods: [GET] }
    - { name: write, pathRegex: /books, methods: [POST, PUT] }
    - { name: canary, headers: { x-canary: "yes" } }
`;

/** TrafficTarget `web-api`: web may call api with `rules` (a YAML flow list). */
function webToApi(rules: string): string {
  return `
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: web-api, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: api, namespace: shop }
  rules: ${rules}
  sources: [{ kind: ServiceAccount, name: web, namespace: shop }]
`;
}

const WEB_TO_API = webToApi('[{ kind: HTTPRouteGroup, name: api-routes, matches: [read] }]');

function mesh(yaml: string): MeshModel {
  const { objects } = parseYamlObjects(yaml, 'test.yaml');
  return buildModel(objects).model;
}

function tr(model: MeshModel, name: string, flavor: 'grpc' | 'envoy' = 'grpc', mtls = true): ProxyResources {
  return translateProxy(model, { workload: { kind: 'Pod', namespace: 'shop', name }, flavor, mtls })
    .resources;
}

type J = Record<string, unknown>;
function rbacOf(r: ProxyResources, port: number): J | undefined {
  const l = r.listeners.find(
    (x) => x.name === `grpc/server?xds.resource.listening_address=0.0.0.0:${port}`,
  ) as J | undefined;
  const hcm = (l?.filter_chains as J[])?.[0]?.filters as J[];
  const filters = ((hcm?.[0]?.typed_config as J)?.http_filters ?? []) as J[];
  const rbac = filters.find((f) => f.name === 'envoy.filters.http.rbac');
  return rbac ? ((rbac.typed_config as J).rules as J) : undefined;
}
function routesOf(r: ProxyResources, route: string): J[] {
  const rc = r.routes.find((x) => x.name === route) as J | undefined;
  return ((rc?.virtual_hosts as J[])?.[0]?.routes ?? []) as J[];
}

describe('translation semantics', () => {
  it('denies by default: no TrafficTarget, no outbound config and an empty ALLOW policy inbound', () => {
    const m = mesh(BASE);
    assert.deepEqual(tr(m, 'web-1').listeners, []);
    assert.deepEqual(rbacOf(tr(m, 'api-1'), 8080), { action: 'ALLOW', policies: {} });
  });

  it('scopes outbound config to what TrafficTargets allow, and allows only the listed matches', () => {
    const m = mesh(BASE + WEB_TO_API);
    const web = tr(m, 'web-1');
    assert.deepEqual(
      [...new Set(web.clusters.map((c) => String(c.name)))],
      [
        'outbound|80|shop/api',
        'outbound|80|shop/api-v1',
        'outbound|80|shop/api-v2',
        'outbound|80|shop/api-v3',
      ],
    );
    assert.ok(!web.clusters.some((c) => String(c.name).includes('db')), 'db is not reachable');
    assert.ok(web.listeners.some((l) => l.name === 'api.shop.svc.cluster.local:80'));
    assert.ok(web.listeners.some((l) => l.name === '10.0.0.10:80'));
    const rules = rbacOf(tr(m, 'api-1'), 8080) as {
      policies: Record<string, { permissions: J[]; principals: J[] }>;
    };
    assert.deepEqual(Object.keys(rules.policies), ['shop/web-api|HTTPRouteGroup/api-routes']);
    const policy = rules.policies['shop/web-api|HTTPRouteGroup/api-routes']!;
    assert.deepEqual(policy.principals, [
      { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/shop/sa/web' } } },
    ]);
    assert.deepEqual(policy.permissions, [
      {
        and_rules: {
          rules: [
            { url_path: { path: { safe_regex: { regex: '(?:/books).*' } } } },
            { header: { name: ':method', string_match: { safe_regex: { regex: 'GET' } } } },
          ],
        },
      },
    ]);
  });

  it('a rule without matches allows every match of the group', () => {
    const m = mesh(BASE + WEB_TO_API.replace(', matches: [read]', ''));
    const rules = rbacOf(tr(m, 'api-1'), 8080) as { policies: Record<string, { permissions: J[] }> };
    assert.equal(rules.policies['shop/web-api|HTTPRouteGroup/api-routes']?.permissions.length, 3);
  });

  it('a TCPRoute-only TrafficTarget allows all traffic on its ports, HTTP included', () => {
    const yaml = `${BASE}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: { name: any-80, namespace: shop }
spec: { matches: { ports: [80] } }
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: web-api-tcp, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: api, namespace: shop }
  rules: [{ kind: TCPRoute, name: any-80 }]
  sources: [{ kind: ServiceAccount, name: web, namespace: shop }]
`;
    const rules = rbacOf(tr(mesh(yaml), 'api-1'), 8080) as { policies: Record<string, { permissions: J[] }> };
    assert.deepEqual(rules.policies['shop/web-api-tcp|TCPRoute/any-80']?.permissions, [{ any: true }]);
  });

  it('a TCPRoute next to HTTP rules narrows the ports and opens nothing (SMI L7 example)', () => {
    const target = (ports: string) => `${BASE}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: { name: api-port, namespace: shop }
spec: { matches: { ports: ${ports} } }
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: web-api-mixed, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: api, namespace: shop }
  rules: [{ kind: TCPRoute, name: api-port }, { kind: HTTPRouteGroup, name: api-routes, matches: [read] }]
  sources: [{ kind: ServiceAccount, name: web, namespace: shop }]
`;
    type Rules = { policies: Record<string, { permissions: J[] }> };
    const read = rbacOf(tr(mesh(target('[8080]')), 'api-1'), 8080) as Rules;
    assert.deepEqual(Object.keys(read.policies), ['shop/web-api-mixed|HTTPRouteGroup/api-routes']);
    assert.equal(read.policies['shop/web-api-mixed|HTTPRouteGroup/api-routes']?.permissions.length, 1);
    // Envoy flavor: the same rules ride on the inbound route.
    const envoy = tr(mesh(target('[8080]')), 'api-1', 'envoy');
    const inbound = envoy.routes.find((r) => r.name === 'inbound|8080') as J;
    const perRoute = (inbound.virtual_hosts as J[])[0]?.typed_per_filter_config as J;
    const rules = ((Object.values(perRoute)[0] as J).rbac as J).rules as Rules;
    assert.deepEqual(Object.keys(rules.policies), ['shop/web-api-mixed|HTTPRouteGroup/api-routes']);
    // A TCPRoute on another port leaves this port closed.
    const other = rbacOf(tr(mesh(target('[9090]')), 'api-1'), 8080) as Rules;
    assert.deepEqual(other.policies, {});
  });

  it('splits with relative weights, keeps a 0 weight, and covers three ways', () => {
    const split = (w: [number, number, number]) => `
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: { name: api-split, namespace: shop }
spec:
  service: api
  backends:
    - { service: api-v1, weight: ${w[0]} }
    - { service: api-v2, weight: ${w[1]} }
    - { service: api-v3, weight: ${w[2]} }
`;
    const routes = routesOf(tr(mesh(BASE + WEB_TO_API + split([0, 100, 0])), 'web-1'), 'route|80|shop/api');
    assert.deepEqual(routes, [
      {
        name: 'split',
        match: { prefix: '' },
        route: {
          weighted_clusters: {
            clusters: [
              { name: 'outbound|80|shop/api-v1', weight: 0 },
              { name: 'outbound|80|shop/api-v2', weight: 100 },
              { name: 'outbound|80|shop/api-v3', weight: 0 },
            ],
          },
        },
      },
    ]);
    const three = routesOf(tr(mesh(BASE + WEB_TO_API + split([50, 30, 20])), 'web-1'), 'route|80|shop/api');
    const w = ((three[0]?.route as J).weighted_clusters as { clusters: { weight: number }[] }).clusters.map(
      (c) => c.weight,
    );
    assert.deepEqual(w, [50, 30, 20]);
  });

  it('A/B matches route matching requests to the split and the rest to the root service', () => {
    const yaml = `${BASE}${WEB_TO_API}
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: ab, namespace: shop }
spec:
  matches:
    - { name: canary-header, headers: [{ x-canary: "yes" }] }
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: { name: api-ab, namespace: shop }
spec:
  service: api
  matches: [{ kind: HTTPRouteGroup, name: ab }]
  backends: [{ service: api-v2, weight: 1 }]
`;
    const routes = routesOf(tr(mesh(yaml), 'web-1'), 'route|80|shop/api');
    assert.deepEqual(
      routes.map((r) => [r.name, r.match]),
      [
        [
          'split|ab/canary-header',
          { prefix: '', headers: [{ name: 'x-canary', string_match: { safe_regex: { regex: 'yes' } } }] },
        ],
        ['default', { prefix: '' }],
      ],
    );
    assert.deepEqual(routes[1]?.route, { cluster: 'outbound|80|shop/api' });
  });

  it('permissive mode: every service reachable and no RBAC filter', () => {
    const yaml = `${BASE}
---
apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh, namespace: weft-system }
spec: { permissive: true }
`;
    const m = mesh(yaml);
    assert.ok(tr(m, 'web-1').clusters.some((c) => c.name === 'outbound|5432|shop/db'));
    assert.equal(rbacOf(tr(m, 'api-1'), 8080), undefined);
  });

  it('Envoy flavor: intercepts by cluster IP, TCP through tcp_proxy, inbound mTLS with SDS', () => {
    const m = mesh(
      BASE +
        WEB_TO_API.replace(
          'HTTPRouteGroup, name: api-routes, matches: [read]',
          'HTTPRouteGroup, name: api-routes',
        ),
    );
    const web = tr(m, 'web-1', 'envoy');
    const outbound = web.listeners.find((l) => l.name === 'outbound') as { filter_chains: J[] };
    assert.deepEqual(
      outbound.filter_chains.map((c) => [c.name, c.filter_chain_match]),
      ['api', 'api-v1', 'api-v2', 'api-v3'].map((s, i) => [
        `outbound|80|shop/${s}`,
        { prefix_ranges: [{ address_prefix: `10.0.0.1${i}`, prefix_len: 32 }], destination_port: 80 },
      ]),
    );
    const db = tr(m, 'db-1', 'envoy');
    const inbound = db.listeners.find((l) => l.name === 'inbound') as { filter_chains: J[] };
    const chain = inbound.filter_chains[0]!;
    assert.deepEqual(
      (chain.filters as J[]).map((f) => f.name),
      ['envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy'],
    );
    assert.equal(((chain.transport_socket as J).typed_config as J).require_client_certificate, true);
  });

  it('every proxy of every flavor is consistent and decodes strictly', () => {
    const m = mesh(BASE + WEB_TO_API);
    for (const flavor of ['grpc', 'envoy'] as const) {
      for (const w of m.workloads) {
        const r = translateProxy(m, { workload: w, flavor }).resources;
        assert.deepEqual(checkConsistency(r), [], `${flavor} ${w.name}`);
      }
    }
  });

  it('is deterministic and does not touch its input', () => {
    const m = mesh(BASE + WEB_TO_API);
    const freeze = (o: unknown): void => {
      if (o && typeof o === 'object') {
        Object.freeze(o);
        for (const v of Object.values(o)) freeze(v);
      }
    };
    freeze(m);
    assert.equal(JSON.stringify(tr(m, 'web-1')), JSON.stringify(tr(m, 'web-1')));
  });

  it('replicas share a group key; an unrelated change keeps it; a change they read changes it', () => {
    const m = mesh(BASE + WEB_TO_API);
    const key = (model: MeshModel, name: string) =>
      groupKey(model, { workload: { kind: 'Pod', namespace: 'shop', name }, flavor: 'envoy' });
    assert.equal(key(m, 'web-1'), key(m, 'web-2'));
    const withDbTarget = mesh(
      `${BASE}${WEB_TO_API}
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: api-db, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: db, namespace: shop }
  rules: [{ kind: TCPRoute, name: none }]
  sources: [{ kind: ServiceAccount, name: api, namespace: shop }]
`,
    );
    assert.equal(key(withDbTarget, 'web-1'), key(m, 'web-1'), 'web does not read api→db access');
    assert.notEqual(key(withDbTarget, 'db-1'), key(m, 'db-1'), 'db does');
  });

  it("a Service's or TrafficSplit's own labels (read by TrafficMetrics only) change no group key", () => {
    const split = (labels: string) => `
---
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: { name: api-split, namespace: shop${labels} }
spec:
  service: api
  backends: [{ service: api-v1, weight: 1 }, { service: api-v2, weight: 1 }]
`;
    const before = mesh(BASE + WEB_TO_API + split(''));
    const labelled = `${BASE.replace(
      'kind: Service\nmetadata: { name: api, namespace: shop }',
      'kind: Service\nmetadata: { name: api, namespace: shop, labels: { tier: front } }',
    )}${WEB_TO_API}${split(', labels: { track: stable }')}`;
    const after = mesh(labelled);
    // The labels are in the model, where the label selectors read them...
    assert.deepEqual(after.objectLabels, {
      services: { 'shop/api': { tier: 'front' } },
      trafficSplits: { 'shop/api-split': { track: 'stable' } },
    });
    // ...and no proxy of either flavor, with or without mTLS, has to be translated again.
    for (const w of before.workloads)
      for (const flavor of ['envoy', 'grpc'] as const)
        for (const mtls of [true, false]) {
          const target = { workload: { kind: w.kind, namespace: w.namespace, name: w.name }, flavor, mtls };
          assert.equal(groupKey(after, target), groupKey(before, target), `${w.name} ${flavor} mtls=${mtls}`);
        }
  });
});

describe('Envoy flavor: what real Envoy needs', () => {
  const chainsOf = (r: ProxyResources, listener: string): J =>
    r.listeners.find((l) => l.name === listener) as J;
  const tcpCluster = (chain: J): unknown =>
    ((((chain.filters as J[])[0] as J).typed_config as J).cluster as string | undefined) ?? undefined;

  it('a workload that serves and calls nothing still gets listeners Envoy accepts: default chains', () => {
    const r = tr(mesh(BASE), 'db-1', 'envoy');
    const outbound = chainsOf(r, 'outbound');
    const inbound = chainsOf(r, 'inbound');
    assert.deepEqual(outbound.filter_chains, []);
    assert.equal((outbound.default_filter_chain as J).name, 'passthrough');
    assert.equal(tcpCluster(outbound.default_filter_chain as J), 'passthrough');
    assert.equal(r.clusters.find((c) => c.name === 'passthrough')?.type, 'ORIGINAL_DST');
    assert.equal((inbound.default_filter_chain as J).name, 'refuse');
    assert.equal(tcpCluster(inbound.default_filter_chain as J), 'blackhole');
    assert.deepEqual(checkConsistency(r), []);
  });

  it('MeshConfig outboundPassthrough: false refuses destinations outside the mesh', () => {
    const off = `${BASE}---
apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: { name: mesh }
spec: { outboundPassthrough: false }
`;
    const r = tr(mesh(off), 'web-1', 'envoy');
    const outbound = chainsOf(r, 'outbound');
    assert.equal((outbound.default_filter_chain as J).name, 'refuse');
    assert.equal(tcpCluster(outbound.default_filter_chain as J), 'blackhole');
    assert.equal(
      r.clusters.some((c) => c.name === 'passthrough'),
      false,
    );
  });

  it('HTTP access rules live in the inbound route, and the listener RBAC itself allows nothing', () => {
    const r = tr(mesh(BASE + WEB_TO_API), 'api-1', 'envoy');
    const chain = (chainsOf(r, 'inbound').filter_chains as J[]).find((c) => c.name === 'inbound|8080') as J;
    const hcm = ((chain.filters as J[])[0] as J).typed_config as J;
    const rbac = (hcm.http_filters as J[]).find((f) => f.name === 'envoy.filters.http.rbac') as J;
    assert.deepEqual((rbac.typed_config as J).rules, { action: 'ALLOW' });
    const vhost = ((r.routes.find((x) => x.name === 'inbound|8080') as J).virtual_hosts as J[])[0] as J;
    const perRoute = (vhost.typed_per_filter_config as J)['envoy.filters.http.rbac'] as J;
    const policies = ((perRoute.rbac as J).rules as J).policies as J;
    assert.deepEqual(Object.keys(policies), ['shop/web-api|HTTPRouteGroup/api-routes']);
  });

  it('inbound: one counted route per allowed match, then the catch-all; none past the limit', () => {
    const inboundVhost = (r: ProxyResources): J =>
      ((r.routes.find((x) => x.name === 'inbound|8080') as J).virtual_hosts as J[])[0] as J;
    const inboundRoutes = (r: ProxyResources): J[] => inboundVhost(r).routes as J[];
    const inboundRbac = (r: ProxyResources): J =>
      (((inboundVhost(r).typed_per_filter_config as J)['envoy.filters.http.rbac'] as J).rbac as J).rules as J;
    // Only the matches some rule allows on the port get a route, once each, by group then name.
    const both = `${WEB_TO_API}---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: db-api, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: api, namespace: shop }
  rules: [{ kind: HTTPRouteGroup, name: api-routes, matches: [read, canary] }]
  sources: [{ kind: ServiceAccount, name: db, namespace: shop }]
`;
    const routes = inboundRoutes(tr(mesh(BASE + both), 'api-1', 'envoy'));
    assert.deepEqual(
      routes.map((x) => [x.name, x.stat_prefix]),
      [
        ['match|api-routes/canary', 'api-routes__canary'],
        ['match|api-routes/read', 'api-routes__read'],
        ['default', undefined],
      ],
    );
    assert.deepEqual(routes[1]!.match, {
      safe_regex: { regex: '(?:/books).*' },
      headers: [{ name: ':method', string_match: { safe_regex: { regex: 'GET' } } }],
    });
    assert.deepEqual(routes[1]!.route, { cluster: 'inbound|8080' });
    // RBAC stays on the virtual host, where it covers every route: a route-level
    // typed_per_filter_config would replace the virtual host's policies for that route.
    for (const x of routes) assert.equal(x.typed_per_filter_config, undefined, `${x.name}`);
    // Past MATCH_ROUTES_LIMIT matches the port has the catch-all alone; access is unchanged: the
    // virtual host's policies are those of the port's access rules whether the match routes are
    // there (at the limit) or not (past it).
    const manyMatches = (n: number): string => {
      const many = Array.from({ length: n }, (_, i) => `    - { name: m${i}, pathRegex: /p${i} }`);
      return `${BASE}---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: many, namespace: shop }
spec:
  matches:
${many.join('\n')}${webToApi('[{ kind: HTTPRouteGroup, name: many }]')}`;
    };
    for (const n of [MATCH_ROUTES_LIMIT, MATCH_ROUTES_LIMIT + 1]) {
      const m = mesh(manyMatches(n));
      const r = tr(m, 'api-1', 'envoy');
      assert.equal(inboundRoutes(r).length, n > MATCH_ROUTES_LIMIT ? 1 : n + 1, `${n} matches`);
      assert.equal(inboundRoutes(r).at(-1)!.name, 'default');
      assert.deepEqual(inboundRbac(r), rbacPolicies(m.access, 8080, true, true), `${n} matches`);
      const policies = (inboundRbac(r).policies as J)['shop/web-api|HTTPRouteGroup/many'] as J;
      assert.equal((policies.permissions as J[]).length, n);
      assert.deepEqual(checkConsistency(r), []);
    }
  });

  it('inbound match routes are ordered by group, then match name (a/x before a-b/x)', () => {
    const groups = `${BASE}---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: a-b, namespace: shop }
spec: { matches: [{ name: x, pathRegex: /ab }] }
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: a, namespace: shop }
spec: { matches: [{ name: x-y, pathRegex: /axy }, { name: x, pathRegex: /a }] }${webToApi('[{ kind: HTTPRouteGroup, name: a-b }, { kind: HTTPRouteGroup, name: a }]')}`;
    assert.deepEqual(
      routesOf(tr(mesh(groups), 'api-1', 'envoy'), 'inbound|8080').map((x) => x.name),
      ['match|a/x', 'match|a/x-y', 'match|a-b/x', 'default'],
    );
  });

  it('the local app cluster speaks HTTP/2 to gRPC and h2c ports, the caller protocol to http', () => {
    const ports = `${BASE}---
apiVersion: v1
kind: Service
metadata: { name: multi, namespace: shop }
spec:
  clusterIP: 10.0.0.30
  selector: { app: db }
  ports:
    - { name: grpc, port: 9090, appProtocol: grpc }
    - { name: h2c-api, port: 8081 }
    - { name: http, port: 8082 }
`;
    const r = tr(mesh(ports), 'db-1', 'envoy');
    const options = (name: string): J =>
      ((r.clusters.find((c) => c.name === name) as J).typed_extension_protocol_options as J)[
        'envoy.extensions.upstreams.http.v3.HttpProtocolOptions'
      ] as J;
    assert.ok(options('inbound|9090').explicit_http_config);
    assert.ok(options('inbound|8081').explicit_http_config);
    assert.ok(options('inbound|8082').use_downstream_protocol_config);
  });

  it('a headless Service routes to the pod dialed (ORIGINAL_DST), matching each endpoint IP', () => {
    const headless = `${BASE}---
apiVersion: v1
kind: Service
metadata: { name: api-set, namespace: shop }
spec: { clusterIP: None, selector: { app: api }, ports: [{ name: http, port: 8080 }] }
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: web-api-all, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: api, namespace: shop }
  rules: [{ kind: HTTPRouteGroup, name: api-routes }]
  sources: [{ kind: ServiceAccount, name: web, namespace: shop }]
`;
    const r = tr(mesh(headless), 'web-1', 'envoy');
    const chain = (chainsOf(r, 'outbound').filter_chains as J[]).find(
      (c) => c.name === 'outbound|8080|shop/api-set',
    ) as J;
    const match = chain.filter_chain_match as J;
    assert.deepEqual(
      (match.prefix_ranges as J[]).map((p) => p.address_prefix),
      ['10.1.0.3', '10.1.0.4', '10.1.0.5'],
    );
    const cluster = r.clusters.find((c) => c.name === 'outbound|8080|shop/api-set') as J;
    assert.equal(cluster.type, 'ORIGINAL_DST');
    assert.equal(cluster.lb_policy, 'CLUSTER_PROVIDED');
    assert.ok(cluster.transport_socket, 'over mTLS');
    assert.equal(
      r.endpoints.some((e) => e.cluster_name === 'outbound|8080|shop/api-set'),
      false,
    );
    assert.deepEqual(checkConsistency(r), []);
  });

  it('stat prefixes and alt_stat_names are Prometheus-safe, and sidecars speak TLS 1.3 only', () => {
    const r = tr(mesh(BASE + WEB_TO_API), 'web-1', 'envoy');
    const text = JSON.stringify(r);
    for (const m of text.matchAll(/"(?:stat_prefix|alt_stat_name)":"([^"]*)"/g))
      assert.match(m[1]!, /^[a-zA-Z0-9_-]+$/, `stat name ${m[1]}`);
    const cluster = r.clusters.find((c) => c.name === 'outbound|80|shop/api') as J;
    const tls = ((cluster.transport_socket as J).typed_config as J).common_tls_context as J;
    assert.deepEqual(tls.tls_params, {
      tls_minimum_protocol_version: 'TLSv1_3',
      tls_maximum_protocol_version: 'TLSv1_3',
    });
  });
});

describe('route stat prefixes (names.routeStatPrefix)', () => {
  it('keeps [A-Za-z0-9-], escapes the rest per UTF-8 byte, and joins with __', () => {
    assert.equal(routeStatPrefix('store-paths', 'open'), 'store-paths__open');
    assert.equal(routeStatPrefix('api.routes', 'books'), 'api_2eroutes__books');
    assert.equal(routeStatPrefix('g', 'get users'), 'g__get_20users');
    assert.equal(routeStatPrefix('g', 'get_users'), 'g__get_5fusers');
    assert.equal(routeStatPrefix('g', 'caf\u00e9/\u{1f600}'), 'g__caf_c3_a9_2f_f0_9f_98_80');
  });

  it('is one-to-one: pairs that used to share a prefix no longer do', () => {
    const pairs: [string, string][] = [
      ['a.b', 'c'],
      ['a', 'b.c'],
      ['a_b', 'c'],
      ['a', 'b_c'],
      ['a', '_b'],
      ['a_', 'b'],
      ['a__b', 'c'],
      ['a', '_c'],
      ['g', 'get users'],
      ['g', 'get_users'],
      ['g', 'get.users'],
      ['g', 'get/users'],
      // Lone surrogates must not all collapse into U+FFFD.
      ['g', '\ud800'],
      ['g', '\udc00'],
      ['g', '\ufffd'],
    ];
    const prefixes = pairs.map(([g, m]) => routeStatPrefix(g, m));
    assert.equal(new Set(prefixes).size, pairs.length, prefixes.join(' '));
    for (const p of prefixes) assert.match(p, /^[A-Za-z0-9_-]+$/, p);
  });
});
