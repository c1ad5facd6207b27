/**
 * Every CustomResourceDefinition Weft installs, built from one source: `weft install --crds`
 * prints them and `crds/` holds the same YAML (a test keeps the two equal).
 *
 * SMI versions: each kind is served at every SMI version Weft reads and stored at the newest one.
 * Conversion is `None`: the API server keeps an object's fields as written and only relabels its
 * apiVersion, so Weft recognizes each object's original version by its shape (see
 * `src/smi`). The schemas validate what each version allows at write time.
 */

/** An OpenAPI v3 schema fragment (the subset CRDs use). */
export type Schema = { [key: string]: unknown };

const str: Schema = { type: 'string' };
const int: Schema = { type: 'integer' };
const obj = (properties: Record<string, Schema>, required?: string[]): Schema => ({
  type: 'object',
  properties,
  ...(required ? { required } : {}),
});
const arr = (items: Schema): Schema => ({ type: 'array', items });

const identityRef = (withPort: boolean): Schema =>
  obj(
    {
      kind: { type: 'string', enum: ['ServiceAccount'] },
      name: str,
      namespace: str,
      ...(withPort ? { port: int } : {}),
    },
    ['kind', 'name'],
  );

/**
 * A v1alpha4 TrafficTarget subject: a ServiceAccount or an IdentityBinding (whose `group` is
 * `access.smi-spec.io`).
 */
const subjectRefV1alpha4 = (withPort: boolean): Schema =>
  obj(
    {
      kind: { type: 'string', enum: ['ServiceAccount', 'IdentityBinding'] },
      group: str,
      name: str,
      namespace: str,
      ...(withPort ? { port: int } : {}),
    },
    ['kind', 'name'],
  );

const ruleRef = obj({ kind: str, name: str, matches: arr(str) }, ['kind', 'name']);

/** `headers` is accepted both as a map and as a list of single-key maps (both are in the wild). */
const headers: Schema = { 'x-kubernetes-preserve-unknown-fields': true };

const httpMatch = (withHeaders: boolean): Schema =>
  obj({ name: str, pathRegex: str, methods: arr(str), ...(withHeaders ? { headers } : {}) }, ['name']);

function version(name: string, storage: boolean, root: Record<string, Schema>): Schema {
  return {
    name,
    served: true,
    storage,
    schema: { openAPIV3Schema: { type: 'object', properties: root } },
  };
}

