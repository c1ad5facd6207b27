/**
 * The hostile-patch suite's cases: EnvoyPatches that pass decoding and protoc-gen-validate yet
 * are refused by every Envoy (each with Envoy 1.40's words and the native rule's), and valid
 * patches that must still apply. Aimed at the bookstore example's bookbuyer proxy, or any other
 * (the Envoy tier aims them at its own).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManifestFile } from '../../src/inputs/folder';

const ROOT = join(__dirname, '..', '..', '..');

/** The bookstore example, as manifests. */
export function bookstore(): ManifestFile[] {
  const dir = join(ROOT, 'examples', 'bookstore');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ source: join(dir, f), text: readFileSync(join(dir, f), 'utf8') }));
}

const OUTBOUND = { type: 'Listener', name: 'outbound' };

/** Where the cases aim: a service whose route configuration they patch, a cluster it has. */
export interface CaseTarget {
  /** The service, as a by-meaning target. */
  readonly service: { readonly name: string; readonly namespace: string; readonly port: number };
  /** The name of its first virtual host (a merge key). */
  readonly virtualHost: string;
  /** A cluster the proxy has, for routes the cases add. */
  readonly cluster: string;
  /** The first filter chain of the outbound listener (Envoy names it in its refusal). */
  readonly firstChain: string;
}

/** The bookstore example's bookbuyer proxy. */
export const BOOKBUYER: CaseTarget = {
  service: { name: 'bookstore', namespace: 'bookstore', port: 14001 },
  virtualHost: 'bookstore/bookstore|14001',
  cluster: 'outbound|14001|bookstore/bookstore-v1',
  firstChain: 'outbound|14001|bookstore/bookstore',
};
const TCP_PROXY = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';

/** One hostile patch. */
export interface HostileCase {
  readonly name: string;
  /** `spec.patches` of the EnvoyPatch. */
  readonly patches: readonly Record<string, unknown>[];
  /** Text Weft's native rules put in the Applied condition. */
  readonly native: string;
  /** Text of Envoy's own refusal, or null where Envoy accepts and only Weft's checks refuse. */
  readonly envoy: string | null;
  /** The operation blamed. */
  readonly operation: number;
}

