import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildModel, classifyPort, identityOf, type MeshModel, parseYamlObjects } from '../../src/smi';
import { fitWeights, parseQuantity, toRelativeIntegers } from '../../src/smi/quantity';
import { translateProxy } from '../../src/translate';
import {
  deepFreeze,
  deployment,
  meta,
  pod,
  type Raw,
  routeGroup,
  sa,
  service,
  serviceAccount,
  shuffled,
  split,
  target,
  tcpRoute,
  udpRoute,
} from './helpers';

/** A small mesh that uses every kind: the bookstore. */
function bookstore(): Raw[] {
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'default', labels: { 'weft.dev/mesh': 'on' } } },
    {
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'MeshConfig',
      metadata: { name: 'mesh' },
      spec: { trustDomain: 'weft.test' },
    },
    serviceAccount('bookstore'),
    serviceAccount('bookbuyer'),
    service('bookstore', {
      selector: { app: 'bookstore' },
      clusterIP: '10.96.0.10',
      ports: [
        { name: 'http', port: 80, targetPort: 'web' },
        { name: 'grpc-api', port: 9090, targetPort: 9090, appProtocol: 'grpc' },
      ],
    }),
    service('bookstore-v1', {
      selector: { app: 'bookstore', version: 'v1' },
      ports: [
        { name: 'http', port: 80, targetPort: 8080 },
        { name: 'grpc-api', port: 9090 },
        { name: 'dns', port: 53, protocol: 'UDP' },
      ],
    }),
    service('bookstore-v2', {
      selector: { app: 'bookstore', version: 'v2' },
      ports: [
        { name: 'http', port: 80, targetPort: 8081 },
        { name: 'grpc-api', port: 9090 },
      ],
    }),
    pod('bookstore-v1-a', { labels: { app: 'bookstore', version: 'v1' }, sa: 'bookstore', ip: '10.1.0.1' }),
    pod('bookstore-v1-b', {
      labels: { app: 'bookstore', version: 'v1' },
      sa: 'bookstore',
      ip: '10.1.0.2',
      ready: false,
    }),
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: meta('bookstore-v2-x', 'default', {
        labels: { 'kubernetes.io/service-name': 'bookstore-v2' },
      }),
      addressType: 'IPv4',
      endpoints: [
        {
          addresses: ['10.1.0.9'],
          conditions: { ready: true },
          targetRef: { kind: 'Pod', name: 'bookstore-v2-a' },
        },
      ],
      ports: [
        { name: 'http', port: 8081, protocol: 'TCP' },
        { name: 'grpc-api', port: 9090, protocol: 'TCP' },
        { name: 'metrics', port: 9102, protocol: 'TCP' },
      ],
    },
    deployment('bookstore-v2', { labels: { app: 'bookstore', version: 'v2' }, sa: 'bookstore' }),
    deployment('bookbuyer', { sa: 'bookbuyer' }),
    routeGroup('ab', [{ name: 'firefox', headers: [{ 'user-agent': '.*Firefox.*' }] }]),
    routeGroup('api', [
      { name: 'books', pathRegex: '/books', methods: ['GET'] },
      { name: 'buy', pathRegex: '/buy', methods: ['POST'] },
    ]),
    tcpRoute('grpc', [9090]),
    udpRoute('dns', [53]),
    split(
      'bookstore-ab',
      'bookstore',
      [
        { service: 'bookstore-v1', weight: 0 },
        { service: 'bookstore-v2', weight: 100 },
      ],
      { matches: [{ kind: 'HTTPRouteGroup', name: 'ab' }] },
    ),
    target(
      'bookstore',
      sa('bookstore'),
      [sa('bookbuyer')],
      [
        { kind: 'HTTPRouteGroup', name: 'api' },
        { kind: 'TCPRoute', name: 'grpc' },
        { kind: 'UDPRoute', name: 'dns' },
      ],
    ),
  ];
}

