/**
 * The local conformance driver: everything real, on this machine, in this process.
 * - A kube-apiserver and etcd on loopback (the Kubernetes test tier, `test/kube/env.ts`), with
 *   Weft's CRDs and the scenario workloads' Namespace, ServiceAccounts, Services and Pods applied
 *   through kubectl. No kubelet runs, so each Pod's status (ready, its IP) is patched in; with no
 *   EndpointSlices (the API server refuses loopback addresses in them) Weft takes endpoints from
 *   ready Pods.
 * - `weft serve --kubeconfig` (Kubernetes mode, in process) watching that API server.
 * - The pods as proxyless gRPC workloads: each server Pod runs one xDS-enabled echo server per
 *   named port on its own 127.x address; each client Pod is an xDS echo client. grpc-js-xds binds
 *   a server's port on every interface, so every server also gets its own port numbers.
 * - Mutual TLS as in a cluster (unless `mtls: false`): Weft's CA root in its Secret, and beside
 *   each pod a `weft agent` that gets the pod's certificate with its ServiceAccount token (checked
 *   by TokenReview) and relays the pod's xDS over mTLS. RBAC decisions come from the SPIFFE ID in
 *   the caller's certificate.
 *
 * Every decision (routing, splits, RBAC) is made by grpc-js-xds on the config Weft serves.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { freePort } from '../net';
import { startKubeServe } from '../serve';
import { EchoClient, type EchoServer, proxylessBootstrap, startEchoServer } from '../workload/echo';
import {
  type Sidecar,
  startSidecar,
  xdsChannelCredentials,
  xdsServerCredentials,
} from '../workload/mesh-peer';
import type { CallOutcome, CallSpec, Driver } from './driver';
import { LocalKubeDriver, TRUST_DOMAIN, toKubectlInput } from './local-kube';
import type { Workloads } from './schema';

/** Options of {@link LocalDriver}. */
export interface LocalDriverOptions {
  /** Second octet of the workloads' 127.x.0.y addresses (distinct per concurrent run). */
  net?: number;
  /** Deadline of one call in ms (a denied call in plaintext may wait for it). */
  callDeadlineMs?: number;
  /** Calls in flight at once per batch. */
  concurrency?: number;
  /** Mutual TLS between the workloads and on xDS (default true); false runs everything plaintext. */
  mtls?: boolean;
}

/** The Kubernetes objects of the workloads: namespaces, accounts, Services and Pods (no status). */
export function workloadManifests(
  w: Workloads,
  serverPorts: ReadonlyMap<string, Record<string, number>>,
  image = 'echo',
): Record<string, unknown>[] {
  const ns = w.namespace;
  const accounts = [...new Set([...w.servers, ...w.clients].map((x) => x.serviceAccount))].sort();
  return [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'weft.dev/mesh': 'enabled' } } },
    ...accounts.map((name) => ({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name, namespace: ns },
    })),
    ...w.services.map((s) => ({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: s.name, namespace: ns },
      spec: {
        selector: s.selector,
        ports: w.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.name, appProtocol: 'grpc' })),
      },
    })),
    ...w.servers.map((s) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: s.name, namespace: ns, labels: s.labels },
      spec: {
        serviceAccountName: s.serviceAccount,
        containers: [
          {
            name: 'echo',
            image,
            ports: w.ports.map((p) => ({ name: p.name, containerPort: serverPorts.get(s.name)![p.name]! })),
          },
        ],
      },
    })),
    ...w.clients.map((c) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: c.name, namespace: ns, labels: { app: c.name } },
      spec: { serviceAccountName: c.serviceAccount, containers: [{ name: 'caller', image }] },
    })),
  ];
}

function codeName(code: number | undefined): string {
  if (code === undefined) return 'UNKNOWN';
  return (grpcStatus as unknown as Record<number, string>)[code] ?? String(code);
}

/** See the file comment. */
export class LocalDriver extends LocalKubeDriver implements Driver {
  readonly name = 'local';
  private servers: EchoServer[] = [];
  private readonly clients = new Map<string, EchoClient>();
  private workloads: Workloads | undefined;
  private readonly net: number;
  private readonly deadline: number;
  private readonly concurrency: number;
  private readonly mtls: boolean;
  /** Each pod's agent and xDS relay, by pod name (mTLS only). */
  private readonly sidecars = new Map<string, Sidecar>();
  private tmp: string | undefined;

  constructor(o: LocalDriverOptions = {}) {
    super();
    this.mtls = o.mtls ?? true;
    this.net = o.net ?? 88;
    this.deadline = o.callDeadlineMs ?? 1500;
    this.concurrency = o.concurrency ?? 10;
  }

  protected describe(): string {
    return 'local driver';
  }

  protected xdsTarget(): string {
    return `127.0.0.1:${this.serve.port}`;
  }