/** The hostile cases aimed at `t`. */
export function hostileCases(t: CaseTarget): HostileCase[] {
  const ROUTE = { type: 'RouteConfiguration', service: t.service };
  const V1 = t.cluster;
  return [
    {
      name: 'duplicate-domain',
      patches: [
        {
          target: ROUTE,
          jsonPatch: [
            {
              op: 'add',
              path: '/virtual_hosts/-',
              value: {
                name: 'a',
                domains: ['bookstore'],
                routes: [{ match: { prefix: '/' }, route: { cluster: V1 } }],
              },
            },
            {
              op: 'add',
              path: '/virtual_hosts/-',
              value: {
                name: 'b',
                domains: ['bookstore'],
                routes: [{ match: { prefix: '/' }, route: { cluster: V1 } }],
              },
            },
          ],
        },
      ],
      native: 'Only unique values for domains are permitted. Duplicate entry of domain bookstore in route',
      envoy: 'Only unique values for domains are permitted. Duplicate entry of domain bookstore in route',
      operation: 0,
    },
    {
      name: 're2-program-size',
      patches: [
        {
          target: ROUTE,
          jsonPatch: [
            {
              op: 'add',
              path: '/virtual_hosts/0/routes/0',
              value: { match: { safe_regex: { regex: '/x(abcdefghij){40}' } }, route: { cluster: V1 } },
            },
          ],
        },
      ],
      native: "regex '/x(abcdefghij){40}' RE2 program size of about 486 > max program size of 100",
      envoy:
        "regex '/x(abcdefghij){40}' RE2 program size of 486 > max program size of 100 set for the error level threshold.",
      operation: 0,
    },
    {
      name: 'two-rewrites',
      patches: [
        {
          target: ROUTE,
          jsonPatch: [
            {
              op: 'add',
              path: '/virtual_hosts/0/routes/0',
              value: {
                match: { prefix: '/rewrite' },
                route: {
                  cluster: V1,
                  prefix_rewrite: '/a',
                  regex_rewrite: { pattern: { regex: '^/b' }, substitution: '/c' },
                },
              },
            },
          ],
        },
      ],
      native: 'Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy',
      envoy: 'Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy',
      operation: 0,
    },
    {
      name: 'zero-weights',
      patches: [
        {
          target: ROUTE,
          jsonPatch: [
            {
              op: 'add',
              path: '/virtual_hosts/0/routes/0',
              value: {
                match: { prefix: '/zero' },
                route: { weighted_clusters: { clusters: [{ name: V1, weight: 0 }] } },
              },
            },
          ],
        },
      ],
      native: 'Sum of weights in the weighted_cluster must be greater than 0.',
      envoy: 'Sum of weights in the weighted_cluster must be greater than 0.',
      operation: 0,
    },
    {
      name: 'duplicate-filter-chain-match',
      patches: [
        {
          target: OUTBOUND,
          jsonPatch: [
            { op: 'copy', from: '/filter_chains/0', path: '/filter_chains/0' },
            { op: 'replace', path: '/filter_chains/0/name', value: 'copy-of-bookstore' },
          ],
        },
      ],
      native: `filter chain '${t.firstChain}' has the same matching rules defined as 'copy-of-bookstore'`,
      envoy: 'has the same matching rules defined as',
      operation: 0,
    },
    {
      name: 'router-not-last',
      patches: [
        {
          target: OUTBOUND,
          insertHttpFilter: {
            after: 'envoy.filters.http.router',
            filter: {
              name: 'late-fault',
              typed_config: { '@type': FAULT, delay: { fixed_delay: '1s', percentage: { numerator: 1 } } },
            },
          },
        },
      ],
      native:
        'terminal filter named envoy.filters.http.router of type envoy.filters.http.router must be the last filter in a http filter chain.',
      envoy:
        'terminal filter named envoy.filters.http.router of type envoy.filters.http.router must be the last filter in a http filter chain.',
      operation: 0,
    },
    {
      name: 'duplicate-listener-address',
      patches: [
        {
          add: {
            type: 'Listener',
            resource: {
              name: 'another-outbound',
              address: { socket_address: { address: '0.0.0.0', port_value: 15001 } },
              filter_chains: [
                {
                  filters: [
                    {
                      name: 'envoy.filters.network.tcp_proxy',
                      typed_config: { '@type': TCP_PROXY, stat_prefix: 'x', cluster: 'passthrough' },
                    },
                  ],
                },
              ],
            },
          },
        },
      ],
      native: "has duplicate address '0.0.0.0:15001' as existing listener",
      envoy: "has duplicate address '0.0.0.0:15001' as existing listener",
      operation: 0,
    },
    {
      name: 'cluster-provided-lb',
      patches: [
        {
          add: {
            type: 'Cluster',
            resource: {
              name: 'extra-provided',
              type: 'STATIC',
              lb_policy: 'CLUSTER_PROVIDED',
              connect_timeout: '1s',
              load_assignment: { cluster_name: 'extra-provided', endpoints: [] },
            },
          },
        },
      ],
      native: "cluster provided LB specified but cluster 'extra-provided' did not provide one.",
      envoy: "cluster provided LB specified but cluster 'extra-provided' did not provide one.",
      operation: 0,
    },
    {
      name: 'original-dst-round-robin',
      patches: [
        {
          add: {
            type: 'Cluster',
            resource: {
              name: 'extra-odst',
              type: 'ORIGINAL_DST',
              lb_policy: 'ROUND_ROBIN',
              connect_timeout: '1s',
            },
          },
        },
      ],
      native: "Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'",
      envoy: "Only 'CLUSTER_PROVIDED' is allowed with cluster type 'ORIGINAL_DST'",
      operation: 0,
    },
    {
      name: 'route-to-missing-cluster',
      patches: [
        {
          target: ROUTE,
          jsonPatch: [
            {
              op: 'add',
              path: '/virtual_hosts/0/routes/0',
              value: { match: { prefix: '/nope' }, route: { cluster: 'nope' } },
            },
          ],
        },
      ],
      native: 'unknown cluster "nope"',
      // Over RDS (validate_clusters false) Envoy takes it and answers 503 on every call.
      envoy: null,
      operation: 0,
    },
  ];
}

/** The hostile cases on the bookbuyer proxy. */
export const HOSTILE: readonly HostileCase[] = hostileCases(BOOKBUYER);

/** A patch that must apply. */
export interface ValidCase {
  readonly name: string;
  readonly patches: readonly Record<string, unknown>[];
}

/** Patches that must apply, with and without Envoy, aimed at `t`. */
export function validCases(t: CaseTarget): ValidCase[] {
  const ROUTE = { type: 'RouteConfiguration', service: t.service };
  return [
    {
      name: 'retry-policy',
      patches: [
        {
          target: ROUTE,
          merge: {
            virtual_hosts: [
              { name: t.virtualHost, retry_policy: { retry_on: 'unavailable', num_retries: 2 } },
            ],
          },
        },
      ],
    },
    {
      name: 'fault-filter',
      patches: [
        {
          target: OUTBOUND,
          insertHttpFilter: {
            before: 'envoy.filters.http.router',
            filter: {
              name: 'custom.abort-some',
              typed_config: {
                '@type': FAULT,
                abort: { http_status: 503, percentage: { numerator: 1, denominator: 'HUNDRED' } },
              },
            },
          },
        },
      ],
    },
    {
      name: 'extra-cluster',
      patches: [
        {
          add: {
            type: 'Cluster',
            resource: {
              name: 'extra',
              type: 'STATIC',
              connect_timeout: '1s',
              load_assignment: { cluster_name: 'extra', endpoints: [] },
            },
          },
        },
      ],
    },
  ];
}

/** The valid cases on the bookbuyer proxy. */
export const VALID: readonly ValidCase[] = validCases(BOOKBUYER);

/** An EnvoyPatch manifest (in the bookbuyer namespace unless told). */
export function patchManifest(
  name: string,
  patches: readonly Record<string, unknown>[],
  namespace = 'bookbuyer',
): ManifestFile {
  return {
    source: `${name}.yaml`,
    text: JSON.stringify({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'EnvoyPatch',
      metadata: { name, namespace, creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: { patches },
    }),
  };
}
