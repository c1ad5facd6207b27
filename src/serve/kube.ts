/**
 * `weft serve --kubernetes`: the control plane in a cluster (in-cluster credentials) or against
 * any API server (`--kubeconfig FILE`). Inputs come from informers over every SMI and core kind
 * Weft reads, limited to namespaces labelled `weft.dev/mesh=enabled`; conditions go back to the
 * cluster as Events and status, written by the elected leader.
 *
 * Identity works as in folder mode (mTLS xDS, identity from the peer certificate, SDS for Envoy,
 * the certificate endpoint for `weft agent`), with the CA's root kept in a Secret of the mesh
 * namespace (created by whichever replica starts first), agents' ServiceAccount tokens checked with
 * TokenReview, and the trust bundle published by the leader into every mesh namespace.
 */
import { hostname } from 'node:os';
import type { FastifyInstance } from 'fastify';
import { Metrics } from '../admin/metrics';
import { listenAdmin, registerXdsMetrics } from '../admin/server';
import { dashboardSources } from '../dashboard/routes';
import type { InjectorOptions } from '../inject/mutate';
import { InjectionWebhook } from '../inject/webhook';
import { CaBundlePublisher } from '../kube/ca-bundle';
import { KubeClient, loadKubeConfig } from '../kube/client';
import { KubeController } from '../kube/controller';
import { kubeDebugAccess } from '../kube/debug-access';
import { DEFAULT_CA_SECRET, SecretCaStore } from '../kube/secret-ca-store';
import { MESH_LABEL, MESH_LABEL_VALUE } from '../kube/source';
import { KubeTokenReviewer } from '../kube/token-review';
import { logger } from '../log';
import { MeshCompiler } from '../mesh/compiler';
import { admitPatch } from '../mesh/patch-admission';
import { admitSmi } from '../mesh/smi-admission';
import { registerTrafficMetrics, startTrafficMetrics, type TrafficMetricsRuntime } from '../metrics';
import { AggregatedApi } from '../metrics/aggregated';
import { MetricsPeers } from '../metrics/peers';
import { listenOn } from '../net';
import { judgeFor } from '../patch/envoy-judge';
import { HelperThread } from '../worker/helper-thread';
import { envoyResourceEncoder } from '../xds/encoder';
import { AdsServer } from '../xds/server/ads-server';
import {
  envoyGroupIdentity,
  type ServeIdentity,
  type ServeIdentityOptions,
  startIdentityForServe,
} from './identity';

const log = logger('serve');

/** Options of Kubernetes mode. */
export interface KubeServeOptions extends ServeIdentityOptions {
  /** `--ca-secret`: the Secret in the mesh namespace holding the CA root (default weft-ca). */
  caSecret?: string;
  /** kubeconfig file; default: KUBECONFIG, ~/.kube/config, else in-cluster credentials. */
  kubeconfig?: string;
  /** Weft's own namespace: MeshConfig, mesh-wide EnvoyPatches, the leader Lease (default weft-system). */
  meshNamespace?: string;
  /** This replica's name for leader election (default POD_NAME, else the host name). */
  replica?: string;
  xdsAddress: string;
  adminAddress?: string;
  /** Compile with mutual TLS between proxies (default true). */
  mtls?: boolean;
  /** `--envoy`: Envoy binary judging patched config (see judgeFor); false: none. */
  envoy?: string | boolean;
  /** Batching window and longest delay of a change, in ms. */
  quietMs?: number;
  maxDelayMs?: number;
  /** Lease timing (tests shorten it). */
  leaseSeconds?: number;
  leaseRetryMs?: number;
  /** `--webhook-address`: serve the sidecar injector here (needs the mesh CA). */
  webhookAddress?: string;
  /** What the injector adds to pods (images, resources, capture exclusions). */
  injector?: InjectorOptions;
  /** Extra SANs of the injector's certificate, for a webhook registered by URL. */
  webhookDnsNames?: readonly string[];
  webhookIpAddresses?: readonly string[];
  /**
   * `--metrics-api-address`: serve the TrafficMetrics API as an aggregated API here (HTTPS, for
   * the chart's APIServices; needs the mesh CA).
   */
  metricsApiAddress?: string;
  /** `--prometheus-url`: TrafficMetrics from this Prometheus instead of the stats sink. */
  prometheusUrl?: string;
  /**
   * Weft's ServiceAccount in the mesh namespace (default `weft`, as the chart names it): the only
   * account that may read a replica's TrafficMetrics window (see src/metrics/peers.ts).
   */
  serviceAccount?: string;
  /** The token file this replica presents to its peers (default the pod's ServiceAccount token). */
  peerTokenFile?: string;
  /** How long a peer may take to send its window (default 1 s). */
  peerTimeoutMs?: number;
}