describe('buildModel: the bookstore', () => {
  const { model, conditions } = buildModel(bookstore());

  it('builds without conditions', () => {
    assert.deepEqual(conditions, []);
  });

  it('settings and namespaces', () => {
    assert.deepEqual(model.settings, {
      trustDomain: 'weft.test',
      permissive: false,
      clusterDomain: 'cluster.local',
      outboundPassthrough: true,
    });
    assert.deepEqual(model.namespaces, [{ name: 'default', labels: { 'weft.dev/mesh': 'on' } }]);
  });

  it('services: ports classified, endpoints from Pods (no slice) or from slices', () => {
    const [root, v1, v2] = model.services;
    assert.deepEqual(
      model.services.map((s) => s.name),
      ['bookstore', 'bookstore-v1', 'bookstore-v2'],
    );
    assert.deepEqual(root!.ports, [
      {
        name: 'http',
        port: 80,
        targetPort: 'web',
        protocol: 'TCP',
        appProtocolRaw: null,
        appProtocol: 'http',
      },
      {
        name: 'grpc-api',
        port: 9090,
        targetPort: 9090,
        protocol: 'TCP',
        appProtocolRaw: 'grpc',
        appProtocol: 'grpc',
      },
    ]);
    assert.equal(root!.clusterIP, '10.96.0.10');
    assert.equal(root!.hostname, 'bookstore.default.svc.cluster.local');
    // The root has no slice: endpoints come from the Pods its selector matches; `web` resolves to 8080.
    assert.equal(root!.endpointSource, 'Pods');
    assert.deepEqual(root!.endpoints, [
      {
        ip: '10.1.0.1',
        ready: true,
        ports: [
          { name: 'grpc-api', port: 9090, protocol: 'TCP' },
          { name: 'http', port: 8080, protocol: 'TCP' },
        ],
        workload: { kind: 'Pod', namespace: 'default', name: 'bookstore-v1-a' },
      },
      {
        ip: '10.1.0.2',
        ready: false,
        ports: [
          { name: 'grpc-api', port: 9090, protocol: 'TCP' },
          { name: 'http', port: 8080, protocol: 'TCP' },
        ],
        workload: { kind: 'Pod', namespace: 'default', name: 'bookstore-v1-b' },
      },
    ]);
    assert.deepEqual(root!.workloads, [
      { kind: 'Pod', namespace: 'default', name: 'bookstore-v1-a' },
      { kind: 'Pod', namespace: 'default', name: 'bookstore-v1-b' },
      { kind: 'Deployment', namespace: 'default', name: 'bookstore-v2' },
    ]);
    assert.equal(v1!.endpoints.length, 2);
    // v2 has a slice: its endpoints come only from there, ports not on the Service are dropped.
    assert.equal(v2!.endpointSource, 'EndpointSlice');
    assert.deepEqual(v2!.endpoints, [
      {
        ip: '10.1.0.9',
        ready: true,
        ports: [
          { name: 'grpc-api', port: 9090, protocol: 'TCP' },
          { name: 'http', port: 8081, protocol: 'TCP' },
        ],
        // The slice names a Pod that is not among the inputs.
        workload: null,
      },
    ]);
  });

  it('workloads: Pods, and a Deployment standing for its pods only when none are given', () => {
    assert.deepEqual(
      model.workloads.map((w) => [w.kind, w.name, w.identity]),
      [
        ['Deployment', 'bookbuyer', 'spiffe://weft.test/ns/default/sa/bookbuyer'],
        ['Pod', 'bookstore-v1-a', 'spiffe://weft.test/ns/default/sa/bookstore'],
        ['Pod', 'bookstore-v1-b', 'spiffe://weft.test/ns/default/sa/bookstore'],
        ['Deployment', 'bookstore-v2', 'spiffe://weft.test/ns/default/sa/bookstore'],
      ],
    );
    const v1a = model.workloads.find((w) => w.name === 'bookstore-v1-a')!;
    assert.deepEqual(v1a.ips, ['10.1.0.1']);
    assert.deepEqual(v1a.services, [
      { namespace: 'default', name: 'bookstore' },
      { namespace: 'default', name: 'bookstore-v1' },
    ]);
    assert.deepEqual(v1a.labels, { app: 'bookstore', version: 'v1' });
  });

  it('splits: matches resolved to concrete HTTP matches', () => {
    assert.deepEqual(model.splits, [
      {
        namespace: 'default',
        name: 'bookstore-ab',
        rootService: 'bookstore',
        backends: [
          { service: 'bookstore-v1', weight: 0, ports: [80, 9090] },
          { service: 'bookstore-v2', weight: 100, ports: [80, 9090] },
        ],
        matches: [
          {
            routeGroup: 'ab',
            name: 'firefox',
            pathRegex: null,
            methods: null,
            headers: [{ name: 'user-agent', value: '.*Firefox.*' }],
          },
        ],
      },
    ]);
  });

  it('access: a rule without matches means all of the group; L4 rules carry ports', () => {
    assert.deepEqual(model.access, [
      {
        namespace: 'default',
        name: 'bookstore',
        destination: {
          namespace: 'default',
          serviceAccount: 'bookstore',
          identity: 'spiffe://weft.test/ns/default/sa/bookstore',
        },
        destinationPort: null,
        destinationInboundPorts: null,
        sources: [
          {
            namespace: 'default',
            serviceAccount: 'bookbuyer',
            identity: 'spiffe://weft.test/ns/default/sa/bookbuyer',
          },
        ],
        peerIdentities: [],
        rules: [
          {
            kind: 'HTTPRouteGroup',
            name: 'api',
            matches: [
              { routeGroup: 'api', name: 'books', pathRegex: '/books', methods: ['GET'], headers: [] },
              { routeGroup: 'api', name: 'buy', pathRegex: '/buy', methods: ['POST'], headers: [] },
            ],
          },
          { kind: 'TCPRoute', name: 'grpc', ports: [9090], inboundPorts: [9090] },
          { kind: 'UDPRoute', name: 'dns', ports: [53], inboundPorts: [53] },
        ],
      },
    ]);
  });

  it('route groups and L4 routes are in the model', () => {
    assert.deepEqual(
      model.httpRouteGroups.map((g) => g.name),
      ['ab', 'api'],
    );
    assert.deepEqual(
      model.l4Routes.map((r) => [r.kind, r.name, r.ports]),
      [
        ['TCPRoute', 'grpc', [9090]],
        ['UDPRoute', 'dns', [53]],
      ],
    );
  });
});

