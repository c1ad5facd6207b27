import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildModel, normalizeObject, servedVersions } from '../../src/smi';
import type { Normalized } from '../../src/smi/normalize';
import { meta, pod, type Raw, routeGroup, sa, service, serviceAccount, split, target } from './helpers';

/** Normalizes one raw object, failing the test when it is not a normalized object. */
function norm(raw: Raw): Normalized {
  const out = normalizeObject(raw, raw.apiVersion as string, raw.kind as string);
  assert.ok(out !== null, 'kind and version are served');
  assert.ok(!('problem' in out), `normalizes: ${JSON.stringify(out)}`);
  return out as Normalized;
}

/** A normalized object without its apiVersion, for comparing versions. */
function shape(raw: Raw): unknown {
  const { apiVersion: _ignored, ...rest } = norm(raw) as Normalized & { apiVersion: string };
  return rest;
}

describe('served versions', () => {
  it('lists every SMI version the design commits to', () => {
    assert.deepEqual(servedVersions('TrafficSplit'), [
      'split.smi-spec.io/v1alpha1',
      'split.smi-spec.io/v1alpha2',
      'split.smi-spec.io/v1alpha3',
      'split.smi-spec.io/v1alpha4',
    ]);
    assert.deepEqual(servedVersions('TrafficTarget'), [
      'access.smi-spec.io/v1alpha1',
      'access.smi-spec.io/v1alpha2',
      'access.smi-spec.io/v1alpha3',
      'access.smi-spec.io/v1alpha4',
    ]);
    assert.deepEqual(servedVersions('IdentityBinding'), ['access.smi-spec.io/v1alpha4']);
    assert.deepEqual(servedVersions('HTTPRouteGroup'), [
      'specs.smi-spec.io/v1alpha1',
      'specs.smi-spec.io/v1alpha2',
      'specs.smi-spec.io/v1alpha3',
      'specs.smi-spec.io/v1alpha4',
    ]);
    assert.deepEqual(servedVersions('TCPRoute'), [
      'specs.smi-spec.io/v1alpha1',
      'specs.smi-spec.io/v1alpha2',
      'specs.smi-spec.io/v1alpha3',
      'specs.smi-spec.io/v1alpha4',
    ]);
    assert.deepEqual(servedVersions('UDPRoute'), ['specs.smi-spec.io/v1alpha4']);
    assert.deepEqual(servedVersions('MeshConfig'), ['weft.dev/v1alpha1']);
    assert.deepEqual(servedVersions('EndpointSlice'), ['discovery.k8s.io/v1']);
    assert.deepEqual(servedVersions('Deployment'), ['apps/v1']);
    for (const kind of ['Namespace', 'Service', 'ServiceAccount', 'Pod'])
      assert.deepEqual(servedVersions(kind), ['v1']);
  });
});

