/**
 * The Envoy sidecar's bootstrap: everything Envoy needs before it can reach Weft.
 *
 * - ADS over TLS to Weft (`weft.weft-system.svc:15010`), checking that the server presents Weft's
 *   SPIFFE ID. The client certificate is the workload's own, from the files `weft agent` keeps
 *   fresh (cert.pem, key.pem, ca.pem). Envoy reads them through file-based SDS with a
 *   `watched_directory`: the agent replaces the files by renaming into that folder, and Envoy reloads
 *   the pair on each move, so a renewal applies without a restart.
 * - The node: its id is `<namespace>/<pod>` (given on Envoy's command line as `--service-node`,
 *   because a pod's name is not known when it is admitted), its cluster the namespace
 *   (`--service-cluster`; Envoy refuses to start file-based SDS without both), and
 *   `metadata.FLAVOR: envoy`, which is how src/mesh/proxies.ts resolves the proxy to its Pod and
 *   flavor.
 * - Stats to Weft: Envoy's metrics service stat sink streams them over the same TLS connection
 *   settings as xDS (the `weft-xds` cluster: Weft serves `MetricsService` on its xDS port), every
 *   flush interval, counters as deltas and histograms as buckets only (no summaries, which Weft
 *   would not read). Weft keeps what says who called whom (see src/metrics/sink.ts), so the
 *   TrafficMetrics API needs no Prometheus.
 * - Envoy's admin interface on 127.0.0.1 only (it can change Envoy's state), a Prometheus listener
 *   that exposes `/stats/prometheus` and nothing else of the admin API, and a health listener for
 *   Envoy's readiness and the rewritten application probes (see probes.ts).
 *
 * Pure: the same options give the same bytes.
 */

import type { JsonObject } from '../envoy/codec';
import { CA_FILE, CERT_FILE, KEY_FILE } from '../identity/names';
import { controlPlaneIdentity } from '../identity/tls';

/** Ports and paths of the injected sidecar, shared by the bootstrap, the pod and the capture rules. */
export const SIDECAR = {
  /** Envoy's admin interface (127.0.0.1 only). */
  adminPort: 15000,
  /** Prometheus scrape port (`/stats/prometheus`). */
  statsPort: 15090,
  /** Health port: Envoy readiness (`/healthz/ready`) and rewritten application probes. */
  healthPort: 15020,
  /** Path of Envoy's readiness on the health port. */
  readyPath: '/healthz/ready',
  /** The UID Envoy and `weft agent` run as; traffic capture lets it through untouched. */
  proxyUid: 1337,
  /** Folder (an emptyDir) where `weft agent` writes cert.pem, key.pem and ca.pem. */
  certDir: '/var/run/weft/certs',
  /** Folder (an emptyDir) where the Envoy container writes its bootstrap and SDS files. */
  envoyDir: '/var/run/weft/envoy',
} as const;

/** Where the file-based SDS definitions live (written next to the bootstrap). */
export const SDS_CERT_FILE = `${SIDECAR.envoyDir}/xds-cert.json`;
/** The trust bundle's SDS definition. */
export const SDS_CA_FILE = `${SIDECAR.envoyDir}/xds-ca.json`;
/** The bootstrap file. */
export const BOOTSTRAP_FILE = `${SIDECAR.envoyDir}/bootstrap.json`;

/** Options of {@link envoyBootstrap}. */
export interface BootstrapOptions {
  /** Weft's xDS address (default `weft.weft-system.svc:15010`). */
  xdsAddress?: string;
  /** Trust domain of the mesh; Weft must present `spiffe://<td>/ns/weft-system/sa/weft`. */
  trustDomain?: string;
  /** node.id; leave unset in pods, where `--service-node <ns>/<pod>` sets it at run time. */
  nodeId?: string;
  /** Rewritten probes: a path on the health port forwarded to a local application port. */
  probes?: readonly ProbeRoute[];
  /** Stream stats to Weft's metrics service (default true). */
  metricsSink?: boolean;
}

/** One application probe served on the health port. */
export interface ProbeRoute {
  /** Path kubelet asks on the health port, e.g. `/app-health/web/livez`. */
  readonly path: string;
  /** The application's port on localhost. */
  readonly port: number;
  /** The application's own probe path. */
  readonly appPath: string;
  /** `HTTPS` when the application serves its probe over TLS (not verified, as kubelet does not). */
  readonly scheme?: 'HTTP' | 'HTTPS';
}

/** The default address of Weft's xDS server inside a cluster. */
export const DEFAULT_XDS_ADDRESS = 'weft.weft-system.svc:15010';

const T = {
  bootstrap: 'envoy.config.bootstrap.v3.Bootstrap',
  discoveryResponse: 'envoy.service.discovery.v3.DiscoveryResponse',
  secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  upstreamTls: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  httpOptions: 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  hcm: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  metricsService: 'type.googleapis.com/envoy.config.metrics.v3.MetricsServiceConfig',
} as const;

/** The message types of {@link envoyBootstrap} and {@link sdsFiles}, for checking them. */
export const BOOTSTRAP_TYPE = T.bootstrap;
/** The message type of the SDS files. */
export const SDS_FILE_TYPE = T.discoveryResponse;

const XDS_CLUSTER = 'weft-xds';
const ADMIN_CLUSTER = 'weft-admin';
const CERT_SECRET = 'weft-xds-client';
const CA_SECRET = 'weft-xds-ca';

function hostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  const port = Number(address.slice(i + 1));
  if (i <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
    throw new Error(`xDS address "${address}" is not host:port (for example ${DEFAULT_XDS_ADDRESS})`);
  return { host: address.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

function socket(address: string, port: number): JsonObject {
  return { socket_address: { address, port_value: port } };
}

function staticCluster(name: string, port: number, tls: boolean): JsonObject {
  return {
    name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: name,
      endpoints: [{ lb_endpoints: [{ endpoint: { address: socket('127.0.0.1', port) } }] }],
    },
    ...(tls
      ? {
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: { '@type': T.upstreamTls, common_tls_context: {} },
          },
        }
      : {}),
  };
}

function sdsConfig(file: string): JsonObject {
  return {
    path_config_source: { path: file, watched_directory: { path: SIDECAR.certDir } },
    resource_api_version: 'V3',
  };
}

function httpListener(name: string, port: number, routes: JsonObject[]): JsonObject {
  return {
    name,
    address: socket('0.0.0.0', port),
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': T.hcm,
              stat_prefix: name,
              route_config: { name, virtual_hosts: [{ name, domains: ['*'], routes }] },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': T.router } }],
            },
          },
        ],
      },
    ],
  };
}

function exactRoute(path: string, cluster: string, rewrite: string): JsonObject {
  return { match: { path }, route: { cluster, prefix_rewrite: rewrite } };
}

/** The name of the local cluster a probe goes to. */
function probeCluster(p: ProbeRoute): string {
  return `weft-probe|${p.port}${p.scheme === 'HTTPS' ? '|https' : ''}`;
}

/** Builds the bootstrap (canonical JSON of `envoy.config.bootstrap.v3.Bootstrap`). */
export function envoyBootstrap(o: BootstrapOptions = {}): JsonObject {
  const xds = hostPort(o.xdsAddress ?? DEFAULT_XDS_ADDRESS);
  const probes = [...(o.probes ?? [])].sort((a, b) => a.path.localeCompare(b.path));
  const probeClusters = new Map<string, JsonObject>();
  for (const p of probes)
    probeClusters.set(probeCluster(p), staticCluster(probeCluster(p), p.port, p.scheme === 'HTTPS'));
  return {
    node: { ...(o.nodeId ? { id: o.nodeId } : {}), metadata: { FLAVOR: 'envoy' } },
    admin: { address: socket('127.0.0.1', SIDECAR.adminPort) },
    ...(o.metricsSink === false
      ? {}
      : {
          stats_sinks: [
            {
              name: 'envoy.stat_sinks.metrics_service',
              typed_config: {
                '@type': T.metricsService,
                transport_api_version: 'V3',
                grpc_service: { envoy_grpc: { cluster_name: XDS_CLUSTER } },
                report_counters_as_deltas: true,
                histogram_emit_mode: 'HISTOGRAM',
              },
            },
          ],
        }),
    dynamic_resources: {
      ads_config: {
        api_type: 'GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: XDS_CLUSTER } }],
        set_node_on_first_message_only: true,
      },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [
        {
          name: XDS_CLUSTER,
          type: 'STRICT_DNS',
          connect_timeout: '5s',
          load_assignment: {
            cluster_name: XDS_CLUSTER,
            endpoints: [{ lb_endpoints: [{ endpoint: { address: socket(xds.host, xds.port) } }] }],
          },
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': T.httpOptions,
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          transport_socket: {
            name: 'envoy.transport_sockets.tls',
            typed_config: {
              '@type': T.upstreamTls,
              sni: xds.host,
              common_tls_context: {
                tls_certificate_sds_secret_configs: [
                  { name: CERT_SECRET, sds_config: sdsConfig(SDS_CERT_FILE) },
                ],
                combined_validation_context: {
                  // Any certificate of the mesh CA would pass the chain check: only Weft's own
                  // SPIFFE ID may serve this proxy its configuration.
                  default_validation_context: {
                    match_typed_subject_alt_names: [
                      {
                        san_type: 'URI',
                        matcher: { exact: controlPlaneIdentity(o.trustDomain ?? 'cluster.local') },
                      },
                    ],
                  },
                  validation_context_sds_secret_config: {
                    name: CA_SECRET,
                    sds_config: sdsConfig(SDS_CA_FILE),
                  },
                },
              },
            },
          },
        },
        staticCluster(ADMIN_CLUSTER, SIDECAR.adminPort, false),
        ...[...probeClusters.keys()].sort().map((k) => probeClusters.get(k)!),
      ],
      listeners: [
        httpListener('weft-stats', SIDECAR.statsPort, [
          exactRoute('/stats/prometheus', ADMIN_CLUSTER, '/stats/prometheus'),
        ]),
        httpListener('weft-health', SIDECAR.healthPort, [
          exactRoute(SIDECAR.readyPath, ADMIN_CLUSTER, '/ready'),
          ...probes.map((p) => exactRoute(p.path, probeCluster(p), p.appPath)),
        ]),
      ],
    },
  };
}

/** The two file-based SDS definitions the bootstrap points at, keyed by file path. */
export function sdsFiles(): Record<string, JsonObject> {
  const resp = (secret: JsonObject): JsonObject => ({ resources: [{ '@type': T.secret, ...secret }] });
  const watched = { path: SIDECAR.certDir };
  return {
    [SDS_CERT_FILE]: resp({
      name: CERT_SECRET,
      tls_certificate: {
        certificate_chain: { filename: `${SIDECAR.certDir}/${CERT_FILE}` },
        private_key: { filename: `${SIDECAR.certDir}/${KEY_FILE}` },
        watched_directory: watched,
      },
    }),
    [SDS_CA_FILE]: resp({
      name: CA_SECRET,
      validation_context: {
        trusted_ca: { filename: `${SIDECAR.certDir}/${CA_FILE}` },
        watched_directory: watched,
      },
    }),
  };
}