describe('buildModel: rules', () => {
  it('classifies ports: UDP, then appProtocol, then the port-name prefix, else tcp', () => {
    const cases: [protocol: 'TCP' | 'UDP', name: string, app: string | null, expected: string][] = [
      ['UDP', 'http', 'http', 'udp'],
      ['TCP', 'tcp', 'HTTP', 'http'],
      ['TCP', 'x', 'kubernetes.io/h2c', 'http'],
      ['TCP', 'http', 'https', 'tcp'],
      ['TCP', 'http', 'grpc', 'grpc'],
      ['TCP', 'http', null, 'http'],
      ['TCP', 'http-web', null, 'http'],
      ['TCP', 'HTTP2', null, 'http'],
      ['TCP', 'h2c-x', null, 'http'],
      ['TCP', 'grpc', null, 'grpc'],
      ['TCP', 'grpc-api', null, 'grpc'],
      ['TCP', 'https', null, 'tcp'],
      ['TCP', 'httpbin', null, 'tcp'],
      ['TCP', 'tcp-db', null, 'tcp'],
      ['TCP', '', null, 'tcp'],
    ];
    for (const [protocol, name, app, want] of cases) {
      assert.equal(classifyPort(protocol, name, app), want, `${protocol} ${name} ${app}`);
    }
  });

  it('identityOf builds a SPIFFE ID', () => {
    assert.equal(identityOf('prod', 'api', 'example.org'), 'spiffe://example.org/ns/prod/sa/api');
  });

  it('headless services have no cluster IP; finished pods are no endpoints', () => {
    const { model } = buildModel([
      service('db', { clusterIP: 'None' }),
      pod('db-0', { labels: { app: 'db' }, ip: '10.0.0.1', ports: [] }),
      pod('db-old', { labels: { app: 'db' }, ip: '10.0.0.2', phase: 'Succeeded' }),
    ]);
    const [db] = model.services;
    assert.equal(db!.clusterIP, null);
    assert.equal(db!.headless, true);
    assert.deepEqual(
      db!.endpoints.map((e) => e.ip),
      ['10.0.0.1'],
    );
  });

  it('malformed ownerReferences or nodeName (read by TrafficMetrics only) leave the Pod in, as a workload', () => {
    const odd = (name: string, metadata: Raw, spec: Raw): Raw => {
      const p = pod(name, { labels: { app: 'db' }, ip: name === 'db-0' ? '10.0.0.1' : '10.0.0.2' });
      return {
        ...p,
        metadata: { ...(p.metadata as Raw), ...metadata },
        spec: { ...(p.spec as Raw), ...spec },
      };
    };
    const { model, conditions } = buildModel([
      service('db'),
      odd('db-0', { ownerReferences: [{ kind: 'ReplicaSet' }] }, { nodeName: 7 }),
      odd('db-1', { ownerReferences: [{ kind: 'ReplicaSet', name: 'db-5d9f', controller: 'true' }] }, {}),
    ]);
    assert.deepEqual(conditions, []);
    assert.deepEqual(
      model.workloads.map((w) => [w.name, w.ips, w.services.map((s) => s.name), w.owner, w.node]),
      [
        ['db-0', ['10.0.0.1'], ['db'], undefined, undefined],
        ['db-1', ['10.0.0.2'], ['db'], undefined, undefined],
      ],
    );
    assert.deepEqual(
      model.services[0]!.endpoints.map((e) => e.ip),
      ['10.0.0.1', '10.0.0.2'],
    );
    // And the workload gets its config: its inbound listener serves the db port.
    const r = translateProxy(model, {
      workload: { kind: 'Pod', namespace: 'default', name: 'db-0' },
      flavor: 'envoy',
      mtls: true,
    });
    const inbound = r.resources.listeners.find((l) => l.name === 'inbound') as Raw | undefined;
    assert.ok(((inbound?.filter_chains as Raw[] | undefined) ?? []).length > 0, 'inbound chains');
  });

  it('a service without a selector takes endpoints only from slices', () => {
    const { model } = buildModel([
      service('ext', { selector: null }),
      pod('p', { labels: { app: 'ext' }, ip: '10.0.0.1' }),
    ]);
    assert.equal(model.services[0]!.endpointSource, 'None');
    assert.deepEqual(model.services[0]!.workloads, []);
  });

  it('slices of one service merge by IP and find workloads by targetRef or IP', () => {
    const slice = (name: string, endpoints: Raw[], port: number): Raw => ({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: meta(name, 'default', { labels: { 'kubernetes.io/service-name': 'web' } }),
      addressType: 'IPv4',
      endpoints,
      ports: [{ name: 'http', port }],
    });
    const { model } = buildModel([
      service('web'),
      pod('web-1', { ip: '10.0.0.1', labels: { app: 'web' } }),
      slice('web-a', [{ addresses: ['10.0.0.1'], conditions: { ready: false } }], 8080),
      slice(
        'web-b',
        [{ addresses: ['10.0.0.1'] }, { addresses: ['10.0.0.2'], targetRef: { name: 'gone' } }],
        8080,
      ),
    ]);
    assert.deepEqual(model.services[0]!.endpoints, [
      {
        ip: '10.0.0.1',
        ready: true,
        ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
        workload: { kind: 'Pod', namespace: 'default', name: 'web-1' },
      },
      { ip: '10.0.0.2', ready: true, ports: [{ name: 'http', port: 8080, protocol: 'TCP' }], workload: null },
    ]);
  });

  it('split: duplicate backends add up; backends sorted by name; FQDN root accepted', () => {
    const { model } = buildModel([
      service('web'),
      service('b'),
      service('a'),
      split('s', 'web.default.svc', [
        { service: 'b', weight: 1 },
        { service: 'a', weight: 2 },
        { service: 'b', weight: 3 },
      ]),
    ]);
    assert.deepEqual(model.splits[0]!.backends, [
      { service: 'a', weight: 2, ports: [80] },
      { service: 'b', weight: 4, ports: [80] },
    ]);
  });

  it('split: oldest wins, ties broken by name, objects without a timestamp count as newest', () => {
    const objects = [
      service('web'),
      service('a'),
      split('zeta', 'web', [{ service: 'a', weight: 1 }], { created: '2024-01-01T00:00:00Z' }),
      split('alpha', 'web', [{ service: 'a', weight: 1 }], { created: '2024-01-01T00:00:00Z' }),
      split('older-but-no-time', 'web', [{ service: 'a', weight: 1 }]),
    ];
    const { model, conditions } = buildModel(objects);
    assert.deepEqual(
      model.splits.map((s) => s.name),
      ['alpha'],
    );
    assert.deepEqual(
      conditions.map((c) => [c.object, c.reason]),
      [
        ['TrafficSplit/default/older-but-no-time', 'SplitConflict'],
        ['TrafficSplit/default/zeta', 'SplitConflict'],
      ],
    );
  });

  it('access: duplicate rules merge; sources de-duplicate; cross-namespace sources keep their namespace', () => {
    const { model } = buildModel([
      pod('api', { ip: '10.0.0.1' }),
      pod('web', { ip: '10.0.0.2', ns: 'front' }),
      routeGroup('r', [{ name: 'a' }, { name: 'b' }]),
      target(
        't',
        sa('api'),
        [sa('web', 'front'), sa('web', 'front')],
        [
          { kind: 'HTTPRouteGroup', name: 'r', matches: ['b'] },
          { kind: 'HTTPRouteGroup', name: 'r', matches: ['a'] },
        ],
      ),
    ]);
    const [t] = model.access;
    assert.deepEqual(t!.sources, [
      { namespace: 'front', serviceAccount: 'web', identity: 'spiffe://cluster.local/ns/front/sa/web' },
    ]);
    assert.deepEqual(t!.rules.length, 1);
    assert.deepEqual(t!.rules[0]!.kind === 'HTTPRouteGroup' && t!.rules[0]!.matches.map((m) => m.name), [
      'a',
      'b',
    ]);
  });
});