describe('TrafficSplit versions', () => {
  const backendsInt = [
    { service: 'web-v1', weight: 9 },
    { service: 'web-v2', weight: 1 },
  ];

  it('v1alpha1 quantities become the smallest integers with the same ratios', () => {
    const v1 = norm(
      split(
        's',
        'web',
        [
          { service: 'web-v1', weight: '900m' },
          { service: 'web-v2', weight: '100m' },
        ],
        { version: 'v1alpha1' },
      ),
    );
    assert.equal(v1.kind, 'TrafficSplit');
    assert.deepEqual(v1.kind === 'TrafficSplit' && v1.backends, backendsInt);
    const mixed = norm(
      split(
        's',
        'web',
        [
          { service: 'a', weight: '500m' },
          { service: 'b', weight: 1 },
          { service: 'c', weight: '1500m' },
          { service: 'd', weight: '0' },
          { service: 'e', weight: '1k' },
          { service: 'f', weight: '1Ki' },
        ],
        { version: 'v1alpha1' },
      ),
    );
    assert.deepEqual(
      mixed.kind === 'TrafficSplit' && mixed.backends.map((b) => b.weight),
      [1, 2, 3, 0, 2000, 2048],
    );
  });

  it('every version without matches normalizes to the same shape', () => {
    const shapes = ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'].map((version) =>
      shape(
        split(
          's',
          'web',
          version === 'v1alpha1'
            ? [
                { service: 'web-v1', weight: '90' },
                { service: 'web-v2', weight: '10' },
              ]
            : backendsInt,
          { version },
        ),
      ),
    );
    // v1alpha1 reduces 90:10 to 9:1; the integer versions keep what is written, so compare to 9:1.
    for (const s of shapes) assert.deepEqual(s, shapes[1]);
  });

  it('v1alpha3 and v1alpha4 matches normalize alike, with or without apiGroup', () => {
    const matches = [{ kind: 'HTTPRouteGroup', name: 'ab' }];
    const a = shape(split('s', 'web', backendsInt, { version: 'v1alpha3', matches }));
    const b = shape(
      split('s', 'web', backendsInt, {
        version: 'v1alpha4',
        matches: [{ kind: 'HTTPRouteGroup', name: 'ab', apiGroup: 'specs.smi-spec.io' }],
      }),
    );
    assert.deepEqual(a, b);
    assert.deepEqual((norm(split('s', 'web', backendsInt, { matches })) as { matches: unknown }).matches, [
      { kind: 'HTTPRouteGroup', name: 'ab' },
    ]);
  });

  it('resolves to the same split in the model from every version', () => {
    const base = [service('web'), service('web-v1'), service('web-v2')];
    const models = ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'].map((version) => {
      const backends =
        version === 'v1alpha1'
          ? [
              { service: 'web-v1', weight: '900m' },
              { service: 'web-v2', weight: '100m' },
            ]
          : backendsInt;
      const r = buildModel([...base, split('s', 'web', backends, { version })]);
      assert.deepEqual(r.conditions, []);
      return r.model.splits;
    });
    for (const m of models) assert.deepEqual(m, models[0]);
    assert.deepEqual(models[0], [
      {
        namespace: 'default',
        name: 's',
        rootService: 'web',
        backends: [
          { service: 'web-v1', weight: 9, ports: [80] },
          { service: 'web-v2', weight: 1, ports: [80] },
        ],
        matches: null,
      },
    ]);
  });
});