  async start(w: Workloads): Promise<void> {
    this.workloads = w;
    await this.startApiServer();
    const ports = new Map<string, Record<string, number>>();
    for (const s of w.servers) {
      const byName: Record<string, number> = {};
      for (const p of w.ports) byName[p.name] = await freePort();
      ports.set(s.name, byName);
    }
    await this.kubectl(['apply', '-f', '-'], toKubectlInput(workloadManifests(w, ports)));
    const ips = new Map<string, string>();
    for (const [i, s] of w.servers.entries()) ips.set(s.name, `127.${this.net}.0.${11 + i}`);
    for (const [i, c] of w.clients.entries()) ips.set(c.name, `127.${this.net}.0.${101 + i}`);
    await this.markPodsReady(w.namespace, ips);
    this.weft = await startKubeServe({
      kubeconfig: this.kubeEnv.kubeconfigPath,
      replica: 'conformance',
      xdsAddress: '127.0.0.1:0',
      ...(this.mtls
        ? { caAddress: '127.0.0.1:0', trustDomain: TRUST_DOMAIN }
        : { mtls: false, insecureXds: true }),
      quietMs: 50,
      maxDelayMs: 300,
      leaseSeconds: 5,
      leaseRetryMs: 500,
    });
    if (this.mtls) await this.startSidecars(w);
    this.servers = await Promise.all(
      w.servers.flatMap((s) =>
        w.ports.map((p) =>
          startEchoServer({
            name: s.name,
            address: `${ips.get(s.name)}:${ports.get(s.name)![p.name]}`,
            bootstrap: this.bootstrapOf(s.name),
            ...(this.mtls ? { credentials: xdsServerCredentials() } : {}),
          }),
        ),
      ),
    );
  }

  /** One agent per pod, with a token of the pod's ServiceAccount for audience `weft`. */
  private async startSidecars(w: Workloads): Promise<void> {
    const weft = this.serve;
    const ca = weft.identity.running.ca;
    if (!ca) throw new Error('internal: the local driver runs Weft with a CA for mTLS');
    this.tmp = mkdtempSync(join(tmpdir(), 'weft-conformance-'));
    const pods = [...w.servers, ...w.clients];
    const started = await Promise.all(
      pods.map(async (pod) => {
        const token = (
          await this.kubectl(['create', 'token', pod.serviceAccount, '-n', w.namespace, '--audience', 'weft'])
        ).trim();
        return startSidecar({
          dir: join(this.tmp!, pod.name),
          nodeId: `${w.namespace}/${pod.name}`,
          token,
          caTarget: `127.0.0.1:${weft.identity.certificatePort}`,
          xdsTarget: `127.0.0.1:${weft.port}`,
          bootstrapBundlePem: ca.bundlePem(),
          trustDomain: TRUST_DOMAIN,
        });
      }),
    );
    for (const [i, pod] of pods.entries()) this.sidecars.set(pod.name, started[i]!);
  }

  /** A pod's gRPC bootstrap: through its agent's relay with mTLS, else straight to Weft. */
  private bootstrapOf(pod: string): Record<string, unknown> {
    const sidecar = this.sidecars.get(pod);
    if (sidecar) return sidecar.bootstrap;
    return proxylessBootstrap({
      xdsServer: `127.0.0.1:${this.serve.port}`,
      nodeId: `${this.workloads!.namespace}/${pod}`,
    });
  }

  private client(channel: string, from: string, service: string, port: number): EchoClient {
    const w = this.workloads!;
    const key = `${channel}|${from}|${service}:${port}`;
    let c = this.clients.get(key);
    if (!c) {
      c = new EchoClient(
        `xds:///${service}.${w.namespace}:${port}`,
        this.bootstrapOf(from),
        this.mtls ? xdsChannelCredentials() : undefined,
      );
      this.clients.set(key, c);
    }
    return c;
  }

  async call(spec: CallSpec, n: number): Promise<CallOutcome[]> {
    const c = this.client(spec.channel, spec.from, spec.service, spec.port);
    const deadline = spec.deadlineMs ?? this.deadline;
    const one = async (): Promise<CallOutcome> => {
      try {
        const r = await c.call(spec.method as 'Get', spec.headers, deadline);
        return { ok: true, backend: r.backend };
      } catch (err) {
        const e = err as Partial<ServiceError> | null;
        return { ok: false, code: codeName(e?.code), message: e?.details ?? String(err) };
      }
    };
    const out: CallOutcome[] = [];
    for (let i = 0; i < n; i += this.concurrency) {
      out.push(...(await Promise.all(Array.from({ length: Math.min(this.concurrency, n - i) }, one))));
    }
    return out;
  }

  closeChannel(channel: string): void {
    for (const [key, c] of this.clients) {
      if (key.startsWith(`${channel}|`)) {
        c.close();
        this.clients.delete(key);
      }
    }
  }

  async stop(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    for (const s of this.servers) await s.stop();
    this.servers = [];
    for (const s of this.sidecars.values()) await s.stop();
    this.sidecars.clear();
    if (this.tmp) rmSync(this.tmp, { recursive: true, force: true });
    this.tmp = undefined;
    await this.stopWeftAndApiServer();
  }
}