describe('buildModel: access ports', () => {
  it('a route or destination port may be a Service port or a container port: both are served', () => {
    const { model, conditions } = buildModel([
      pod('api', { ip: '10.0.0.1', ports: [{ name: 'web', containerPort: 8080 }] }),
      service('api', {
        ports: [
          { name: 'http', port: 80, targetPort: 'web' },
          { name: 'admin', port: 9000, targetPort: 9001 },
        ],
      }),
      tcpRoute('svc-port', [80]),
      tcpRoute('container-port', [9001]),
      tcpRoute('all'),
      target(
        't',
        { ...sa('api'), port: 9000 },
        [sa('api')],
        [
          { kind: 'TCPRoute', name: 'svc-port' },
          { kind: 'TCPRoute', name: 'container-port' },
          { kind: 'TCPRoute', name: 'all' },
        ],
      ),
    ]);
    assert.deepEqual(conditions, []);
    const [t] = model.access;
    assert.equal(t!.destinationPort, 9000);
    assert.deepEqual(t!.destinationInboundPorts, [9000, 9001]);
    assert.deepEqual(
      t!.rules.map((r) => r.kind !== 'HTTPRouteGroup' && [r.name, r.ports, r.inboundPorts]),
      [
        ['all', null, null],
        ['container-port', [9001], [9001]],
        ['svc-port', [80], [80, 8080]],
      ],
    );
  });
});