describe('TrafficTarget versions', () => {
  const dest = { kind: 'ServiceAccount', name: 'api', namespace: 'default' };
  const sources = [sa('web')];
  const rules = [{ kind: 'HTTPRouteGroup', name: 'routes', matches: ['get'] }];
  const v1alpha1TopLevel: Raw = {
    apiVersion: 'access.smi-spec.io/v1alpha1',
    kind: 'TrafficTarget',
    metadata: meta('t'),
    destination: dest,
    sources,
    specs: rules,
  };
  const v1alpha1UnderSpec: Raw = {
    apiVersion: 'access.smi-spec.io/v1alpha1',
    kind: 'TrafficTarget',
    metadata: meta('t'),
    spec: { destination: dest, sources, specs: rules },
  };

  it('v1alpha1 (top level or under spec), v1alpha2, v1alpha3 and v1alpha4 normalize to one shape', () => {
    const all = [
      v1alpha1TopLevel,
      v1alpha1UnderSpec,
      target('t', dest, sources, rules, { version: 'v1alpha2' }),
      target('t', dest, sources, rules, { version: 'v1alpha3' }),
      target('t', dest, sources, rules, { version: 'v1alpha4' }),
    ].map((raw) => {
      const { paths: _paths, ...rest } = shape(raw) as { paths: unknown };
      return rest;
    });
    for (const s of all) assert.deepEqual(s, all[3]);
    assert.deepEqual(all[3], {
      kind: 'TrafficTarget',
      meta: { namespace: 'default', name: 't', labels: {}, creationTimestamp: null, resourceVersion: null },
      destination: { kind: 'ServiceAccount', name: 'api', namespace: 'default', group: null },
      destinationPort: null,
      sources: [{ kind: 'ServiceAccount', name: 'web', namespace: null, group: null }],
      rules: [{ kind: 'HTTPRouteGroup', name: 'routes', namespace: null, matches: ['get'] }],
    });
  });

  it('keeps field paths per version so conditions name the field that was written', () => {
    assert.deepEqual((norm(v1alpha1TopLevel) as { paths: unknown }).paths, {
      destination: 'destination',
      sources: 'sources',
      rules: 'specs',
    });
    assert.deepEqual((norm(v1alpha1UnderSpec) as { paths: unknown }).paths, {
      destination: 'spec.destination',
      sources: 'spec.sources',
      rules: 'spec.specs',
    });
    assert.deepEqual((norm(target('t', dest, sources, rules)) as { paths: unknown }).paths, {
      destination: 'spec.destination',
      sources: 'spec.sources',
      rules: 'spec.rules',
    });
  });

  it('reads destination.port in v1alpha1 and v1alpha2', () => {
    const withPort = { ...dest, port: 8080 };
    assert.equal(
      (norm({ ...v1alpha1TopLevel, destination: withPort }) as { destinationPort: number }).destinationPort,
      8080,
    );
    assert.equal(
      (norm(target('t', withPort, sources, rules, { version: 'v1alpha2' })) as { destinationPort: number })
        .destinationPort,
      8080,
    );
  });

  it('resolves to the same access entry in the model from every version', () => {
    const base = [
      pod('api', { ip: '10.0.0.1' }),
      pod('web', { ip: '10.0.0.2' }),
      routeGroup('routes', [{ name: 'get', methods: ['GET'] }]),
    ];
    const models = [
      v1alpha1TopLevel,
      v1alpha1UnderSpec,
      target('t', dest, sources, rules, { version: 'v1alpha2' }),
      target('t', dest, sources, rules),
      target('t', dest, sources, rules, { version: 'v1alpha4' }),
    ].map((t) => {
      const r = buildModel([...base, t]);
      assert.deepEqual(r.conditions, []);
      return r.model.access;
    });
    for (const m of models) assert.deepEqual(m, models[0]);
    assert.deepEqual(models[0], [
      {
        namespace: 'default',
        name: 't',
        destination: {
          namespace: 'default',
          serviceAccount: 'api',
          identity: 'spiffe://cluster.local/ns/default/sa/api',
        },
        destinationPort: null,
        destinationInboundPorts: null,
        sources: [
          {
            namespace: 'default',
            serviceAccount: 'web',
            identity: 'spiffe://cluster.local/ns/default/sa/web',
          },
        ],
        peerIdentities: [],
        rules: [
          {
            kind: 'HTTPRouteGroup',
            name: 'routes',
            matches: [{ routeGroup: 'routes', name: 'get', pathRegex: null, methods: ['GET'], headers: [] }],
          },
        ],
      },
    ]);
  });
});

describe('HTTPRouteGroup versions and header encodings', () => {
  const matches = [
    {
      name: 'firefox',
      pathRegex: '/api',
      methods: ['get', 'HEAD', 'GET'],
      headers: { 'User-Agent': '.*Firefox.*', cookie: 'a=b' },
    },
    { name: 'all', methods: ['*'] },
  ];
  const expected = {
    kind: 'HTTPRouteGroup',
    meta: { namespace: 'default', name: 'g', labels: {}, creationTimestamp: null, resourceVersion: null },
    matches: [
      {
        name: 'firefox',
        pathRegex: '/api',
        methods: ['GET', 'HEAD'],
        headers: [
          { name: 'cookie', value: 'a=b' },
          { name: 'user-agent', value: '.*Firefox.*' },
        ],
      },
      { name: 'all', pathRegex: null, methods: null, headers: [] },
    ],
    invalid: [],
  };

  for (const version of ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4']) {
    it(`${version} normalizes to the shared shape`, () => {
      const { matchesPath, ...rest } = shape(routeGroup('g', matches, { version })) as {
        matchesPath: string;
      };
      assert.deepEqual(rest, expected);
      assert.equal(
        matchesPath,
        version === 'v1alpha1' || version === 'v1alpha2' ? 'matches' : 'spec.matches',
      );
    });
  }

  it('accepts matches in the other place too (both layouts are found in the wild)', () => {
    const underSpec = {
      ...routeGroup('g', matches, { version: 'v1alpha4' }),
      apiVersion: 'specs.smi-spec.io/v1alpha2',
    };
    const topLevel = {
      ...routeGroup('g', matches, { version: 'v1alpha2' }),
      apiVersion: 'specs.smi-spec.io/v1alpha4',
    };
    for (const raw of [underSpec, topLevel]) {
      const { matchesPath: _p, ...rest } = shape(raw) as { matchesPath: string };
      assert.deepEqual(rest, expected);
    }
  });

  it('the map and the list-of-single-key-maps header encodings are equal', () => {
    const asMap = routeGroup('g', [{ name: 'm', headers: { 'user-agent': '.*Android.*', cookie: 'x' } }]);
    const asList = routeGroup('g', [
      { name: 'm', headers: [{ 'user-agent': '.*Android.*' }, { cookie: 'x' }] },
    ]);
    assert.deepEqual(shape(asMap), shape(asList));
    const model = buildModel([asList]).model.httpRouteGroups;
    assert.deepEqual(model, [
      {
        namespace: 'default',
        name: 'g',
        matches: [
          {
            routeGroup: 'g',
            name: 'm',
            pathRegex: null,
            methods: null,
            headers: [
              { name: 'cookie', value: 'x' },
              { name: 'user-agent', value: '.*Android.*' },
            ],
          },
        ],
      },
    ]);
  });
});

