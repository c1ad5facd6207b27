/**
 * The local conformance driver for the Envoy flavor: the same API server and the same Weft as the
 * local driver, but the pods run as Weft's injector makes them, with real Envoy sidecars.
 * - A kube-apiserver and etcd on loopback (the Kubernetes test tier), with Weft's CRDs, the
 *   workloads' Namespace, ServiceAccounts, Services and Pods applied through kubectl. Its service
 *   range is part of the pods' own subnet, so every ClusterIP it hands out is an address of this
 *   network and of nobody else's. No kubelet runs: each Pod's status (ready, its IP on the pod
 *   network) is patched in, and Weft takes endpoints from ready Pods.
 * - MeshConfig `outboundPassthrough: false`: a call to a service a caller may not reach is closed by
 *   the caller's sidecar instead of leaving the pod toward the ClusterIP.
 * - `weft serve --kubeconfig` (Kubernetes mode, in process) with its CA in the `weft-ca` Secret,
 *   xDS and the certificate endpoint listening on the pod network's host address.
 * - Every Pod, read back from the API server, run by {@link PodHost} in a network namespace of a
 *   {@link PodNetwork}: capture rules, `weft agent` with a real ServiceAccount token (`kubectl
 *   create token <sa> --audience weft`, checked by TokenReview), Envoy with Weft's bootstrap as uid
 *   1337, and the pod app. Servers serve plain gRPC (no xDS) on every named port of the workloads
 *   file; callers make gRPC calls from inside their pod to the Service's ClusterIP and port, so
 *   their own sidecar routes and splits and the server's sidecar authorizes.
 *
 * Every decision is Envoy's, on the config Weft serves. A call fails with the gRPC status the
 * caller saw: the server sidecar's RBAC 403 arrives as PERMISSION_DENIED, a connection the caller's
 * sidecar refuses as UNAVAILABLE.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findEnvoy, NO_ENVOY } from '../envoy/binary';
import { BUNDLE_CONFIGMAP } from '../inject/mutate';
import type { KubeObject } from '../kube/client';
import { PodApp } from '../netns/app-client';
import type { AppAnswer } from '../netns/app-protocol';
import { POD_APP_IMAGE } from '../netns/mesh';
import { PodNetwork } from '../netns/network';
import { POD_APP_ENTRYPOINT, PodHost, type RunningPod, WEFT_ENTRYPOINT } from '../netns/pod';
import { netnsUnavailable } from '../netns/system';
import { DEFAULT_PROXY_IMAGE, DEFAULT_WEFT_IMAGE, startKubeServe } from '../serve';
import type { CallOutcome, CallSpec, Driver } from './driver';
import { workloadManifests } from './local-driver';
import { LocalKubeDriver, TRUST_DOMAIN, toKubectlInput } from './local-kube';
import { METHODS, type Workloads } from './schema';

/** Options of {@link LocalEnvoyDriver}. */
export interface LocalEnvoyDriverOptions {
  /** The pod network's name (1-6 of a-z0-9; default `cf`): see {@link PodNetwork}. */
  network?: string;
  /** Its /24 (default 10.215.0.0/24); the API server's service range is its top /27. */
  subnet?: string;
  /** The Envoy binary (default: {@link findEnvoy}). */
  envoyBinary?: string;
  /** Deadline of one call in ms. */
  callDeadlineMs?: number;
  /** Pods started at once (each starts an agent and an Envoy; default 2). */
  startConcurrency?: number;
  /** Keep the work folder (CA, tokens, every pod's volumes and logs) after {@link LocalEnvoyDriver.stop}. */
  keepWorkDir?: boolean;
}

/** The gRPC service of the scenarios' echo methods (`/weft.echo.Echo/Get`, ...). */
const ECHO_SERVICE = 'weft.echo.Echo';
/**
 * Where each server pod's app listens, by the index of the workloads file's port: ports of their
 * own rather than the Service ports, so each Service really maps its port to a named target port.
 */
const CONTAINER_PORT_BASE = 9001;

/**
 * Why the Envoy flavor cannot run on this machine (no root, a missing command, no Envoy), or
 * undefined when it can.
 */
export function envoyFlavorUnavailable(envoyBinary?: string): string | undefined {
  const reasons = [netnsUnavailable(), findEnvoy(envoyBinary) ? undefined : NO_ENVOY].filter(
    (r): r is string => r !== undefined,
  );
  return reasons.length > 0 ? reasons.join('; ') : undefined;
}