describe('buildModel: purity and determinism', () => {
  it('works on deep-frozen input and leaves it unchanged', () => {
    const input = bookstore();
    const before = JSON.stringify(input);
    const frozen = deepFreeze(bookstore());
    const a = buildModel(frozen);
    assert.equal(JSON.stringify(frozen), before);
    assert.deepEqual(a, buildModel(input));
  });

  it('the same input gives deep-equal output', () => {
    assert.deepEqual(buildModel(bookstore()), buildModel(bookstore()));
  });

  it('shuffled input gives identical output, conditions included', () => {
    // Include objects that produce conditions so their order is exercised too.
    const objects = [
      ...bookstore(),
      split('late', 'bookstore', [{ service: 'bookstore-v1', weight: 1 }], {
        created: '2030-01-01T00:00:00Z',
      }),
      split('bad', 'nope', [{ service: 'x', weight: 1 }]),
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('cfg') },
      serviceAccount('bookstore'),
    ];
    const expected = JSON.stringify(buildModel(objects));
    for (let seed = 1; seed <= 10; seed++) {
      assert.equal(JSON.stringify(buildModel(shuffled(objects, seed))), expected, `seed ${seed}`);
    }
  });

  it('the model is plain JSON: a round trip is deep-equal', () => {
    const r = buildModel(bookstore());
    assert.deepEqual(JSON.parse(JSON.stringify(r)), r);
  });

  it('never throws on garbage', () => {
    const garbage: unknown[] = [
      null,
      undefined,
      'text',
      [],
      { kind: 'TrafficSplit' },
      { apiVersion: 'split.smi-spec.io/v1alpha4', kind: 'TrafficSplit', metadata: { name: 5 } },
      { apiVersion: 'split.smi-spec.io/v1alpha4', kind: 'TrafficSplit', metadata: { name: 's' }, spec: null },
      { apiVersion: 'v1', kind: 'List', items: 'nope' },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'p', labels: { a: 1 } } },
    ];
    const r = buildModel(garbage);
    assert.equal(r.model.services.length, 0);
    assert.ok(r.conditions.length >= garbage.length - 1);
  });
});

