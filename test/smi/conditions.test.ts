import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { FolderSource } from '../../src/inputs/folder-source';
import { LastGoodObjects } from '../../src/inputs/last-good';
import { captureLogs } from '../../src/log';
import { buildModel, type Condition, parseYamlObjects, REASONS } from '../../src/smi';
import { translateProxy } from '../../src/translate';
import {
  binding,
  ib,
  meta,
  pod,
  type Raw,
  routeGroup,
  sa,
  service,
  serviceAccount,
  split,
  target,
  tcpRoute,
} from './helpers';

/** Every reason some test below produced; the last test checks that this is all of them. */
const seen = new Set<string>();

function record(conditions: readonly Condition[]): readonly Condition[] {
  for (const c of conditions) seen.add(c.reason);
  return conditions;
}

/** The conditions of one reason that building `objects` produces. */
function conditionsFor(objects: readonly unknown[], reason: string): Condition[] {
  return record(buildModel(objects).conditions).filter((c) => c.reason === reason);
}

type Expected = [
  object: string,
  type: string,
  status: 'True' | 'False',
  severity: 'Error' | 'Warning',
  reason: string,
  field: string | undefined,
  message: string,
];

function expected(...rows: Expected[]): Condition[] {
  return rows.map(([object, type, status, severity, reason, field, message]) =>
    field === undefined
      ? { object, type, status, severity, reason, message }
      : { object, type, status, severity, reason, field, message },
  );
}

const slice = (name: string, labels: Record<string, string>, addressType = 'IPv4'): Raw => ({
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: meta(name, 'default', { labels }),
  addressType,
  endpoints: [{ addresses: addressType === 'FQDN' ? ['a.example.com'] : ['10.0.0.1'] }],
});

const meshConfig = (name: string, created: string, spec: Raw = {}): Raw => ({
  apiVersion: 'weft.dev/v1alpha1',
  kind: 'MeshConfig',
  metadata: { name, creationTimestamp: created },
  spec,
});