/** The service range inside a /24 pod subnet: its top /27, above the pods' addresses. */
function serviceRangeOf(subnet: string): string {
  return subnet.replace(/\.0\/24$/, '.224/27');
}

/** Runs `f` over `items`, at most `n` at a time. */
async function limited<T, R>(items: readonly T[], n: number, f: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
  return out;
}

/** A workload manifest with its Pods running the pod app: servers serve gRPC on every port. */
function asPodApp(m: Record<string, unknown>): Record<string, unknown> {
  if (m.kind !== 'Pod') return m;
  const spec = m.spec as { containers: { ports?: { name: string; containerPort: number }[] }[] };
  const ports = spec.containers[0]?.ports ?? [];
  const args = [
    ...ports.flatMap((p) => ['--grpc', String(p.containerPort)]),
    ...(ports.length > 0 ? METHODS.flatMap((x) => ['--grpc-path', `/${ECHO_SERVICE}/${x}`]) : []),
  ];
  return {
    ...m,
    spec: {
      ...spec,
      containers: [
        {
          name: 'app',
          image: POD_APP_IMAGE,
          stdin: true,
          args,
          ...(ports.length > 0 ? { ports } : {}),
        },
      ],
    },
  };
}

/** See the file comment. */
export class LocalEnvoyDriver extends LocalKubeDriver implements Driver {
  readonly name = 'local';
  readonly flavor = 'envoy';
  private network: PodNetwork | undefined;
  private host: PodHost | undefined;
  private workDir: string | undefined;
  private readonly pods = new Map<string, { pod: RunningPod; app: PodApp }>();
  /** Each Service's ClusterIP, from the API server. */
  private readonly clusterIPs = new Map<string, string>();
  private readonly deadline: number;

  constructor(private readonly o: LocalEnvoyDriverOptions = {}) {
    super();
    this.deadline = o.callDeadlineMs ?? 1500;
  }

  protected describe(): string {
    return 'local Envoy driver';
  }

  protected xdsTarget(): string {
    return `${this.network!.hostAddress}:${this.serve.port}`;
  }