describe('buildModel: a 50-service mesh', () => {
  function mesh(): Raw[] {
    const objects: Raw[] = [];
    for (let i = 0; i < 50; i++) {
      const name = `svc-${String(i).padStart(2, '0')}`;
      objects.push(serviceAccount(name));
      objects.push(service(name, { clusterIP: `10.96.0.${i + 1}` }));
      objects.push(service(`${name}-v1`, { selector: { app: name, version: 'v1' } }));
      objects.push(service(`${name}-v2`, { selector: { app: name, version: 'v2' } }));
      for (let r = 0; r < 3; r++) {
        objects.push(
          pod(`${name}-${r}`, {
            labels: { app: name, version: r === 2 ? 'v2' : 'v1' },
            sa: name,
            ip: `10.1.${i}.${r + 1}`,
          }),
        );
      }
      objects.push(
        split(`${name}-canary`, name, [
          { service: `${name}-v1`, weight: 90 },
          { service: `${name}-v2`, weight: 10 },
        ]),
      );
      objects.push(routeGroup(`${name}-routes`, [{ name: 'all', pathRegex: '/', methods: ['*'] }]));
      const caller = `svc-${String((i + 1) % 50).padStart(2, '0')}`;
      objects.push(
        target(
          `${name}-access`,
          sa(name),
          [sa(caller)],
          [{ kind: 'HTTPRouteGroup', name: `${name}-routes` }],
        ),
      );
    }
    return objects;
  }

  it('builds every service, workload, split and access rule without conditions', () => {
    const { model, conditions }: { model: MeshModel; conditions: unknown[] } = buildModel(mesh());
    assert.deepEqual(conditions, []);
    assert.equal(model.services.length, 150);
    assert.equal(model.workloads.length, 150);
    assert.equal(model.splits.length, 50);
    assert.equal(model.access.length, 50);
    assert.equal(model.services.find((s) => s.name === 'svc-07')!.endpoints.length, 3);
    assert.deepEqual(
      model.splits.find((s) => s.rootService === 'svc-49')!.backends.map((b) => [b.service, b.weight]),
      [
        ['svc-49-v1', 90],
        ['svc-49-v2', 10],
      ],
    );
    assert.deepEqual(buildModel(shuffled(mesh(), 7)), buildModel(mesh()));
  });
});

