/**
 * The hostile-patch suite's cases: EnvoyPatches that pass decoding and protoc-gen-validate yet
 * are refused by every Envoy (each with Envoy 1.40's words and the native rule's), and valid
 * patches that must still apply. All target the bookstore example's bookbuyer proxy.
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

const ROUTE = {
  type: 'RouteConfiguration',
  service: { name: 'bookstore', namespace: 'bookstore', port: 14001 },
};
const OUTBOUND = { type: 'Listener', name: 'outbound' };
const V1 = 'outbound|14001|bookstore/bookstore-v1';
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

export const HOSTILE: readonly HostileCase[] = [
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
          { op: 'add', path: '/virtual_hosts/0/routes/0/route/prefix_rewrite', value: '/a' },
          {
            op: 'add',
            path: '/virtual_hosts/0/routes/0/route/regex_rewrite',
            value: { pattern: { regex: '^/b' }, substitution: '/c' },
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
            op: 'replace',
            path: '/virtual_hosts/0/routes/0/route/weighted_clusters/clusters/0/weight',
            value: 0,
          },
          {
            op: 'replace',
            path: '/virtual_hosts/0/routes/0/route/weighted_clusters/clusters/1/weight',
            value: 0,
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
          { op: 'copy', from: '/filter_chains/0', path: '/filter_chains/-' },
          { op: 'replace', path: '/filter_chains/3/name', value: 'copy-of-bookstore' },
        ],
      },
    ],
    native:
      "filter chain 'copy-of-bookstore' has the same matching rules defined as 'outbound|14001|bookstore/bookstore'",
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

/** Patches that must apply, with and without Envoy. */
export const VALID: readonly { name: string; patches: readonly Record<string, unknown>[] }[] = [
  {
    name: 'retry-policy',
    patches: [
      {
        target: ROUTE,
        merge: {
          virtual_hosts: [
            { name: 'bookstore/bookstore|14001', retry_policy: { retry_on: 'unavailable', num_retries: 2 } },
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

/** An EnvoyPatch manifest in the bookbuyer namespace. */
export function patchManifest(name: string, patches: readonly Record<string, unknown>[]): ManifestFile {
  return {
    source: `${name}.yaml`,
    text: JSON.stringify({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'EnvoyPatch',
      metadata: { name, namespace: 'bookbuyer', creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: { patches },
    }),
  };
}