describe('conditions: reading objects', () => {
  it('YamlParseError and InvalidObject from YAML name the file, document and line', () => {
    const text =
      'apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n---\n- x\n---\nb: [\n---\n"str"\n';
    const { objects, conditions } = parseYamlObjects(text, 'mesh.yaml');
    record(conditions);
    assert.deepEqual(objects, [{ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'a' } }]);
    assert.deepEqual(
      conditions,
      expected(
        [
          'File//mesh.yaml',
          'Accepted',
          'False',
          'Error',
          'InvalidObject',
          'documents[1]',
          'File mesh.yaml: document 2 (line 5) is a list, not a Kubernetes object (a mapping with apiVersion, kind and metadata.name); the document is left out; fix or remove it',
        ],
        [
          'File//mesh.yaml',
          'Accepted',
          'False',
          'Error',
          'YamlParseError',
          'documents[2]',
          'File mesh.yaml: document 3 is not valid YAML at line 8, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]; the document is left out; fix the YAML there',
        ],
        [
          'File//mesh.yaml',
          'Accepted',
          'False',
          'Error',
          'InvalidObject',
          'documents[3]',
          'File mesh.yaml: document 4 (line 9) is "str", not a Kubernetes object (a mapping with apiVersion, kind and metadata.name); the document is left out; fix or remove it',
        ],
      ),
    );
  });

  it('InvalidObject: not a mapping, or missing apiVersion, kind or metadata.name', () => {
    assert.deepEqual(
      conditionsFor(
        [
          42,
          { apiVersion: 'v1', kind: 'Service', metadata: {} },
          { kind: 'Pod', metadata: { name: 'x' } },
          { apiVersion: 'v1', metadata: { name: 'y' } },
        ],
        'InvalidObject',
      ),
      expected(
        [
          'Pod/default/x',
          'Accepted',
          'False',
          'Error',
          'InvalidObject',
          'apiVersion',
          'Pod default/x: apiVersion is missing or empty (got nothing); every object needs apiVersion, kind and metadata.name',
        ],
        [
          'Service/default/',
          'Accepted',
          'False',
          'Error',
          'InvalidObject',
          'metadata.name',
          'Service default/: metadata.name is missing or empty (got nothing); every object needs apiVersion, kind and metadata.name',
        ],
        [
          'Unknown//',
          'Accepted',
          'False',
          'Error',
          'InvalidObject',
          undefined,
          'An input is 42 where a Kubernetes object (a mapping with apiVersion, kind and metadata.name) was expected; remove it or fix it',
        ],
        [
          'Unknown/default/y',
          'Accepted',
          'False',
          'Error',
          'InvalidObject',
          'kind',
          'Unknown default/y: kind is missing or empty (got nothing); every object needs apiVersion, kind and metadata.name',
        ],
      ),
    );
  });

  it('UnknownKind is a warning; the object is ignored', () => {
    assert.deepEqual(
      conditionsFor([{ apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('cfg') }], 'UnknownKind'),
      expected([
        'ConfigMap/default/cfg',
        'Accepted',
        'False',
        'Warning',
        'UnknownKind',
        'kind',
        'ConfigMap default/cfg: kind ConfigMap (v1) is not read by Weft and is ignored; remove it from the input if it was meant for the mesh',
      ]),
    );
  });

  it('UnsupportedVersion lists the served versions', () => {
    assert.deepEqual(
      conditionsFor(
        [
          { apiVersion: 'split.smi-spec.io/v1alpha5', kind: 'TrafficSplit', metadata: meta('s'), spec: {} },
          { apiVersion: 'specs.smi-spec.io/v1alpha3', kind: 'UDPRoute', metadata: meta('u') },
        ],
        'UnsupportedVersion',
      ),
      expected(
        [
          'TrafficSplit/default/s',
          'Accepted',
          'False',
          'Error',
          'UnsupportedVersion',
          'apiVersion',
          'TrafficSplit default/s: apiVersion split.smi-spec.io/v1alpha5 is not served for TrafficSplit; the object is left out; use one of split.smi-spec.io/v1alpha1, split.smi-spec.io/v1alpha2, split.smi-spec.io/v1alpha3, split.smi-spec.io/v1alpha4',
        ],
        [
          'UDPRoute/default/u',
          'Accepted',
          'False',
          'Error',
          'UnsupportedVersion',
          'apiVersion',
          'UDPRoute default/u: apiVersion specs.smi-spec.io/v1alpha3 is not served for UDPRoute; the object is left out; use specs.smi-spec.io/v1alpha4',
        ],
      ),
    );
  });

  it('InvalidSpec names the first bad field, its value and how many more there are', () => {
    assert.deepEqual(
      conditionsFor(
        [
          split(
            's',
            'web',
            [
              { service: 'a', weight: 1.5 },
              { service: '', weight: -1 },
            ],
            { version: 'v1alpha2' },
          ),
          split('q', 'web', [{ service: 'a', weight: '-1' }], { version: 'v1alpha1' }),
          meshConfig('m', '2024-01-01T00:00:00Z', { trustDomain: 'Bad Domain' }),
          routeGroup('g', [{ name: 'm', methods: ['FETCH'] }]),
          routeGroup('g2', [{ name: 'm', headers: 'x' }]),
          routeGroup('g3', [], { version: 'v1alpha1' }),
          { apiVersion: 'specs.smi-spec.io/v1alpha4', kind: 'HTTPRouteGroup', metadata: meta('g4') },
          service('svc', { ports: [{ port: 70000 }] }),
        ],
        'InvalidSpec',
      ),
      expected(
        [
          'HTTPRouteGroup/default/g',
          'Accepted',
          'False',
          'Error',
          'InvalidSpec',
          'spec.matches[0].methods[0]',
          'HTTPRouteGroup default/g: spec.matches[0].methods[0] must be one of *, GET, HEAD, PUT, POST, DELETE, CONNECT, OPTIONS, TRACE, PATCH, not "FETCH"; the object is left out; fix it to match specs.smi-spec.io/v1alpha4 HTTPRouteGroup',
        ],
        [
          'HTTPRouteGroup/default/g2',
          'Accepted',
          'False',
          'Error',
          'InvalidSpec',
          'spec.matches[0].headers',
          'HTTPRouteGroup default/g2: spec.matches[0].headers must be a map of header name to regex, or a list of such maps, not "x"; the object is left out; fix it to match specs.smi-spec.io/v1alpha4 HTTPRouteGroup',
        ],
        [
          'HTTPRouteGroup/default/g4',
          'Accepted',
          'False',
          'Error',
          'InvalidSpec',
          'spec',
          'HTTPRouteGroup default/g4: spec is required; the object is left out; fix it to match specs.smi-spec.io/v1alpha4 HTTPRouteGroup',
        ],
        [
          'MeshConfig//m',
          'Accepted',
          'False',
          'Error',
          'InvalidSpec',
          'spec.trustDomain',
          'MeshConfig m: spec.trustDomain must be a lower-case domain such as cluster.local, not "Bad Domain"; the object is left out; fix it to match weft.dev/v1alpha1 MeshConfig',
        ],
        [
          'Service/default/svc',
          'Accepted',
          'False',
          'Error',
          'InvalidSpec',
          'spec.ports[0].port',
          'Service default/svc: spec.ports[0].port must be at most 65535, not 70000; the object is left out; fix it to match v1 Service',
        ],
        [
          'TrafficSplit/default/q',
          'Accepted',
          'False',
          'Error',
          'InvalidSpec',
          'spec.backends[0].weight',
          'TrafficSplit default/q: spec.backends[0].weight must be a non-negative Kubernetes quantity such as 500m or 1, not "-1"; the object is left out; fix it to match split.smi-spec.io/v1alpha1 TrafficSplit',
        ],
        [
          'TrafficSplit/default/s',
          'Accepted',
          'False',
          'Error',
          'InvalidSpec',
          'spec.backends[0].weight',
          'TrafficSplit default/s: spec.backends[0].weight must be a whole number, not 1.5 (and 2 more problems); the object is left out; fix it to match split.smi-spec.io/v1alpha2 TrafficSplit',
        ],
      ),
    );
  });

  it('DuplicateObject: newest apiVersion, then highest resourceVersion, wins', () => {
    const r = buildModel([
      serviceAccount('a'),
      {
        ...serviceAccount('a'),
        metadata: meta('a', 'default', { resourceVersion: '7', labels: { v: '7' } }),
      },
      split('s', 'web', [{ service: 'web', weight: 1 }], { version: 'v1alpha2' }),
      split('s', 'web', [{ service: 'web', weight: 2 }], { version: 'v1alpha4' }),
      service('web'),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions.filter((c) => c.reason === 'DuplicateObject'),
      expected(
        [
          'ServiceAccount/default/a',
          'Accepted',
          'True',
          'Warning',
          'DuplicateObject',
          undefined,
          'ServiceAccount default/a: given 2 times (v1, v1); all copies are v1; the one with resourceVersion 7 (the newest) is used; remove the other copies',
        ],
        [
          'TrafficSplit/default/s',
          'Accepted',
          'True',
          'Warning',
          'DuplicateObject',
          undefined,
          'TrafficSplit default/s: given 2 times (split.smi-spec.io/v1alpha2, split.smi-spec.io/v1alpha4); the split.smi-spec.io/v1alpha4 copy (the newest version) is used; remove the other copies',
        ],
      ),
    );
    assert.equal(r.model.splits[0]!.backends[0]!.weight, 2);
  });

  it('DuplicateObject: copies of the same version are not told apart by that version', () => {
    const r = buildModel([
      split('s', 'web', [{ service: 'web', weight: 1 }]),
      split('s', 'web', [{ service: 'web', weight: 2 }]),
      split('t', 'web', [{ service: 'web', weight: 1 }]),
      split('t', 'web', [{ service: 'web', weight: 1 }]),
      service('web'),
    ]);
    const messages = record(r.conditions)
      .filter((c) => c.reason === 'DuplicateObject')
      .map((c) => c.message);
    assert.deepEqual(messages, [
      'TrafficSplit default/s: given 2 times (split.smi-spec.io/v1alpha4, split.smi-spec.io/v1alpha4); all copies are split.smi-spec.io/v1alpha4 with nothing to tell which is newer; the one whose content sorts first is used; remove the other copies',
      'TrafficSplit default/t: given 2 times (split.smi-spec.io/v1alpha4, split.smi-spec.io/v1alpha4); all copies are split.smi-spec.io/v1alpha4 and the same; either one is used; remove the other copies',
    ]);
  });

  it('MeshConfigConflict: the oldest MeshConfig is used', () => {
    const r = buildModel([
      meshConfig('b', '2024-01-01T00:00:00Z'),
      meshConfig('a', '2024-02-01T00:00:00Z', { permissive: true }),
    ]);
    record(r.conditions);
    assert.equal(r.model.settings.permissive, false);
    assert.deepEqual(
      r.conditions,
      expected([
        'MeshConfig//a',
        'Conflicted',
        'True',
        'Error',
        'MeshConfigConflict',
        undefined,
        'MeshConfig a: MeshConfig b is older (or as old and first by name) and is the one used; a mesh has one MeshConfig; delete this one or merge its settings into b',
      ]),
    );
  });
});