describe('quantities', () => {
  it('parses Kubernetes quantities exactly', () => {
    assert.deepEqual(parseQuantity('500m'), { num: 1n, den: 2n });
    assert.deepEqual(parseQuantity(1), { num: 1n, den: 1n });
    assert.deepEqual(parseQuantity(0.25), { num: 1n, den: 4n });
    assert.deepEqual(parseQuantity('1.5k'), { num: 1500n, den: 1n });
    assert.deepEqual(parseQuantity('2Ki'), { num: 2048n, den: 1n });
    assert.deepEqual(parseQuantity('1e3'), { num: 1000n, den: 1n });
    assert.deepEqual(parseQuantity('.5'), { num: 1n, den: 2n });
    assert.deepEqual(parseQuantity('+3n'), { num: 3n, den: 1_000_000_000n });
    assert.deepEqual(parseQuantity('-0'), { num: 0n, den: 1n });
    for (const bad of ['-1', 'abc', '1x', '', '1e999', 'Ki']) assert.equal(parseQuantity(bad), null, bad);
    assert.equal(parseQuantity(Number.NaN), null);
  });

  it('turns fractions into the smallest integers with the same ratios', () => {
    const q = (s: string) => parseQuantity(s)!;
    assert.deepEqual(toRelativeIntegers([q('500m'), q('1')]), [1n, 2n]);
    assert.deepEqual(toRelativeIntegers([q('50m'), q('50m')]), [1n, 1n]);
    assert.deepEqual(toRelativeIntegers([q('0'), q('0')]), [0n, 0n]);
    assert.deepEqual(toRelativeIntegers([q('333m'), q('1')]), [333n, 1000n]);
  });

  it('fits weights into uint32 by rescaling only when needed', () => {
    assert.deepEqual(fitWeights([1n, 2n]), { weights: [1, 2], rescaled: false });
    assert.deepEqual(fitWeights([1n, 10n ** 12n, 0n]), { weights: [1, 1_000_000, 0], rescaled: true });
  });
});

describe('parseYamlObjects', () => {
  it('reads every mapping document, skips empty ones', () => {
    const r = parseYamlObjects('---\n# only a comment\n---\na: 1\n---\n---\nb: 2\n', 'x.yaml');
    assert.deepEqual(r, { objects: [{ a: 1 }, { b: 2 }], conditions: [], parseErrors: [] });
    assert.deepEqual(parseYamlObjects('', 'empty.yaml'), { objects: [], conditions: [], parseErrors: [] });
  });

  it('duplicate keys are a parse error naming the line', () => {
    const r = parseYamlObjects('kind: a\nkind: b\n', 'dup.yaml');
    assert.deepEqual(r.objects, []);
    assert.equal(
      r.conditions[0]!.message,
      'File dup.yaml: document 1 is not valid YAML at line 2, column 1: Map keys must be unique; the document is left out; fix the YAML there',
    );
    assert.deepEqual(r.parseErrors, [{ document: 1, line: 2, column: 1, reason: 'Map keys must be unique' }]);
  });

  it('feeds buildModel end to end', () => {
    const text = [
      'apiVersion: v1',
      'kind: Service',
      'metadata: {name: web, namespace: shop}',
      'spec: {selector: {app: web}, ports: [{name: http, port: 80}]}',
      '---',
      'apiVersion: v1',
      'kind: Service',
      'metadata: {name: web-v1, namespace: shop}',
      'spec: {selector: {app: web, version: v1}, ports: [{name: http, port: 80}]}',
      '---',
      'apiVersion: split.smi-spec.io/v1alpha1',
      'kind: TrafficSplit',
      'metadata: {name: s, namespace: shop}',
      'spec:',
      '  service: web',
      '  backends: [{service: web-v1, weight: 500m}]',
    ].join('\n');
    const { objects, conditions } = parseYamlObjects(text, 'shop.yaml');
    assert.deepEqual(conditions, []);
    const r = buildModel(objects);
    assert.deepEqual(r.conditions, []);
    assert.deepEqual(r.model.splits[0]!.backends, [{ service: 'web-v1', weight: 1, ports: [80] }]);
  });
});