describe('TCPRoute and UDPRoute versions', () => {
  it('TCPRoute v1alpha1-v1alpha3 have no ports: all ports', () => {
    for (const version of ['v1alpha1', 'v1alpha2', 'v1alpha3']) {
      const raw: Raw = {
        apiVersion: `specs.smi-spec.io/${version}`,
        kind: 'TCPRoute',
        metadata: meta('tcp'),
      };
      if (version === 'v1alpha3') raw.spec = {};
      assert.deepEqual(shape(raw), {
        kind: 'TCPRoute',
        meta: {
          namespace: 'default',
          name: 'tcp',
          labels: {},
          creationTimestamp: null,
          resourceVersion: null,
        },
        ports: null,
        matchName: null,
      });
    }
  });

  it('v1alpha4 TCPRoute and UDPRoute carry sorted, unique ports; empty means all', () => {
    const tcp = {
      apiVersion: 'specs.smi-spec.io/v1alpha4',
      kind: 'TCPRoute',
      metadata: meta('tcp'),
      spec: { matches: { name: 'db', ports: [3306, 33060, 3306] } },
    };
    const t = norm(tcp);
    assert.ok(t.kind === 'TCPRoute');
    assert.deepEqual(t.ports, [3306, 33060]);
    assert.equal(t.matchName, 'db');
    const udp = { ...tcp, kind: 'UDPRoute', spec: { matches: { ports: [] } } };
    const u = norm(udp);
    assert.ok(u.kind === 'UDPRoute');
    assert.equal(u.ports, null);
    assert.deepEqual(buildModel([tcp, udp]).model.l4Routes, [
      { kind: 'TCPRoute', namespace: 'default', name: 'tcp', ports: [3306, 33060], matchName: 'db' },
      { kind: 'UDPRoute', namespace: 'default', name: 'tcp', ports: null, matchName: null },
    ]);
  });
});