describe('conditions: services and endpoints', () => {
  it('MissingClusterIP: reported by Envoy translation only, once per Service, not by the model', () => {
    const objects = [
      pod('client', { ip: '10.0.0.1' }),
      pod('web', { ip: '10.0.0.2' }),
      service('web'),
      service('api', { selector: { app: 'web' }, clusterIP: '10.96.0.20' }),
      tcpRoute('all'),
      target('web', sa('web'), [sa('client')], [{ kind: 'TCPRoute', name: 'all' }]),
    ];
    const { model, conditions } = buildModel(objects);
    assert.deepEqual(record(conditions), []);
    const workload = { kind: 'Pod' as const, namespace: 'default', name: 'client' };
    assert.deepEqual(translateProxy(model, { workload, flavor: 'grpc' }).conditions, []);
    const envoy = translateProxy(model, { workload, flavor: 'envoy' });
    assert.deepEqual(
      record(envoy.conditions),
      expected([
        'Service/default/web',
        'Accepted',
        'True',
        'Error',
        'MissingClusterIP',
        'spec.clusterIP',
        'Service default/web: has no spec.clusterIP, so Envoy sidecars cannot route calls to it (they match a call by the address the app dials; proxyless gRPC clients are not affected); set spec.clusterIP to the address clients dial (the API server allocates one in a cluster), or clusterIP: None for a headless Service',
      ]),
    );
    // The Service with a cluster IP is routed: its chain is there, the other's is not.
    const chains = (
      envoy.resources.listeners.find((l) => l.name === 'outbound')!.filter_chains as { name: string }[]
    ).map((c) => c.name);
    assert.deepEqual(chains, ['outbound|80|default/api']);
  });

  it('UnsupportedProtocol: an SCTP port is dropped, the others stay', () => {
    const objects = [
      service('sig', {
        ports: [
          { name: 'sctp', port: 9000, protocol: 'SCTP' },
          { name: 'http', port: 80 },
        ],
      }),
    ];
    assert.deepEqual(
      conditionsFor(objects, 'UnsupportedProtocol'),
      expected([
        'Service/default/sig',
        'Accepted',
        'True',
        'Error',
        'UnsupportedProtocol',
        'spec.ports[0].protocol',
        'Service default/sig: spec.ports[0] (port 9000) uses SCTP, which Weft does not proxy, so the port is not served; use TCP or UDP',
      ]),
    );
    assert.deepEqual(
      buildModel(objects).model.services[0]!.ports.map((p) => p.port),
      [80],
    );
  });

  it('UnresolvedTargetPort: a named targetPort a Pod lacks', () => {
    assert.deepEqual(
      conditionsFor(
        [
          service('web', { ports: [{ name: 'http', port: 80, targetPort: 'http-web' }] }),
          pod('web-2', { labels: { app: 'web' }, ip: '10.0.0.2' }),
          pod('web-1', { labels: { app: 'web' }, ip: '10.0.0.1' }),
        ],
        'UnresolvedTargetPort',
      ),
      expected([
        'Service/default/web',
        'ResolvedRefs',
        'False',
        'Error',
        'UnresolvedTargetPort',
        'spec.ports[0].targetPort',
        'Service default/web: spec.ports[0].targetPort "http-web" names no TCP container port of Pod default/web-1 (and 1 more Pod), so port 80 is not served there; add a container port named "http-web" or use a port number',
      ]),
    );
  });

  it('EndpointSlice problems: no service label, unknown Service, FQDN addresses', () => {
    const objects = [
      service('web'),
      slice('nolabel', {}),
      slice('other-x', { 'kubernetes.io/service-name': 'other' }),
      slice('web-fqdn', { 'kubernetes.io/service-name': 'web' }, 'FQDN'),
    ];
    const r = buildModel(objects);
    record(r.conditions);
    assert.deepEqual(
      r.conditions,
      expected(
        [
          'EndpointSlice/default/nolabel',
          'Accepted',
          'False',
          'Warning',
          'EndpointSliceMissingServiceName',
          'metadata.labels["kubernetes.io/service-name"]',
          'EndpointSlice default/nolabel: has no kubernetes.io/service-name label, so it belongs to no Service and is ignored; add the label naming its Service',
        ],
        [
          'EndpointSlice/default/other-x',
          'ResolvedRefs',
          'False',
          'Warning',
          'EndpointSliceServiceNotFound',
          'metadata.labels["kubernetes.io/service-name"]',
          'EndpointSlice default/other-x: label kubernetes.io/service-name names "other", which is not a Service in namespace default, so the slice is ignored; create the Service or fix the label',
        ],
        [
          'EndpointSlice/default/web-fqdn',
          'Accepted',
          'False',
          'Error',
          'UnsupportedAddressType',
          'addressType',
          'EndpointSlice default/web-fqdn: addressType FQDN is not supported, so its endpoints are not served; use IPv4 or IPv6 addresses',
        ],
      ),
    );
    assert.deepEqual(r.model.services[0]!.endpoints, []);
    assert.equal(r.model.services[0]!.endpointSource, 'EndpointSlice');
  });
});

describe('conditions: route groups', () => {
  it('DuplicateMatchName: the first match of a name is kept', () => {
    const objects = [
      routeGroup('g', [{ name: 'a', pathRegex: '/a' }, { name: 'b' }, { name: 'a', pathRegex: '/z' }], {
        version: 'v1alpha2',
      }),
    ];
    assert.deepEqual(
      conditionsFor(objects, 'DuplicateMatchName'),
      expected([
        'HTTPRouteGroup/default/g',
        'Accepted',
        'True',
        'Error',
        'DuplicateMatchName',
        'matches[2].name',
        'HTTPRouteGroup default/g: matches[2].name "a" repeats the name of matches[0], so only the first is used; give each match its own name',
      ]),
    );
    assert.deepEqual(
      buildModel(objects).model.httpRouteGroups[0]!.matches.map((m) => [m.name, m.pathRegex]),
      [
        ['a', '/a'],
        ['b', null],
      ],
    );
  });
});