  async start(w: Workloads): Promise<void> {
    const missing = envoyFlavorUnavailable(this.o.envoyBinary);
    if (missing) throw new Error(`the Envoy flavor cannot run here: ${missing}`);
    const envoyBinary = findEnvoy(this.o.envoyBinary)!;
    const subnet = this.o.subnet ?? '10.215.0.0/24';
    this.workDir = mkdtempSync(join(tmpdir(), 'weft-conformance-envoy-'));
    this.network = await PodNetwork.create({ name: this.o.network ?? 'cf', subnet });
    const network = this.network;
    await this.startApiServer({ serviceClusterIpRange: serviceRangeOf(subnet) });
    await this.kubectl(
      ['apply', '-f', '-'],
      toKubectlInput([
        {
          apiVersion: 'weft.dev/v1alpha1',
          kind: 'MeshConfig',
          metadata: { name: 'mesh', namespace: 'weft-system' },
          spec: { trustDomain: TRUST_DOMAIN, outboundPassthrough: false },
        },
      ]),
    );
    const ports = new Map<string, Record<string, number>>();
    for (const s of w.servers)
      ports.set(s.name, Object.fromEntries(w.ports.map((p, i) => [p.name, CONTAINER_PORT_BASE + i])));
    await this.kubectl(['apply', '-f', '-'], toKubectlInput(workloadManifests(w, ports).map(asPodApp)));
    const ips = new Map<string, string>();
    for (const p of [...w.servers, ...w.clients]) ips.set(p.name, network.podAddress());
    await this.markPodsReady(w.namespace, ips);
    for (const s of w.services) {
      const ip = (
        await this.kubectl(['get', 'service', s.name, '-n', w.namespace, '-o', 'jsonpath={.spec.clusterIP}'])
      ).trim();
      this.clusterIPs.set(s.name, ip);
    }
    const host = network.hostAddress;
    this.weft = await startKubeServe({
      kubeconfig: this.kubeEnv.kubeconfigPath,
      replica: 'conformance-envoy',
      xdsAddress: `${host}:0`,
      caAddress: `${host}:0`,
      trustDomain: TRUST_DOMAIN,
      quietMs: 50,
      maxDelayMs: 300,
      leaseSeconds: 5,
      leaseRetryMs: 500,
    });
    const ca = this.weft.identity.running.ca;
    if (!ca) throw new Error('internal: the local Envoy driver runs Weft with a CA');
    // Real ServiceAccount tokens, made before any pod starts: the pod host asks for them synchronously.
    const tokens = new Map<string, string>();
    for (const sa of new Set([...w.servers, ...w.clients].map((p) => p.serviceAccount))) {
      tokens.set(
        sa,
        (await this.kubectl(['create', 'token', sa, '-n', w.namespace, '--audience', 'weft'])).trim(),
      );
    }
    this.host = new PodHost({
      network,
      dir: join(this.workDir, 'pods'),
      injector: {
        weftImage: DEFAULT_WEFT_IMAGE,
        proxyImage: DEFAULT_PROXY_IMAGE,
        xdsAddress: `${host}:${this.weft.port}`,
        caAddress: `${host}:${this.weft.identity.certificatePort}`,
        trustDomain: TRUST_DOMAIN,
      },
      envoyBinary,
      entrypoints: { [DEFAULT_WEFT_IMAGE]: WEFT_ENTRYPOINT, [POD_APP_IMAGE]: POD_APP_ENTRYPOINT },
      serviceAccountToken: (ns, sa) => {
        const t = ns === w.namespace ? tokens.get(sa) : undefined;
        if (!t) throw new Error(`no token for ServiceAccount ${ns}/${sa}`);
        return t;
      },
      configMaps: { [BUNDLE_CONFIGMAP]: { 'bundle.pem': ca.bundlePem() } },
    });
    const hostOf = this.host;
    await limited([...w.servers, ...w.clients], this.o.startConcurrency ?? 2, async (p) => {
      // The Pod as the API server stored it (uid, status), as a kubelet would get it.
      const stored = JSON.parse(
        await this.kubectl(['get', 'pod', p.name, '-n', w.namespace, '-o', 'json']),
      ) as KubeObject;
      const pod = await hostOf.start(stored);
      const process = pod.process('app');
      if (!process) throw new Error(`pod ${p.name}: its app did not start`);
      try {
        this.pods.set(p.name, { pod, app: await PodApp.attach(process) });
      } catch (err) {
        await pod.stop();
        throw err;
      }
    });
  }

  async call(spec: CallSpec, n: number): Promise<CallOutcome[]> {
    const caller = this.pods.get(spec.from);
    if (!caller) throw new Error(`no pod ${spec.from}`);
    const ip = this.clusterIPs.get(spec.service);
    if (!ip) return Array.from({ length: n }, () => unknownService(spec.service));
    // The pod app makes the calls one after the other on one new channel: a channel per batch is
    // what a newly started caller would have, and the sidecar keeps its own upstream connections.
    const results = await caller.app.call({
      op: 'grpc',
      host: ip,
      port: spec.port,
      path: `/${ECHO_SERVICE}/${spec.method}`,
      metadata: spec.headers,
      n,
      timeoutMs: spec.deadlineMs ?? this.deadline,
    });
    return results.map((r): CallOutcome => {
      if (!r.ok) return { ok: false, code: r.code, message: r.message };
      try {
        return { ok: true, backend: (JSON.parse(r.body) as AppAnswer).pod };
      } catch {
        return {
          ok: false,
          code: 'UNKNOWN',
          message: `not an answer of the pod app: ${r.body.slice(0, 200)}`,
        };
      }
    });
  }

  closeChannel(): void {
    // Each batch of calls has its own channel in the caller's pod, closed when the batch ends.
  }

  /** A pod's folder (volumes, every container's log), for a failure's diagnosis. */
  podDir(name: string): string | undefined {
    return this.pods.get(name)?.pod.dir;
  }

  async stop(): Promise<void> {
    await this.host?.stopAll();
    this.host = undefined;
    this.pods.clear();
    await this.stopWeftAndApiServer();
    await this.network?.destroy();
    this.network = undefined;
    if (this.workDir && !this.o.keepWorkDir) rmSync(this.workDir, { recursive: true, force: true });
    this.workDir = undefined;
  }
}

function unknownService(service: string): CallOutcome {
  return { ok: false, code: 'NOT_FOUND', message: `no Service ${service} in the workloads` };
}
