/**
 * `weft serve --kubernetes`: the control plane in a cluster (in-cluster credentials) or against
 * any API server (`--kubeconfig FILE`). Inputs come from informers over every SMI and core kind
 * Weft reads, limited to namespaces labelled `weft.dev/mesh=enabled`; conditions go back to the
 * cluster as Events and status, written by the elected leader.
 */
import { hostname } from 'node:os';
import { ServerCredentials } from '@grpc/grpc-js';
import type { FastifyInstance } from 'fastify';
import { Metrics } from '../admin/metrics';
import { listenAdmin, registerXdsMetrics } from '../admin/server';
import { KubeClient, loadKubeConfig } from '../kube/client';
import { KubeController } from '../kube/controller';
import { logger } from '../log';
import { MeshCompiler } from '../mesh/compiler';
import { envoyResourceEncoder } from '../xds/encoder';
import { AdsServer } from '../xds/server/ads-server';

const log = logger('serve');

/** Options of Kubernetes mode. */
export interface KubeServeOptions {
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
  /** Batching window and longest delay of a change, in ms. */
  quietMs?: number;
  maxDelayMs?: number;
  /** Lease timing (tests shorten it). */
  leaseSeconds?: number;
  leaseRetryMs?: number;
}

/** A running Kubernetes-mode `weft serve`. */
export interface RunningKubeServe {
  server: AdsServer;
  port: number;
  adminUrl?: string;
  compiler: MeshCompiler;
  controller: KubeController;
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
  let compiler: MeshCompiler | undefined;
  const server = new AdsServer({ groupOf: (node, identity) => compiler?.groupOf(node, identity) });
  compiler = new MeshCompiler(server.cache, envoyResourceEncoder(), { mtls: o.mtls ?? true, meshNamespace });
  const controller = new KubeController({
    client,
    compiler,
    server,
    metrics,
    meshNamespace,
    replica: o.replica ?? process.env.POD_NAME ?? hostname(),
    quietMs: o.quietMs,
    maxDelayMs: o.maxDelayMs,
    leaseSeconds: o.leaseSeconds,
    leaseRetryMs: o.leaseRetryMs,
  });
  registerXdsMetrics(metrics, server);
  const port = await server.listen(o.xdsAddress, ServerCredentials.createInsecure());
  let admin: { app: FastifyInstance; url: string } | undefined;
  if (o.adminAddress) {
    admin = await listenAdmin(o.adminAddress, {
      metrics,
      xds: server,
      ready: () => controller.ready,
      notReadyReason: () => controller.notReadyReason(),
      conditions: () => controller.currentConditions(),
    });
    log.info('admin server listening', { url: admin.url });
  }
  log.info('watching the API server', { server: client.serverUrl, meshNamespace });
  await controller.start();
  const c = compiler;
  return {
    server,
    port,
    adminUrl: admin?.url,
    compiler: c,
    controller,
    nextCompile: () => controller.nextCompile(),
    stop: async () => {
      await controller.stop();
      await admin?.app.close();
      await server.shutdown();
    },
  };
}