describe('conditions: matches Envoy would refuse', () => {
  const group = routeGroup('g', [
    { name: 'paren', pathRegex: '/api(' },
    { name: 'space', headers: { 'user agent': '.*' } },
    { name: 'look', headers: [{ 'x-a': 'ok' }, { 'x-b': '(?=no)' }] },
    { name: 'fine', pathRegex: '/ok', headers: { 'x-c': '[a-z]+' } },
    { name: 'paren', pathRegex: '/dup' },
    { name: 'empty', headers: { 'x-d': '' } },
  ]);

  it('InvalidMatch leaves out only the bad match, naming the field as written', () => {
    const r = buildModel([group]);
    assert.deepEqual(
      record(r.conditions),
      expected(
        [
          'HTTPRouteGroup/default/g',
          'Accepted',
          'True',
          'Error',
          'DuplicateMatchName',
          'spec.matches[4].name',
          'HTTPRouteGroup default/g: spec.matches[4].name "paren" repeats the name of spec.matches[0], so only the first is used; give each match its own name',
        ],
        [
          'HTTPRouteGroup/default/g',
          'Accepted',
          'True',
          'Error',
          'InvalidMatch',
          'spec.matches[0].pathRegex',
          'HTTPRouteGroup default/g: spec.matches[0].pathRegex "/api(" is not a valid RE2 regular expression (missing )), so match "paren" is left out and allows or splits nothing; fix the regular expression',
        ],
        [
          'HTTPRouteGroup/default/g',
          'Accepted',
          'True',
          'Error',
          'InvalidMatch',
          'spec.matches[1].headers["user agent"]',
          'HTTPRouteGroup default/g: spec.matches[1].headers["user agent"] names header "user agent", which is not a valid HTTP header name, so match "space" is left out and allows or splits nothing; use a header name made of letters, digits and -',
        ],
        [
          'HTTPRouteGroup/default/g',
          'Accepted',
          'True',
          'Error',
          'InvalidMatch',
          'spec.matches[2].headers[1].x-b',
          'HTTPRouteGroup default/g: spec.matches[2].headers[1].x-b "(?=no)" is not a valid RE2 regular expression (invalid perl operator), so match "look" is left out and allows or splits nothing; fix the regular expression',
        ],
        [
          'HTTPRouteGroup/default/g',
          'Accepted',
          'True',
          'Error',
          'InvalidMatch',
          'spec.matches[5].headers.x-d',
          'HTTPRouteGroup default/g: spec.matches[5].headers.x-d is an empty regular expression, so match "empty" is left out and allows or splits nothing; use .* to match any value',
        ],
      ),
    );
    assert.deepEqual(
      r.model.httpRouteGroups[0]!.matches.map((m) => m.name),
      ['fine'],
    );
  });

  it('a rule naming a left-out match says so; a split uses only the valid matches', () => {
    const r = buildModel([
      group,
      pod('api', { ip: '10.0.0.1' }),
      service('api'),
      service('api-v2'),
      split('ab', 'api', [{ service: 'api-v2', weight: 1 }], {
        matches: [{ kind: 'HTTPRouteGroup', name: 'g' }],
      }),
      target(
        't',
        sa('api'),
        [sa('web')],
        [{ kind: 'HTTPRouteGroup', name: 'g', matches: ['paren', 'fine'] }],
      ),
    ]);
    assert.deepEqual(
      record(r.conditions.filter((c) => c.reason === 'MatchNotFound')),
      expected([
        'TrafficTarget/default/t',
        'ResolvedRefs',
        'False',
        'Error',
        'MatchNotFound',
        'spec.rules[0].matches[0]',
        'TrafficTarget default/t: spec.rules[0].matches[0] names "paren", which HTTPRouteGroup default/g has but leaves out as invalid (see its own condition), so that name allows nothing; fix HTTPRouteGroup default/g',
      ]),
    );
    const rule = r.model.access[0]!.rules[0]!;
    assert.equal(rule.kind, 'HTTPRouteGroup');
    assert.deepEqual(rule.kind === 'HTTPRouteGroup' ? rule.matches.map((m) => m.name) : null, ['fine']);
    assert.deepEqual(
      r.model.splits[0]!.matches!.map((m) => m.name),
      ['fine'],
    );
  });

  it('malformed addresses are schema errors, since proxies would reject them', () => {
    const conditions = conditionsFor(
      [
        { ...pod('p'), status: { podIP: '10.0.0.300' } },
        service('s', { clusterIP: 'abc' }),
        {
          apiVersion: 'discovery.k8s.io/v1',
          kind: 'EndpointSlice',
          metadata: meta('e', 'default', { labels: { 'kubernetes.io/service-name': 's' } }),
          addressType: 'IPv4',
          endpoints: [{ addresses: ['10.0.0.1', 'fe80::1'] }],
        },
      ],
      'InvalidSpec',
    );
    assert.deepEqual(
      conditions.map((c) => c.message),
      [
        'EndpointSlice default/e: endpoints[0].addresses[1] must be an IPv4 address (addressType is IPv4), not "fe80::1"; the object is left out; fix it to match discovery.k8s.io/v1 EndpointSlice',
        'Pod default/p: status.podIP must be an IPv4 or IPv6 address, not "10.0.0.300"; the object is left out; fix it to match v1 Pod',
        'Service default/s: spec.clusterIP must be an IP address, None or empty, not "abc"; the object is left out; fix it to match v1 Service',
      ],
    );
  });
});