function crd(
  group: string,
  kind: string,
  plural: string,
  versions: Schema[],
  shortNames: string[] = [],
): Schema {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${plural}.${group}`, labels: { 'app.kubernetes.io/part-of': 'weft' } },
    spec: {
      group,
      scope: 'Namespaced',
      names: {
        kind,
        plural,
        singular: kind.toLowerCase(),
        listKind: `${kind}List`,
        ...(shortNames.length ? { shortNames } : {}),
      },
      conversion: { strategy: 'None' },
      versions,
    },
  };
}

const splitBackend = (weight: Schema): Schema => obj({ service: str, weight }, ['service', 'weight']);
const splitSpec = (weight: Schema, withMatches: boolean): Schema =>
  obj(
    {
      service: str,
      backends: arr(splitBackend(weight)),
      ...(withMatches
        ? { matches: arr(obj({ kind: str, name: str, apiGroup: str }, ['kind', 'name'])) }
        : {}),
    },
    ['service', 'backends'],
  );

/** `kubectl get` drops its AGE column when a CRD lists its own: add it back. */
const ageColumn: Schema = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

/** Adds printer columns to every version. */
function withColumns(versions: Schema[], columns: Schema[]): Schema[] {
  return versions.map((v) => ({ ...v, additionalPrinterColumns: [...columns, ageColumn] }));
}

/** TrafficSplit v1alpha1 (quantity weights) to v1alpha4 (with matches). */
export const trafficSplit = crd(
  'split.smi-spec.io',
  'TrafficSplit',
  'trafficsplits',
  withColumns(
    [
      version('v1alpha1', false, { spec: splitSpec({ 'x-kubernetes-int-or-string': true }, false) }),
      version('v1alpha2', false, { spec: splitSpec({ type: 'integer', minimum: 0 }, false) }),
      version('v1alpha3', false, { spec: splitSpec({ type: 'integer', minimum: 0 }, true) }),
      version('v1alpha4', true, { spec: splitSpec({ type: 'integer', minimum: 0 }, true) }),
    ],
    [
      { name: 'Service', type: 'string', jsonPath: '.spec.service' },
      { name: 'Backends', type: 'string', jsonPath: '.spec.backends[*].service' },
      { name: 'Weights', type: 'string', jsonPath: '.spec.backends[*].weight' },
    ],
  ),
  ['ts'],
);

/**
 * v1alpha1's top-level TrafficTarget fields. Every version's schema lists them: the API server
 * prunes what an object read from storage has beyond the storage version's schema, so without them
 * a v1alpha1 object would lose its destination the moment it is stored.
 */
const v1alpha1Target: Record<string, Schema> = {
  destination: identityRef(true),
  sources: arr(identityRef(false)),
  specs: arr(ruleRef),
};

/** TrafficTarget v1alpha1 (fields at the top level) to v1alpha4 (IdentityBinding subjects). */
export const trafficTarget = crd(
  'access.smi-spec.io',
  'TrafficTarget',
  'traffictargets',
  [
    ...withColumns(
      [version('v1alpha1', false, v1alpha1Target)],
      [{ name: 'Destination', type: 'string', jsonPath: '.destination.name' }],
    ),
    ...withColumns(
      [
        version('v1alpha2', false, {
          ...v1alpha1Target,
          spec: obj(
            { destination: identityRef(true), sources: arr(identityRef(false)), rules: arr(ruleRef) },
            ['destination'],
          ),
        }),
        version('v1alpha3', false, {
          ...v1alpha1Target,
          spec: obj(
            { destination: identityRef(true), sources: arr(identityRef(false)), rules: arr(ruleRef) },
            ['destination'],
          ),
        }),
        version('v1alpha4', true, {
          ...v1alpha1Target,
          // Stored objects are pruned to this schema, so it keeps v1alpha2's destination.port and
          // every older field too.
          spec: obj(
            {
              destination: subjectRefV1alpha4(true),
              sources: arr(subjectRefV1alpha4(false)),
              rules: arr(ruleRef),
            },
            ['destination'],
          ),
        }),
      ],
      [
        { name: 'Destination', type: 'string', jsonPath: '.spec.destination.name' },
        { name: 'Namespace', type: 'string', jsonPath: '.spec.destination.namespace', priority: 1 },
      ],
    ),
  ],
  ['tt'],
);

/**
 * IdentityBinding v1alpha4. `matchExpressions` keeps whatever it holds: Weft refuses a binding that
 * uses it, and pruning it away would instead make the selector select more pods than written.
 */
export const identityBinding = crd(
  'access.smi-spec.io',
  'IdentityBinding',
  'identitybindings',
  withColumns(
    [
      version('v1alpha4', true, {
        spec: obj(
          {
            schemes: obj({
              podLabelSelectors: arr(
                obj({
                  name: str,
                  matchLabels: { type: 'object', additionalProperties: str },
                  matchExpressions: arr({ type: 'object', 'x-kubernetes-preserve-unknown-fields': true }),
                }),
              ),
              spiffeIdentities: arr(str),
              serviceAccount: str,
            }),
          },
          ['schemes'],
        ),
      }),
    ],
    [
      { name: 'ServiceAccount', type: 'string', jsonPath: '.spec.schemes.serviceAccount' },
      { name: 'SPIFFE', type: 'string', jsonPath: '.spec.schemes.spiffeIdentities', priority: 1 },
    ],
  ),
  ['ib'],
);

/** HTTPRouteGroup v1alpha1 (matches at the top level) to v1alpha4. */
export const httpRouteGroup = crd(
  'specs.smi-spec.io',
  'HTTPRouteGroup',
  'httproutegroups',
  [
    // Published SMI examples put `matches` at the top level in some versions and under `spec` in
    // others; every version accepts both so no object loses its matches to pruning.
    version('v1alpha1', false, {
      matches: arr(httpMatch(true)),
      spec: obj({ matches: arr(httpMatch(true)) }),
    }),
    version('v1alpha2', false, {
      matches: arr(httpMatch(true)),
      spec: obj({ matches: arr(httpMatch(true)) }),
    }),
    version('v1alpha3', false, {
      matches: arr(httpMatch(true)),
      spec: obj({ matches: arr(httpMatch(true)) }),
    }),
    version('v1alpha4', true, {
      matches: arr(httpMatch(true)),
      spec: obj({ matches: arr(httpMatch(true)) }),
    }),
  ],
  ['htr'],
);

const l4Matches = obj({ name: str, ports: arr({ type: 'integer', minimum: 1, maximum: 65535 }) });

/** TCPRoute v1alpha1 to v1alpha4 (ports from v1alpha4). */
export const tcpRoute = crd('specs.smi-spec.io', 'TCPRoute', 'tcproutes', [
  version('v1alpha1', false, { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } }),
  version('v1alpha2', false, { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } }),
  version('v1alpha3', false, { spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } }),
  version('v1alpha4', true, { spec: obj({ matches: l4Matches }) }),
]);

/** UDPRoute v1alpha4. */
export const udpRoute = crd('specs.smi-spec.io', 'UDPRoute', 'udproutes', [
  version('v1alpha4', true, { spec: obj({ matches: l4Matches }) }),
]);

/** Weft's mesh-wide settings. */
export const meshConfig = crd('weft.dev', 'MeshConfig', 'meshconfigs', [
  {
    ...version('v1alpha1', true, {
      spec: obj({
        trustDomain: { type: 'string', default: 'cluster.local', pattern: '^[a-z0-9.-]+$' },
        permissive: { type: 'boolean', default: false },
        clusterDomain: { type: 'string', default: 'cluster.local' },
        outboundPassthrough: { type: 'boolean', default: true },
      }),
      status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
    }),
    subresources: { status: {} },
  },
]);

const preserve: Schema = { 'x-kubernetes-preserve-unknown-fields': true };
const patchTarget = obj({
  type: { type: 'string', enum: ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment'] },
  name: str,
  service: obj({ name: str, namespace: str, port: int }, ['name']),
});
const resourceType = {
  type: 'string',
  enum: ['Listener', 'RouteConfiguration', 'Cluster', 'ClusterLoadAssignment'],
};
const conditionColumn = (type: string): Schema => ({
  name: type,
  type: 'string',
  jsonPath: `.status.conditions[?(@.type=="${type}")].status`,
});

/**
 * EnvoyPatch: raw Envoy changes on top of what SMI compiles to. The schema checks the patch's
 * structure; the Envoy values inside are free-form here and checked by Weft the way Envoy checks
 * them (strict decoding and protoc-gen-validate), with the outcome in `status.conditions`.
 */
export const envoyPatch = crd('weft.dev', 'EnvoyPatch', 'envoypatches', [
  {
    ...version('v1alpha1', true, {
      spec: obj(
        {
          priority: { type: 'integer', default: 0 },
          selector: obj({
            matchLabels: { type: 'object', additionalProperties: str },
            serviceAccount: str,
            flavor: { type: 'string', enum: ['envoy', 'grpc'] },
          }),
          allowSecurityOverride: { type: 'boolean', default: false },
          patches: {
            type: 'array',
            minItems: 1,
            items: obj({
              target: patchTarget,
              jsonPatch: arr(
                obj(
                  {
                    op: { type: 'string', enum: ['add', 'remove', 'replace', 'move', 'copy', 'test'] },
                    path: str,
                    from: str,
                    value: preserve,
                  },
                  ['op', 'path'],
                ),
              ),
              merge: { type: 'object', ...preserve },
              insertHttpFilter: obj({ before: str, after: str, filter: { type: 'object', ...preserve } }, [
                'filter',
              ]),
              add: obj({ type: resourceType, resource: { type: 'object', ...preserve } }, [
                'type',
                'resource',
              ]),
            }),
          },
        },
        ['patches'],
      ),
      status: { type: 'object', ...preserve },
    }),
    subresources: { status: {} },
    additionalPrinterColumns: [
      conditionColumn('Accepted'),
      conditionColumn('Applied'),
      conditionColumn('Programmed'),
      // Why a condition does not hold, so `kubectl get envoypatch` says what to look at.
      { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.status=="False")].reason' },
      ageColumn,
    ],
  },
]);

/** Every CRD, in install order. */
export function allCrds(): Schema[] {
  return [
    trafficSplit,
    trafficTarget,
    identityBinding,
    httpRouteGroup,
    tcpRoute,
    udpRoute,
    meshConfig,
    envoyPatch,
  ];
}