/** A running Kubernetes-mode `weft serve`. */
export interface RunningKubeServe {
  server: AdsServer;
  port: number;
  adminUrl?: string;
  compiler: MeshCompiler;
  controller: KubeController;
  identity: ServeIdentity;
  /** Publishes the trust bundle into mesh namespaces (leader only). */
  bundles: CaBundlePublisher | undefined;
  /** The sidecar injector, with `webhookAddress`. */
  webhook: InjectionWebhook | undefined;
  /** The TrafficMetrics aggregated API, with `metricsApiAddress`. */
  metricsApi: AggregatedApi | undefined;
  /** Traffic metrics from the sidecars (the store the APIs answer from). */
  trafficMetrics: TrafficMetricsRuntime;
  /** Resolves after the next compile and its reporting. */
  nextCompile(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Starts Kubernetes mode. The xDS and admin ports open at once (so `/readyz` can say what it waits
 * for); resolves after every informer has listed and the first snapshots exist.
 */
export async function startKubeServe(o: KubeServeOptions): Promise<RunningKubeServe> {
  const client = new KubeClient(loadKubeConfig(o.kubeconfig));
  const meshNamespace = o.meshNamespace ?? 'weft-system';
  const metrics = new Metrics();
  const encoder = envoyResourceEncoder();
  // The CA comes first: one that cannot be loaded stops the start before anything listens.
  // CA flags (--ca-dir, --ca-cert) win over the Secret; --insecure-xds alone means no CA at all.
  const useSecret = !o.caDir && !o.caCert && !o.caKey && !(o.insecureXds && o.caSecret === undefined);
  const identity = await startIdentityForServe(
    {
      ...o,
      ...(useSecret
        ? { store: new SecretCaStore(client, meshNamespace, o.caSecret ?? DEFAULT_CA_SECRET) }
        : {}),
      ...(o.bootstrapTokens ? {} : { reviewerFor: (td: string) => new KubeTokenReviewer(client, td) }),
    },
    encoder,
  );
  let compiler: MeshCompiler | undefined;
  const server = new AdsServer(
    identity.serverOptions(
      (node, id) => compiler?.groupOf(node, id),
      (group) => (compiler ? envoyGroupIdentity(compiler.currentModel, group) : undefined),
    ),
  );
  const judge = judgeFor(o.envoy);
  // Big resources (a RouteConfiguration of 10,000 routes) are encoded on a helper thread during a
  // sliced compile, so xDS and admin keep answering.
  const helper = new HelperThread();
  compiler = new MeshCompiler(server.cache, encoder, {
    mtls: o.mtls ?? true,
    meshNamespace,
    encodeElsewhere: (typeUrl, text) => helper.encode(typeUrl, text),
    ...(judge ? { judge } : {}),
  });
  const ca = identity.running.ca;
  const replica = o.replica ?? process.env.POD_NAME ?? hostname();
  const bundles = ca ? new CaBundlePublisher(client, () => ca.bundlePem()) : undefined;
  const c = compiler;
  const controller = new KubeController({
    client,
    compiler,
    server,
    metrics,
    meshNamespace,
    replica,
    quietMs: o.quietMs,
    maxDelayMs: o.maxDelayMs,
    leaseSeconds: o.leaseSeconds,
    leaseRetryMs: o.leaseRetryMs,
    leaderTasks: [
      async (objects, takeover) => {
        identity.checkModel(c.currentModel);
        if (!bundles) return;
        if (takeover) bundles.reset();
        const namespaces = objects
          .filter((x) => x.kind === 'Namespace' && x.metadata?.labels?.[MESH_LABEL] === MESH_LABEL_VALUE)
          .map((x) => ({ name: x.metadata?.name ?? '', uid: x.metadata?.uid ?? '' }))
          .filter((n) => n.name !== '');
        await bundles.sync(namespaces);
      },
    ],
  });
  // A rotation (or a root leaving the bundle) must reach the mesh namespaces without a compile.
  ca?.on('change', () => controller.refreshLeaderWork());
  // Sidecars stream their stats on the xDS port; the admin server and the aggregated API answer.
  const traffic = startTrafficMetrics(server, () => c.currentModel, {
    mtls: ca !== undefined && !o.insecureXds,
    ...(o.prometheusUrl ? { prometheusUrl: o.prometheusUrl } : {}),
  });
  registerTrafficMetrics(metrics, traffic);
  // With several replicas each holds the streams that reached it: the one answering asks the
  // others for their windows. Their windows are served by the aggregated API server (which has
  // the mesh CA's certificate and token checks), so without it, or with Prometheus as the source
  // (every replica reads everything there), there is nothing to ask.
  let metricsApiPort = Number(o.metricsApiAddress?.slice(o.metricsApiAddress.lastIndexOf(':') + 1) ?? 0);
  const peers =
    o.metricsApiAddress && !o.prometheusUrl && ca
      ? new MetricsPeers({
          client,
          namespace: meshNamespace,
          self: { replica, port: () => metricsApiPort },
          caPem: () => ca.bundlePem(),
          ...(o.peerTokenFile ? { tokenFile: o.peerTokenFile } : {}),
          ...(o.peerTimeoutMs ? { timeoutMs: o.peerTimeoutMs } : {}),
        })
      : undefined;
  if (peers)
    metrics.collect(
      'weft_metrics_peer_failures_total',
      "Other replicas' TrafficMetrics windows left out of an answer (no answer in time, refused, or no peer list).",
      'counter',
      () => [{ labels: {}, value: peers.failures }],
    );
  registerXdsMetrics(metrics, server);
  identity.registerMetrics(metrics, () => c.identityMismatches);
  if (bundles) {
    metrics.collect(
      'weft_ca_bundle_writes_total',
      'Trust bundle ConfigMaps written by this replica.',
      'counter',
      () => [{ labels: {}, value: bundles.writes }],
    );
  }
  let admin: { app: FastifyInstance; url: string } | undefined;
  let port: number;
  try {
    port = await listenOn('--xds-address', o.xdsAddress, () =>
      server.listen(o.xdsAddress, identity.running.xdsCredentials),
    );
    if (o.adminAddress) {
      const adminAddress = o.adminAddress;
      admin = await listenOn('--admin-address', adminAddress, () =>
        listenAdmin(adminAddress, {
          metrics,
          xds: server,
          ready: () => controller.ready,
          notReadyReason: () => controller.notReadyReason(),
          conditions: () => controller.currentConditions(),
          // Debug views only for callers the API server vouches for, in the namespaces they may read.
          debugAccess: kubeDebugAccess(client, {
            namespaces: () =>
              c.currentModel.namespaces
                .filter((n) => n.labels[MESH_LABEL] === MESH_LABEL_VALUE)
                .map((n) => n.name),
          }),
          version: VERSION,
          trafficMetrics: { store: traffic.store, model: traffic.model, ...(peers ? { peers } : {}) },
          dashboard: dashboardSources(c, traffic, peers),
        }),
      );
      log.info('admin server listening', { url: admin.url });
    }
  } catch (err) {
    // Close what already runs (the xDS server, the CA's timers) so the process exits with the error.
    await server.shutdown(0);
    await identity.stop();
    throw err;
  }
  // The injector and the aggregated API present certificates of the mesh CA.
  const needCa = (flag: string): NonNullable<typeof ca> => {
    if (!ca)
      throw new Error(
        `${flag} needs the mesh CA for its serving certificate, but Weft runs without one (--insecure-xds alone); pass --ca-secret or drop ${flag}`,
      );
    return ca;
  };
  let webhook: InjectionWebhook | undefined;
  let metricsApi: AggregatedApi | undefined;
  try {
    if (o.webhookAddress) {
      const webhookCa = needCa('--webhook-address');
      webhook = await InjectionWebhook.start({
        address: o.webhookAddress,
        ca: webhookCa,
        client,
        meshNamespace,
        injector: { trustDomain: webhookCa.trustDomain, ...(o.injector ?? defaultInjector()) },
        validatePatch: (patch, budgetMs) => admitPatch(c, patch, budgetMs),
        validateSmi: (object) => admitSmi(c, object),
        ...(o.webhookDnsNames ? { extraDnsNames: o.webhookDnsNames } : {}),
        ...(o.webhookIpAddresses ? { extraIpAddresses: o.webhookIpAddresses } : {}),
      });
    }
    if (o.metricsApiAddress) {
      const metricsCa = needCa('--metrics-api-address');
      try {
        metricsApi = await AggregatedApi.start({
          address: o.metricsApiAddress,
          ca: metricsCa,
          client,
          namespace: meshNamespace,
          store: traffic.store,
          model: traffic.model,
          ...(peers
            ? { peers, peerUser: `system:serviceaccount:${meshNamespace}:${o.serviceAccount ?? 'weft'}` }
            : {}),
        });
        metricsApiPort = metricsApi.port;
      } catch (err) {
        // Metrics are not worth a mesh without configuration: Weft serves on, and says why the
        // aggregated API is missing (the admin server's copy still answers).
        log.error('the TrafficMetrics aggregated API is not served', {
          address: o.metricsApiAddress,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  } catch (err) {
    // Close what already runs (servers, timers) so the process exits with the error.
    traffic.stop();
    await webhook?.stop();
    await admin?.app.close();
    await server.shutdown();
    await identity.stop();
    throw err;
  }
  log.info('watching the API server', { server: client.serverUrl, meshNamespace });
  await controller.start();
  return {
    server,
    port,
    adminUrl: admin?.url,
    compiler: c,
    controller,
    identity,
    bundles,
    webhook,
    metricsApi,
    trafficMetrics: traffic,
    nextCompile: () => controller.nextCompile(),
    stop: async () => {
      traffic.stop();
      await metricsApi?.stop();
      await webhook?.stop();
      await controller.stop();
      helper.stop();
      await admin?.app.close();
      await server.shutdown();
      await identity.stop();
    },
  };
}

/** The injector's settings when none are given: the images of this release. */
export function defaultInjector(): InjectorOptions {
  return { weftImage: DEFAULT_WEFT_IMAGE, proxyImage: DEFAULT_PROXY_IMAGE };
}

// package.json sits two levels above dist/src/cli at run time.
const VERSION = (require('../../../package.json') as { version: string }).version;
/** Weft's image of this release (capture init container and agent). */
export const DEFAULT_WEFT_IMAGE = `ghcr.io/weft-mesh/weft:${VERSION}`;
/** The Envoy sidecar's default image. */
export const DEFAULT_PROXY_IMAGE = 'envoyproxy/envoy:v1.40.0';