describe('core objects', () => {
  it('Service defaults: targetPort = port, protocol TCP, type ClusterIP', () => {
    assert.deepEqual(shape(service('web', { ports: [{ port: 80 }] })), {
      kind: 'Service',
      meta: { namespace: 'default', name: 'web', labels: {}, creationTimestamp: null, resourceVersion: null },
      type: 'ClusterIP',
      clusterIP: null,
      selector: { app: 'web' },
      ports: [{ name: '', port: 80, targetPort: 80, protocol: 'TCP', appProtocol: null }],
    });
  });

  it('EndpointSlice: ready defaults to true; targetRef to a Pod is kept', () => {
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: meta('web-abc', 'default', { labels: { 'kubernetes.io/service-name': 'web' } }),
      addressType: 'IPv4',
      endpoints: [
        { addresses: ['10.0.0.1'], targetRef: { kind: 'Pod', name: 'web-1', namespace: 'default' } },
        { addresses: ['10.0.0.2'], conditions: { ready: false } },
      ],
      ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    };
    const n = norm(slice);
    assert.equal(n.kind === 'EndpointSlice' && n.serviceName, 'web');
    assert.deepEqual(n.kind === 'EndpointSlice' && n.endpoints, [
      { addresses: ['10.0.0.1'], ready: true, pod: { namespace: 'default', name: 'web-1' } },
      { addresses: ['10.0.0.2'], ready: false, pod: null },
    ]);
  });

  it('Pod: service account defaults to default; readiness from the Ready condition or the phase', () => {
    const p = norm({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: meta('p'),
      status: { podIP: '10.0.0.9', phase: 'Running' },
    });
    assert.equal(p.kind === 'Pod' && p.serviceAccount, 'default');
    assert.equal(p.kind === 'Pod' && p.ready, true);
    const q = norm(pod('q', { ip: '10.0.0.8', ready: false }));
    assert.equal(q.kind === 'Pod' && q.ready, false);
    const dual = norm({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: meta('d'),
      spec: { serviceAccount: 'legacy' },
      status: { podIP: '10.0.0.7', podIPs: [{ ip: 'fd00::7' }, { ip: '10.0.0.7' }] },
    });
    assert.deepEqual(dual.kind === 'Pod' && dual.ips, ['10.0.0.7', 'fd00::7']);
    assert.equal(dual.kind === 'Pod' && dual.serviceAccount, 'legacy');
  });

  it('Namespace and MeshConfig are cluster-scoped; ServiceAccount is namespaced', () => {
    const ns = norm({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'prod', labels: { mesh: 'on' } },
    });
    assert.deepEqual(ns.meta, {
      namespace: '',
      name: 'prod',
      labels: { mesh: 'on' },
      creationTimestamp: null,
      resourceVersion: null,
    });
    const mc = norm({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'MeshConfig',
      metadata: { name: 'mesh', namespace: 'weft' },
    });
    assert.equal(mc.meta.namespace, '');
    assert.equal(norm(serviceAccount('api', 'prod')).meta.namespace, 'prod');
  });

  it('creationTimestamp is read from strings and Date objects alike', () => {
    const a = norm({
      ...serviceAccount('a'),
      metadata: meta('a', 'default', { creationTimestamp: '2024-05-01T10:00:00Z' }),
    });
    const b = norm({
      ...serviceAccount('a'),
      metadata: meta('a', 'default', { creationTimestamp: new Date(Date.UTC(2024, 4, 1, 10)) }),
    });
    assert.equal(a.meta.creationTimestamp, Date.UTC(2024, 4, 1, 10));
    assert.equal(b.meta.creationTimestamp, a.meta.creationTimestamp);
  });

  it('MeshConfig sets the settings; defaults otherwise', () => {
    assert.deepEqual(buildModel([]).model.settings, {
      trustDomain: 'cluster.local',
      permissive: false,
      clusterDomain: 'cluster.local',
      outboundPassthrough: true,
    });
    const r = buildModel([
      {
        apiVersion: 'weft.dev/v1alpha1',
        kind: 'MeshConfig',
        metadata: { name: 'mesh' },
        spec: {
          trustDomain: 'example.org',
          permissive: true,
          clusterDomain: 'k8s.internal',
          outboundPassthrough: false,
        },
      },
      pod('api', { ip: '10.0.0.1' }),
      service('api'),
    ]);
    assert.deepEqual(r.model.settings, {
      trustDomain: 'example.org',
      permissive: true,
      clusterDomain: 'k8s.internal',
      outboundPassthrough: false,
    });
    assert.equal(r.model.workloads[0]!.identity, 'spiffe://example.org/ns/default/sa/api');
    assert.equal(r.model.services[0]!.hostname, 'api.default.svc.k8s.internal');
  });

  it('List objects are expanded, including API lists whose items carry no kind', () => {
    const r = buildModel([
      { apiVersion: 'v1', kind: 'List', items: [serviceAccount('a'), serviceAccount('b')] },
      {
        apiVersion: 'v1',
        kind: 'ServiceList',
        items: [{ metadata: meta('web'), spec: { selector: { app: 'web' } } }],
      },
    ]);
    assert.deepEqual(r.conditions, []);
    assert.deepEqual(
      r.model.services.map((s) => s.name),
      ['web'],
    );
  });
});