describe('conditions: splits', () => {
  const base = [
    service('web', {
      ports: [
        { name: 'http', port: 80 },
        { name: 'grpc', port: 9090 },
      ],
    }),
    service('web-v1', {
      ports: [
        { name: 'http', port: 80 },
        { name: 'grpc', port: 9090 },
      ],
    }),
    service('odd', { ports: [{ name: 'http', port: 81 }] }),
    service('partial', { ports: [{ name: 'http', port: 80 }] }),
  ];

  it('CrossNamespaceService, RootServiceNotFound and SplitConflict', () => {
    const r = buildModel([
      ...base,
      split('x', 'web.other', [{ service: 'web-v1', weight: 1 }]),
      split('y', 'nope', [{ service: 'web-v1', weight: 1 }]),
      split('a', 'web', [{ service: 'web-v1', weight: 1 }], { created: '2024-01-01T00:00:00Z' }),
      split('b', 'web.default.svc.cluster.local', [{ service: 'web-v1', weight: 1 }], {
        created: '2024-03-01T00:00:00Z',
      }),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions,
      expected(
        [
          'TrafficSplit/default/b',
          'Conflicted',
          'True',
          'Error',
          'SplitConflict',
          'spec.service',
          'TrafficSplit default/b: spec.service "web.default.svc.cluster.local" is already split by TrafficSplit default/a, which is older (or as old and first by name); only one TrafficSplit per root service is served; delete one of them or merge their backends',
        ],
        [
          'TrafficSplit/default/x',
          'ResolvedRefs',
          'False',
          'Error',
          'CrossNamespaceService',
          'spec.service',
          'TrafficSplit default/x: spec.service "web.other" names namespace other, but a TrafficSplit only routes to Services in its own namespace (default); move the TrafficSplit to namespace other or name a Service in default',
        ],
        [
          'TrafficSplit/default/y',
          'ResolvedRefs',
          'False',
          'Error',
          'RootServiceNotFound',
          'spec.service',
          'TrafficSplit default/y: spec.service "nope" is not a Service in namespace default, so the split is not served; create the Service or fix the name',
        ],
      ),
    );
    assert.deepEqual(
      r.model.splits.map((s) => s.name),
      ['a'],
    );
  });

  it('backend problems, all-zero weights and a missing route group', () => {
    const r = buildModel([
      ...base,
      split(
        'ab',
        'web',
        [
          { service: 'web-v1', weight: 0 },
          { service: 'bookstore-v3', weight: 5 },
          { service: 'odd', weight: 1 },
          { service: 'partial', weight: 0 },
          { service: 'web-v1', weight: 0 },
          { service: 'web-v2.prod', weight: 1 },
        ],
        { matches: [{ kind: 'HTTPRouteGroup', name: 'missing' }] },
      ),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions,
      expected(
        [
          'TrafficSplit/default/ab',
          'Accepted',
          'True',
          'Warning',
          'AllWeightsZero',
          'spec.backends',
          'TrafficSplit default/ab: every backend in spec.backends has weight 0, so the calls this split covers for Service default/web reach no backend and fail; give at least one backend a positive weight',
        ],
        [
          'TrafficSplit/default/ab',
          'Accepted',
          'True',
          'Warning',
          'DuplicateBackend',
          'spec.backends[4].service',
          'TrafficSplit default/ab: spec.backends[4].service "web-v1" repeats spec.backends[0], so their weights are added (0 + 0 = 0); list each Service once',
        ],
        [
          'TrafficSplit/default/ab',
          'ResolvedRefs',
          'False',
          'Error',
          'BackendNotFound',
          'spec.backends[1].service',
          'TrafficSplit default/ab: spec.backends[1].service "bookstore-v3" is not a Service in namespace default, so it gets no traffic; create the Service or fix the name',
        ],
        [
          'TrafficSplit/default/ab',
          'ResolvedRefs',
          'False',
          'Error',
          'BackendPortMismatch',
          'spec.backends[2].service',
          'TrafficSplit default/ab: spec.backends[2].service "odd" has none of the ports of root Service default/web (80, 9090), so it gets no traffic; give Service default/odd the root\'s port numbers',
        ],
        [
          'TrafficSplit/default/ab',
          'ResolvedRefs',
          'False',
          'Warning',
          'BackendPortMismatch',
          'spec.backends[3].service',
          'TrafficSplit default/ab: spec.backends[3].service "partial" lacks port 9090 of root Service default/web, so it gets no traffic on that port; add the port to Service default/partial',
        ],
        [
          'TrafficSplit/default/ab',
          'ResolvedRefs',
          'False',
          'Error',
          'CrossNamespaceService',
          'spec.backends[5].service',
          'TrafficSplit default/ab: spec.backends[5].service "web-v2.prod" names namespace prod, but a TrafficSplit only routes to Services in its own namespace (default); move the TrafficSplit to namespace prod or name a Service in default',
        ],
        [
          'TrafficSplit/default/ab',
          'ResolvedRefs',
          'False',
          'Error',
          'RouteGroupNotFound',
          'spec.matches[0].name',
          'TrafficSplit default/ab: spec.matches[0].name "missing" is not an HTTPRouteGroup in namespace default, so the requests it would match are not split; create the HTTPRouteGroup or fix the name',
        ],
      ),
    );
    assert.deepEqual(r.model.splits, [
      {
        namespace: 'default',
        name: 'ab',
        rootService: 'web',
        backends: [
          { service: 'partial', weight: 0, ports: [80] },
          { service: 'web-v1', weight: 0, ports: [80, 9090] },
        ],
        // Every named group is missing: nothing is split, everything goes to the root service.
        matches: [],
      },
    ]);
  });

  it('the example message from the design: a backend that is not a Service', () => {
    const [c] = conditionsFor(
      [
        service('bookstore'),
        service('bookstore-v1'),
        split('ab', 'bookstore', [
          { service: 'bookstore-v1', weight: 1 },
          { service: 'bookstore-v3', weight: 1 },
        ]),
      ],
      'BackendNotFound',
    );
    assert.equal(
      c!.message,
      'TrafficSplit default/ab: spec.backends[1].service "bookstore-v3" is not a Service in namespace default, so it gets no traffic; create the Service or fix the name',
    );
  });

  it('SelfReferentialBackend warns but serves the split', () => {
    const r = buildModel([
      ...base,
      split('self', 'web', [
        { service: 'web', weight: 9 },
        { service: 'web-v1', weight: 1 },
      ]),
    ]);
    assert.deepEqual(
      record(r.conditions),
      expected([
        'TrafficSplit/default/self',
        'Accepted',
        'True',
        'Warning',
        'SelfReferentialBackend',
        'spec.backends[0].service',
        'TrafficSplit default/self: spec.backends[0].service "web" is the root service itself, so its share goes to every endpoint of Service default/web, whichever version; list a Service that selects only the version meant',
      ]),
    );
    assert.deepEqual(
      r.model.splits[0]!.backends.map((b) => [b.service, b.weight]),
      [
        ['web', 9],
        ['web-v1', 1],
      ],
    );
  });

  it('NoBackends leaves the split out', () => {
    const r = buildModel([...base, split('none', 'partial', [{ service: 'nope', weight: 1 }])]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions.filter((c) => c.reason === 'NoBackends'),
      expected([
        'TrafficSplit/default/none',
        'Accepted',
        'False',
        'Error',
        'NoBackends',
        'spec.backends',
        "TrafficSplit default/none: spec.backends leaves no usable backend, so the split is not served and traffic to Service default/partial goes to its own endpoints; list at least one Service with the root's ports",
      ]),
    );
    assert.deepEqual(r.model.splits, []);
  });

  it('WeightsRescaled keeps ratios when weights overflow a proxy', () => {
    const r = buildModel([
      ...base,
      split(
        'big',
        'partial',
        [
          { service: 'web', weight: 4294967295 },
          { service: 'web-v1', weight: 4294967295 },
          { service: 'odd-ish', weight: 0 },
        ],
        { version: 'v1alpha2' },
      ),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions.filter((c) => c.reason === 'WeightsRescaled'),
      expected([
        'TrafficSplit/default/big',
        'Accepted',
        'True',
        'Warning',
        'WeightsRescaled',
        'spec.backends',
        'TrafficSplit default/big: the weights in spec.backends add up to more than 4294967295, so they were scaled to a total of about 1000000 keeping their ratios; use smaller weights',
      ]),
    );
    assert.deepEqual(
      r.model.splits[0]!.backends.map((b) => b.weight),
      [500000, 500000],
    );
  });

  it('references to a rejected object point to its own condition', () => {
    const conditions = conditionsFor(
      [
        service('web'),
        service('bad', { ports: [{ port: 0 }] }),
        split('s', 'web', [{ service: 'bad', weight: 1 }]),
      ],
      'BackendNotFound',
    );
    assert.equal(
      conditions[0]!.message,
      'TrafficSplit default/s: spec.backends[0].service "bad" names Service default/bad, which was rejected (see its own condition), so it gets no traffic; fix Service default/bad',
    );
  });
});

describe('conditions: traffic targets', () => {
  const base = [
    pod('api', { ip: '10.0.0.1' }),
    service('api', { ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    routeGroup('routes', [{ name: 'get' }]),
    tcpRoute('tcp', [5432]),
    tcpRoute('tcpn', [8080], 'db'),
  ];

  it('destination problems leave the target out', () => {
    const r = buildModel([
      ...base,
      target('t1', { kind: 'IdentityBinding', name: 'api' }, [sa('web')], []),
      target('t2', { kind: 'ServiceAccount', name: 'api', namespace: 'prod' }, [sa('web')], []),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions,
      expected(
        [
          'TrafficTarget/default/t1',
          'ResolvedRefs',
          'False',
          'Error',
          'UnsupportedSubjectKind',
          'spec.destination.kind',
          'TrafficTarget default/t1: spec.destination.kind IdentityBinding needs access.smi-spec.io/v1alpha4 (this TrafficTarget is access.smi-spec.io/v1alpha3), so the TrafficTarget is not served; write the TrafficTarget as access.smi-spec.io/v1alpha4 or name a ServiceAccount',
        ],
        [
          'TrafficTarget/default/t2',
          'Accepted',
          'False',
          'Error',
          'DestinationNamespaceMismatch',
          'spec.destination.namespace',
          'TrafficTarget default/t2: spec.destination.namespace "prod" differs from the TrafficTarget\'s namespace "default"; access is granted only by a TrafficTarget in the destination\'s own namespace, so it is not served; move the TrafficTarget to namespace prod',
        ],
      ),
    );
    assert.deepEqual(r.model.access, []);
  });

  it('source and rule problems drop only the bad parts', () => {
    const r = buildModel([
      ...base,
      target(
        't3',
        { kind: 'ServiceAccount', name: 'api' },
        [{ kind: 'Group', name: 'devs' }, sa('ghost')],
        [
          { kind: 'HTTPRouteGroup', name: 'routes', matches: ['get', 'post'] },
          { kind: 'HTTPRoute', name: 'x' },
          { kind: 'TCPRoute', name: 'missing' },
          { kind: 'TCPRoute', name: 'tcp', matches: ['m'] },
          { kind: 'TCPRoute', name: 'tcp' },
          { kind: 'TCPRoute', name: 'tcpn', matches: ['db', 'dx'] },
        ],
      ),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions,
      expected(
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Error',
          'MatchNotFound',
          'spec.rules[0].matches[1]',
          'TrafficTarget default/t3: spec.rules[0].matches[1] names "post", which HTTPRouteGroup default/routes does not have (it has: get), so that name allows nothing; fix the name or add the match',
        ],
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Error',
          'MatchNotFound',
          'spec.rules[5].matches[1]',
          'TrafficTarget default/t3: spec.rules[5].matches[1] names "dx", which TCPRoute default/tcpn does not have (it has: db), so that name allows nothing; fix the name or add the match',
        ],
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Error',
          'MatchesOnL4Route',
          'spec.rules[3].matches',
          "TrafficTarget default/t3: spec.rules[3].matches lists match names, but TCPRoute default/tcp has no named match, so the rule is ignored rather than allow more than meant; remove matches from the rule or name the route's match (spec.matches.name)",
        ],
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Warning',
          'PortNotServed',
          'spec.rules[4].name',
          'TrafficTarget default/t3: TCPRoute default/tcp allows port 5432, which no Service of the workloads of ServiceAccount default/api serves; check the port numbers in the TCPRoute',
        ],
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Error',
          'RouteNotFound',
          'spec.rules[2].name',
          'TrafficTarget default/t3: spec.rules[2].name "missing" is not a TCPRoute in namespace default, so the rule allows nothing; create the TCPRoute or fix the name',
        ],
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Warning',
          'UnknownServiceAccount',
          'spec.sources[1].name',
          'TrafficTarget default/t3: spec.sources[1].name names ServiceAccount default/ghost, which is neither defined nor used by any workload, so this part has no effect yet; create the ServiceAccount or fix the name',
        ],
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Error',
          'UnsupportedRuleKind',
          'spec.rules[1].kind',
          'TrafficTarget default/t3: spec.rules[1].kind "HTTPRoute" is not a route kind, so the rule is ignored; use HTTPRouteGroup, TCPRoute or UDPRoute',
        ],
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Error',
          'UnsupportedSubjectKind',
          'spec.sources[0].kind',
          'TrafficTarget default/t3: spec.sources[0].kind "Group" is not supported, so this source is ignored; use kind ServiceAccount',
        ],
      ),
    );
    const [t3] = r.model.access;
    assert.deepEqual(
      t3!.sources.map((s) => s.identity),
      ['spiffe://cluster.local/ns/default/sa/ghost'],
    );
    assert.deepEqual(
      t3!.rules.map((x) => [x.kind, x.name]),
      [
        ['HTTPRouteGroup', 'routes'],
        ['TCPRoute', 'tcp'],
        ['TCPRoute', 'tcpn'],
      ],
    );
  });

  it('NoSources, NoRules and PortNotServed on destination.port', () => {
    const r = buildModel([
      ...base,
      target(
        't4',
        { kind: 'ServiceAccount', name: 'api', port: 9999 },
        [],
        [{ kind: 'HTTPRouteGroup', name: 'routes', matches: ['nope'] }],
        { version: 'v1alpha2' },
      ),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions,
      expected(
        [
          'TrafficTarget/default/t4',
          'Accepted',
          'True',
          'Warning',
          'NoRules',
          'spec.rules',
          'TrafficTarget default/t4: spec.rules has no usable rule, so this TrafficTarget allows nothing; add a rule naming an HTTPRouteGroup, TCPRoute or UDPRoute',
        ],
        [
          'TrafficTarget/default/t4',
          'Accepted',
          'True',
          'Warning',
          'NoSources',
          'spec.sources',
          'TrafficTarget default/t4: spec.sources has no usable ServiceAccount, so this TrafficTarget allows nothing; list the ServiceAccounts that may call default/api',
        ],
        [
          'TrafficTarget/default/t4',
          'ResolvedRefs',
          'False',
          'Error',
          'MatchNotFound',
          'spec.rules[0].matches[0]',
          'TrafficTarget default/t4: spec.rules[0].matches[0] names "nope", which HTTPRouteGroup default/routes does not have (it has: get), so that name allows nothing; fix the name or add the match',
        ],
        [
          'TrafficTarget/default/t4',
          'ResolvedRefs',
          'False',
          'Warning',
          'PortNotServed',
          'spec.destination.port',
          'TrafficTarget default/t4: spec.destination.port 9999 is not a port of any Service of the workloads of ServiceAccount default/api, so this target allows nothing there; use one of 80, 8080',
        ],
      ),
    );
  });
});

describe('conditions: identity bindings', () => {
  const base = [
    pod('api', { ip: '10.0.0.1' }),
    pod('web', { ip: '10.0.0.2' }),
    pod('report', { ip: '10.0.0.3', sa: 'shared' }),
    pod('batch', { ip: '10.0.0.4', sa: 'shared' }),
    service('api', { ports: [{ name: 'http', port: 80, targetPort: 8080 }] }),
    routeGroup('routes', [{ name: 'get' }]),
  ];
  const v4 = { version: 'v1alpha4' };
  const rules = [{ kind: 'HTTPRouteGroup', name: 'routes' }];

  it('IdentityBindingNoScheme and IdentityBindingConflictingSchemes leave the binding out', () => {
    const r = buildModel([
      ...base,
      binding('none', {}),
      binding('both', { serviceAccount: 'web', podLabelSelectors: [{ matchLabels: { app: 'web' } }] }),
      target('t', sa('api'), [ib('none'), ib('both')], rules, v4),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions,
      expected(
        [
          'IdentityBinding/default/both',
          'Accepted',
          'False',
          'Error',
          'IdentityBindingConflictingSchemes',
          'spec.schemes',
          'IdentityBinding default/both: spec.schemes sets both podLabelSelectors and serviceAccount, which are mutually exclusive, so the binding is left out rather than grant either; keep one of them (spiffeIdentities may go with either)',
        ],
        [
          'IdentityBinding/default/none',
          'Accepted',
          'False',
          'Error',
          'IdentityBindingNoScheme',
          'spec.schemes',
          'IdentityBinding default/none: spec.schemes sets no scheme, so the binding declares no identity and is left out; set serviceAccount, podLabelSelectors or spiffeIdentities',
        ],
        [
          'TrafficTarget/default/t',
          'Accepted',
          'True',
          'Warning',
          'NoSources',
          'spec.sources',
          'TrafficTarget default/t: spec.sources has no usable ServiceAccount, so this TrafficTarget allows nothing; list the ServiceAccounts that may call default/api',
        ],
        [
          'TrafficTarget/default/t',
          'ResolvedRefs',
          'False',
          'Warning',
          'IdentityBindingNotFound',
          'spec.sources[0].name',
          'TrafficTarget default/t: spec.sources[0].name "none" names IdentityBinding default/none, which was rejected (see its own condition), so it grants nothing; fix IdentityBinding default/none',
        ],
        [
          'TrafficTarget/default/t',
          'ResolvedRefs',
          'False',
          'Warning',
          'IdentityBindingNotFound',
          'spec.sources[1].name',
          'TrafficTarget default/t: spec.sources[1].name "both" names IdentityBinding default/both, which was rejected (see its own condition), so it grants nothing; fix IdentityBinding default/both',
        ],
      ),
    );
    assert.deepEqual(r.model.access[0]?.sources, []);
  });

  it('InvalidSpiffeId and SpiffeIdOutsideNamespace leave out one entry; the rest is bound', () => {
    const r = buildModel([
      ...base,
      binding('ids', {
        spiffeIdentities: [
          'spiffe://Cluster.Local/ns/default/sa/web',
          'https://cluster.local/ns/default/sa/web',
          'cluster.local/ns/prod/sa/web',
          'cluster.local/ns/default/sa/web',
        ],
      }),
      target('t', sa('api'), [ib('ids')], rules, v4),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions,
      expected(
        [
          'IdentityBinding/default/ids',
          'Accepted',
          'True',
          'Error',
          'InvalidSpiffeId',
          'spec.schemes.spiffeIdentities[0]',
          'IdentityBinding default/ids: spec.schemes.spiffeIdentities[0] "spiffe://Cluster.Local/ns/default/sa/web" is not a SPIFFE ID (trust domain "Cluster.Local" may only contain lowercase letters, digits, ".", "-" and "_"), so it is left out; write spiffe://<trust-domain>/<path>, for a ServiceAccount spiffe://cluster.local/ns/default/sa/<name>',
        ],
        [
          'IdentityBinding/default/ids',
          'Accepted',
          'True',
          'Error',
          'InvalidSpiffeId',
          'spec.schemes.spiffeIdentities[1]',
          'IdentityBinding default/ids: spec.schemes.spiffeIdentities[1] "https://cluster.local/ns/default/sa/web" has another URI scheme than spiffe://, so it is left out; write spiffe://<trust-domain>/<path>, for a ServiceAccount spiffe://cluster.local/ns/default/sa/<name>',
        ],
        [
          'IdentityBinding/default/ids',
          'Accepted',
          'True',
          'Error',
          'SpiffeIdOutsideNamespace',
          'spec.schemes.spiffeIdentities[2]',
          'IdentityBinding default/ids: spec.schemes.spiffeIdentities[2] "cluster.local/ns/prod/sa/web" names ServiceAccount prod/web, but an IdentityBinding declares identities of its own namespace (default) only, so it is left out; bind it with an IdentityBinding in namespace prod',
        ],
      ),
    );
    assert.deepEqual(
      r.model.access.map((a) => a.sources.map((s) => s.identity)),
      [['spiffe://cluster.local/ns/default/sa/web']],
    );
  });

  it('SharedServiceAccount: a selector that picks some pods of a ServiceAccount binds none of it', () => {
    const r = buildModel([
      ...base,
      binding('reporting', { podLabelSelectors: [{ name: 'r', matchLabels: { app: 'report' } }] }),
      target('t', sa('api'), [ib('reporting')], rules, v4),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions.filter((c) => c.reason === 'SharedServiceAccount'),
      expected([
        'IdentityBinding/default/reporting',
        'Accepted',
        'True',
        'Error',
        'SharedServiceAccount',
        'spec.schemes.podLabelSelectors',
        'IdentityBinding default/reporting: spec.schemes.podLabelSelectors selects Pod default/report, which runs as ServiceAccount shared, but Pod default/batch runs as shared too and is not selected; a peer is known by its ServiceAccount, not its pod, so binding shared would grant those pods as well, and shared is left out; give the selected pods a ServiceAccount of their own',
      ]),
    );
    // Nothing is granted: the safe reading never lets batch in through report's selector.
    assert.deepEqual(r.model.access[0]?.sources, []);
  });

  it('IdentityBindingNotFound, IdentityBindingInOtherNamespace, NoDestination and subject groups', () => {
    const r = buildModel([
      ...base,
      binding('web', { serviceAccount: 'web' }, 'prod'),
      binding('nobody', { podLabelSelectors: [{ matchLabels: { app: 'nothing' } }] }),
      target('t1', sa('api'), [ib('ghost'), ib('web'), { ...sa('web'), group: 'rbac' }], rules, v4),
      target('t2', ib('nobody'), [sa('web')], rules, v4),
      target('t3', { ...ib('api'), group: 'example.com' }, [sa('web')], rules, v4),
    ]);
    record(r.conditions);
    assert.deepEqual(
      r.conditions.filter((c) => c.object !== 'TrafficTarget/default/t1' || c.reason !== 'NoSources'),
      expected(
        [
          'TrafficTarget/default/t1',
          'ResolvedRefs',
          'False',
          'Warning',
          'IdentityBindingInOtherNamespace',
          'spec.sources[1].namespace',
          'TrafficTarget default/t1: spec.sources[1] names IdentityBinding default/web, which does not exist, but namespace prod has an IdentityBinding of that name; a binding declares identities of its own namespace only, so it grants nothing here; set spec.sources[1].namespace to prod or create IdentityBinding web in namespace default',
        ],
        [
          'TrafficTarget/default/t1',
          'ResolvedRefs',
          'False',
          'Warning',
          'IdentityBindingNotFound',
          'spec.sources[0].name',
          'TrafficTarget default/t1: spec.sources[0].name "ghost" is not an IdentityBinding in namespace default, so it grants nothing until one is created; create the IdentityBinding or fix the name',
        ],
        [
          'TrafficTarget/default/t1',
          'ResolvedRefs',
          'False',
          'Error',
          'UnsupportedSubjectKind',
          'spec.sources[2].group',
          'TrafficTarget default/t1: spec.sources[2].group "rbac" is not the group of ServiceAccount (the core group, written as no group), so this source is ignored; remove group',
        ],
        [
          'TrafficTarget/default/t2',
          'Accepted',
          'True',
          'Warning',
          'NoDestination',
          'spec.destination',
          "TrafficTarget default/t2: spec.destination names IdentityBinding default/nobody, which binds no ServiceAccount of namespace default (yet), so this TrafficTarget applies to no workload; bind the destination's ServiceAccount, pods or SPIFFE IDs in it",
        ],
        [
          'TrafficTarget/default/t3',
          'ResolvedRefs',
          'False',
          'Error',
          'UnsupportedSubjectKind',
          'spec.destination.group',
          'TrafficTarget default/t3: spec.destination.group "example.com" is not the group of IdentityBinding, so the TrafficTarget is not served; write group: access.smi-spec.io',
        ],
      ),
    );
    assert.deepEqual(
      r.model.access.map((a) => a.name),
      ['t1'],
    );
  });
});

describe('conditions: edits refused', () => {
  it('LastGoodKept: a TrafficSplit edited to a bad weight keeps its last good version', () => {
    const kept = new LastGoodObjects();
    kept.apply([split('ab', 'api', [{ service: 'api-v1', weight: 90 }])]);
    const r = kept.apply([split('ab', 'api', [{ service: 'api-v1', weight: 'ninety' }])]);
    assert.deepEqual(
      record(r.conditions).map((c) => [c.object, c.type, c.status, c.severity, c.reason, c.field]),
      [['TrafficSplit/default/ab', 'Accepted', 'True', 'Error', 'LastGoodKept', 'spec.backends[0].weight']],
    );
    assert.match(
      r.conditions[0]!.message,
      /^TrafficSplit default\/ab: the new version is refused: spec\.backends\[0\]\.weight /,
    );
  });
});

describe('conditions: names and sizes', () => {
  it('InvalidName: Kubernetes name rules per kind, control characters and huge names', () => {
    const big = 'x'.repeat(1 << 20);
    const r = conditionsFor(
      [
        serviceAccount(big),
        serviceAccount('a\u202eb'),
        serviceAccount('nul\u0000'),
        serviceAccount('ok', 'Bad_NS'),
        service('1st'),
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'has.dot' } },
        serviceAccount('dots.are.fine'),
      ],
      'InvalidName',
    );
    assert.deepEqual(
      r.map((c) => [c.object, c.field, c.message]),
      [
        [
          'Namespace//has.dot',
          'metadata.name',
          'Namespace has.dot: metadata.name must be an RFC 1123 label: lower-case letters, digits and -, starting and ending with a letter or digit; the object is left out; rename it',
        ],
        [
          'Service/default/1st',
          'metadata.name',
          'Service default/1st: metadata.name must be an RFC 1035 label: lower-case letters, digits and -, starting with a letter and ending with a letter or digit; the object is left out; rename it',
        ],
        [
          'ServiceAccount/Bad_NS/ok',
          'metadata.namespace',
          'ServiceAccount Bad_NS/ok: metadata.namespace must be an RFC 1123 label: lower-case letters, digits and -, starting and ending with a letter or digit; the object is left out; rename it',
        ],
        [
          'ServiceAccount/default/a\\u202eb',
          'metadata.name',
          'ServiceAccount default/a\\u202eb: metadata.name contains a bidirectional control character (U+202E); it must be an RFC 1123 subdomain: lower-case letters, digits, - and ., each dot-separated part starting and ending with a letter or digit; the object is left out; rename it',
        ],
        [
          'ServiceAccount/default/nul\\u0000',
          'metadata.name',
          'ServiceAccount default/nul\\u0000: metadata.name contains a control character (U+0000); it must be an RFC 1123 subdomain: lower-case letters, digits, - and ., each dot-separated part starting and ending with a letter or digit; the object is left out; rename it',
        ],
        [
          `ServiceAccount/default/${'x'.repeat(60)}...(1048576 characters)`,
          'metadata.name',
          `ServiceAccount default/${'x'.repeat(60)}...(1048576 characters): metadata.name is 1048576 characters long; it must be an RFC 1123 subdomain, at most 253 characters; the object is left out; rename it`,
        ],
      ],
    );
  });

  it('InvalidMatch: a megabyte pathRegex is refused by its size, before RE2', () => {
    const r = conditionsFor(
      [
        routeGroup('g', [
          { name: 'big', pathRegex: 'a'.repeat(1 << 20) },
          { name: 'ok', pathRegex: '/api' },
        ]),
      ],
      'InvalidMatch',
    );
    assert.deepEqual(
      r.map((c) => [c.field, c.message]),
      [
        [
          'spec.matches[0].pathRegex',
          'HTTPRouteGroup default/g: spec.matches[0].pathRegex is 1048576 characters long; regular expressions are limited to 4096 characters, so match "big" is left out and allows or splits nothing; use a shorter regular expression',
        ],
      ],
    );
  });

  it("SplitCycle: two splits whose backends are each other's roots", () => {
    const r = conditionsFor(
      [
        service('a'),
        service('b'),
        service('c'),
        split('to-c', 'b', [{ service: 'c', weight: 1 }]),
        service('d'),
        split('to-b', 'c', [
          { service: 'd', weight: 1 },
          { service: 'b', weight: 1 },
        ]),
        // Leads into the loop without being on it: no warning.
        split('fine', 'a', [{ service: 'c', weight: 1 }]),
      ],
      'SplitCycle',
    );
    assert.deepEqual(
      r.map((c) => [c.object, c.severity, c.field, c.message]),
      [
        [
          'TrafficSplit/default/to-b',
          'Warning',
          'spec.backends[1].service',
          'TrafficSplit default/to-b: spec.backends[1].service "b" is itself the root of TrafficSplit default/to-c, and the splits loop back here (c → b → c); splits do not chain, so calls to c go straight to the endpoints of its backends and the loop swaps traffic between these services; split each root only to Services that select one version',
        ],
        [
          'TrafficSplit/default/to-c',
          'Warning',
          'spec.backends[0].service',
          'TrafficSplit default/to-c: spec.backends[0].service "c" is itself the root of TrafficSplit default/to-b, and the splits loop back here (b → c → b); splits do not chain, so calls to b go straight to the endpoints of its backends and the loop swaps traffic between these services; split each root only to Services that select one version',
        ],
      ],
    );
  });
});

describe('conditions: files', () => {
  it('FileUnreadable: a symbolic link loop in a config folder names the file and leaves the rest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-cond-'));
    const release = captureLogs(() => {});
    try {
      symlinkSync('loop.yaml', join(dir, 'loop.yaml'));
      writeFileSync(join(dir, 'ns.yaml'), 'apiVersion: v1\nkind: Namespace\nmetadata: { name: app }\n');
      const source = new FolderSource(dir);
      await source.reload();
      const snap = source.snapshot();
      assert.equal(snap.objects.length, 1);
      assert.deepEqual(
        record(snap.conditions).map((c) => [
          c.object,
          c.type,
          c.status,
          c.severity,
          c.reason,
          c.field,
          c.message,
        ]),
        [
          [
            'File//loop.yaml',
            'Accepted',
            'False',
            'Error',
            'FileUnreadable',
            'file',
            'File loop.yaml: cannot be read (ELOOP: a symbolic link loop); nothing in it is served; fix or remove it',
          ],
        ],
      );
    } finally {
      release();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('conditions: coverage', () => {
  // Suites in a file run in order, so by now every test above has recorded its reasons.
  it('every reason in REASONS is produced by a test above', () => {
    const missing = Object.keys(REASONS).filter((r) => !seen.has(r));
    assert.deepEqual(missing, []);
    const unknown = [...seen].filter((r) => !(r in REASONS));
    assert.deepEqual(unknown, []);
  });

  it('conditions are sorted by object, type, reason, field, message', () => {
    const { conditions } = buildModel([
      split('z', 'nope', []),
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: meta('a') },
      split('a', 'nope', []),
    ]);
    assert.deepEqual(
      conditions.map((c) => c.object),
      ['ConfigMap/default/a', 'TrafficSplit/default/a', 'TrafficSplit/default/z'],
    );
  });
});
