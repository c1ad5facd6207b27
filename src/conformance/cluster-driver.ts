/**
 * The cluster conformance driver: the suite against a real cluster, through the current kubectl
 * context (or `--kubeconfig`/`--context`), with Weft already installed there.
 * - Workloads: `e2e/cluster/workloads.yaml` (the scenario workloads as Deployments of the echo
 *   image), applied with server-side apply. On the gRPC flavor its pods carry
 *   `weft.dev/flavor: grpc`, so Weft's injector gives each a `weft agent` (certificate, xDS relay
 *   over mTLS): calls between them are mTLS with the pods' own SPIFFE IDs, as in any mesh
 *   workload. On the Envoy flavor the same Deployments lose that annotation and run the echo
 *   image as plain gRPC apps (`WEFT_FLAVOR=envoy`), so each pod gets Weft's capture rules and
 *   Envoy sidecar, which route, split, authorize and speak mTLS for them.
 * - Calls: through each caller's control endpoint (`src/workload/caller-control.ts`), so every call
 *   starts inside the mesh from the caller's identity; the driver only tells it what to call.
 * - Config: Weft's CSDS on its xDS port, which is mTLS in a cluster: the driver gets a mesh
 *   certificate of its own exactly as an agent does, from a token of Weft's own ServiceAccount
 *   (`weft` in the Weft namespace, audience `weft`), trusting the `weft-ca-bundle` ConfigMap.
 *   CSDS shows every proxy only to Weft's own identity (any other identity sees its own proxies),
 *   so the driver needs the rights to create that token: a cluster admin's, in practice.
 *   Conditions come from Weft's admin endpoint.
 *
 * How the driver reaches the control endpoints and Weft's ports is a {@link ClusterTransport}:
 * {@link PortForwardTransport} (from outside the cluster, `kubectl port-forward`) or
 * {@link DirectTransport} (given addresses: from inside the cluster, or in tests).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { WorkloadAgent } from '../identity/agent';
import { CONTROL_PLANE_SERVICE_ACCOUNT } from '../identity/names';
import { controlPlaneIdentity } from '../identity/tls';
import { INJECTED } from '../inject/mutate';
import { CA_BUNDLE_CONFIGMAP, CA_BUNDLE_KEY } from '../kube/ca-bundle';
import { runProcess } from '../process';
import { type CallRequest, callResponseSchema } from '../workload/caller-control';
import { agentFileCredentials } from '../workload/mesh-peer';
import { fetchProxyConfigs } from './csds';
import {
  type CallOutcome,
  type CallSpec,
  type Driver,
  type Flavor,
  type ProxyConfigs,
  type ReportedCondition,
  reportedCondition,
} from './driver';
import { toKubectlInput } from './local-kube';
import type { KubeManifest, Workloads } from './schema';

/** Runs kubectl with the user's binary, kubeconfig and context. */
export class Kubectl {
  constructor(
    readonly o: {
      /** The kubectl binary (default `KUBECTL`, else `kubectl` on PATH). */
      bin?: string;
      kubeconfig?: string;
      context?: string;
    } = {},
  ) {}

  /** kubectl's arguments with the global flags first. */
  args(args: readonly string[]): string[] {
    return [
      ...(this.o.kubeconfig ? ['--kubeconfig', this.o.kubeconfig] : []),
      ...(this.o.context ? ['--context', this.o.context] : []),
      ...args,
    ];
  }

  get bin(): string {
    return this.o.bin ?? process.env.KUBECTL ?? 'kubectl';
  }

  /** Starts kubectl (for long-running commands such as port-forward). */
  spawn(args: readonly string[]): ChildProcess {
    return spawn(this.bin, this.args(args), { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Runs kubectl to completion; resolves to its stdout, rejects with its stderr. */
  async run(args: readonly string[], stdin?: string): Promise<string> {
    const r = await runProcess(this.bin, this.args(args), stdin).catch((err: Error) => {
      throw new Error(`cannot run ${this.bin}: ${err.message}`);
    });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** `kubectl get ... -o json`, parsed. */
  async getJson<T>(args: readonly string[]): Promise<T> {
    return JSON.parse(await this.run(['get', ...args, '-o', 'json'])) as T;
  }
}

/** Where the driver reaches the control endpoints and Weft. */
export interface ClusterEndpoints {
  /** Base URL (`http://host:port`) of each client workload's control endpoint, by workload name. */
  callers: Record<string, string>;
  /** Weft's admin base URL (conditions). */
  adminUrl: string;
  /**
   * Weft's xDS port, one `host:port` per replica: CSDS on a replica knows only the proxies
   * connected to it, so the driver asks every one.
   */
  xdsTargets: string[];
  /** Weft's certificate endpoint (the driver's own certificate for CSDS); absent: CSDS in plaintext. */
  caTarget?: string;
}

/** What a transport may use to find its way. */
export interface TransportContext {
  kubectl: Kubectl;
  /** The workloads' namespace. */
  namespace: string;
  /** Weft's namespace. */
  weftNamespace: string;
  /** Client workloads (Deployments of that name) whose control endpoint is needed. */
  callers: readonly string[];
  progress: (line: string) => void;
}

/** How the driver reaches the cluster's workloads and Weft. */
export interface ClusterTransport {
  readonly name: string;
  /** Resolves the endpoints; called once the workloads are ready. */
  open(ctx: TransportContext): Promise<ClusterEndpoints>;
  /** Releases what `open` started. */
  close(): Promise<void>;
}

/** Given addresses, nothing started: from inside the cluster (Service DNS names), or in tests. */
export class DirectTransport implements ClusterTransport {
  readonly name = 'direct';
  constructor(private readonly endpoints: ClusterEndpoints) {}
  async open(ctx: TransportContext): Promise<ClusterEndpoints> {
    const missing = ctx.callers.filter((c) => !this.endpoints.callers[c]);
    if (missing.length > 0) throw new Error(`no control endpoint URL given for ${missing.join(', ')}`);
    return this.endpoints;
  }
  async close(): Promise<void> {}
}

/** Ports of Weft's Service and Deployment (deploy/manifests/weft.yaml) and of the callers. */
export interface ClusterPorts {
  /** Caller control endpoint (the manifests' CONTROL_PORT). */
  control: number;
  xds: number;
  ca: number;
  admin: number;
}

/** The ports of the shipped manifests. */
export const DEFAULT_CLUSTER_PORTS: ClusterPorts = { control: 8080, xds: 15010, ca: 15012, admin: 15014 };

/** Labels of Weft's control-plane pods (deploy/helm/weft). */
export const WEFT_POD_SELECTOR = 'app.kubernetes.io/name=weft,app.kubernetes.io/component=control-plane';

/**
 * Local ports from `kubectl port-forward` output, by remote port: each line
 * `Forwarding from 127.0.0.1:<local> -> <remote>`.
 */
export function parseForwardedPorts(output: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of output.matchAll(/^Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)\s*$/gm)) {
    out.set(Number(m[2]), Number(m[1]));
  }
  return out;
}

interface PodList {
  items: {
    metadata: {
      name: string;
      labels?: Record<string, string>;
      deletionTimestamp?: string;
      creationTimestamp?: string;
    };
    spec?: { initContainers?: { name: string }[] };
    status?: { phase?: string; conditions?: { type: string; status: string }[] };
  }[];
}

type Pod = PodList['items'][number];

const isReady = (p: Pod): boolean =>
  !p.metadata.deletionTimestamp &&
  (p.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True');

/**
 * `kubectl port-forward` from loopback ports the OS picks: to each caller Deployment's control
 * port, to Weft's Service for admin and certificates, and to every ready Weft pod for xDS (CSDS
 * per replica). Killed on {@link close}. A forward that dies (its pod restarted) is not
 * re-established: rerun the suite.
 */
export class PortForwardTransport implements ClusterTransport {
  readonly name = 'port-forward';
  private readonly procs: ChildProcess[] = [];
  constructor(
    private readonly ports: ClusterPorts = DEFAULT_CLUSTER_PORTS,
    private readonly timeoutMs = 20_000,
  ) {}

  private forward(kubectl: Kubectl, namespace: string, target: string, remote: number[]): Promise<number[]> {
    const p = kubectl.spawn([
      'port-forward',
      '--address',
      '127.0.0.1',
      '-n',
      namespace,
      target,
      ...remote.map((r) => `:${r}`),
    ]);
    this.procs.push(p);
    let out = '';
    let err = '';
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        p.kill();
        reject(
          new Error(
            `kubectl port-forward ${target}: no forwarding after ${this.timeoutMs} ms: ${err.trim()}`,
          ),
        );
      }, this.timeoutMs);
      const check = (): void => {
        const found = parseForwardedPorts(out);
        if (remote.every((r) => found.has(r))) {
          clearTimeout(timer);
          resolve(remote.map((r) => found.get(r)!));
        }
      };
      p.stdout?.on('data', (b: Buffer) => {
        out += b.toString();
        check();
      });
      p.stderr?.on('data', (b: Buffer) => {
        err += b.toString();
      });
      p.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot run ${kubectl.bin}: ${e.message}`));
      });
      p.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`kubectl port-forward ${target} exited (${code}): ${err.trim()}`));
      });
    });
  }

  async open(ctx: TransportContext): Promise<ClusterEndpoints> {
    const { kubectl, namespace, weftNamespace } = ctx;
    const weftPods = (
      await kubectl.getJson<PodList>(['pods', '-n', weftNamespace, '-l', WEFT_POD_SELECTOR])
    ).items
      .filter(isReady)
      .map((p) => p.metadata.name);
    if (weftPods.length === 0) {
      throw new Error(
        `no ready Weft pod in namespace ${weftNamespace} (labels ${WEFT_POD_SELECTOR}): install Weft with weft install --apply`,
      );
    }
    ctx.progress(
      `port-forward: ${ctx.callers.length} caller(s), Weft's Service and ${weftPods.length} replica(s)`,
    );
    const callerPorts = await Promise.all(
      ctx.callers.map((c) => this.forward(kubectl, namespace, `deploy/${c}`, [this.ports.control])),
    );
    const [admin, ca] = await this.forward(kubectl, weftNamespace, 'svc/weft', [
      this.ports.admin,
      this.ports.ca,
    ]);
    const xds = await Promise.all(
      weftPods.map((p) => this.forward(kubectl, weftNamespace, `pod/${p}`, [this.ports.xds])),
    );
    return {
      callers: Object.fromEntries(ctx.callers.map((c, i) => [c, `http://127.0.0.1:${callerPorts[i]![0]}`])),
      adminUrl: `http://127.0.0.1:${admin}`,
      xdsTargets: xds.map(([port]) => `127.0.0.1:${port}`),
      caTarget: `127.0.0.1:${ca}`,
    };
  }

  async close(): Promise<void> {
    await Promise.all(
      this.procs.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            p.once('exit', () => resolve());
            p.kill();
          }),
      ),
    );
    this.procs.length = 0;
  }
}

/** Options of {@link ClusterDriver}. */
export interface ClusterDriverOptions {
  /** kubectl binary (default `KUBECTL`, else `kubectl` on PATH). */
  kubectl?: string;
  kubeconfig?: string;
  context?: string;
  /** Image of the workloads (default `weft-echo:dev`, as e2e/cluster/README.md builds it). */
  image?: string;
  /** Weft's namespace (default weft-system). */
  weftNamespace?: string;
  /** The workloads' manifests (default: e2e/cluster/workloads.yaml of this package). */
  manifests?: string;
  /** Default: {@link PortForwardTransport}. */
  transport?: ClusterTransport;
  /** Longest wait for every workload's pods to be ready (ms, default 180 s). */
  readyTimeoutMs?: number;
  /** Deadline of one call in ms (default 1500). */
  callDeadlineMs?: number;
  /** Calls in flight at once in a caller (default 10). */
  concurrency?: number;
  /** Leave the workloads deployed on stop (the next run skips the rollout). */
  keepWorkloads?: boolean;
  /**
   * grpc (default): proxyless gRPC workloads with `weft agent`; envoy: the same workloads as plain
   * gRPC apps with Weft's injected Envoy sidecar.
   */
  flavor?: Flavor;
  /** Progress lines (default: stderr). */
  progress?: (line: string) => void;
}

/** The workloads' manifests shipped with Weft (the package root's `e2e/cluster/workloads.yaml`). */
export function defaultClusterManifests(): string {
  // This file runs from dist/src/conformance; the manifests stay in the source tree.
  return join(__dirname, '..', '..', '..', 'e2e', 'cluster', 'workloads.yaml');
}

/** The echo image the manifests name; `--image` replaces it. */
export const DEFAULT_ECHO_IMAGE = 'weft-echo:dev';

interface Deployment {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string> };
    template: {
      metadata?: { annotations?: Record<string, string> };
      spec: { containers: { image?: string; env?: { name: string; value?: string }[] }[] };
    };
  };
}

/** Environment of the proxyless workloads that a workload behind Envoy does without. */
const PROXYLESS_ENV = new Set(['XDS_SERVER', 'WEFT_CERT_DIR']);

/**
 * The manifests for the Envoy flavor: the same Deployments without the `weft.dev/flavor: grpc`
 * annotation (so Weft injects the capture container, the agent and Envoy), without the proxyless
 * settings, and with `WEFT_FLAVOR=envoy`, which makes the echo image a plain gRPC app.
 */
function behindEnvoy(d: Deployment): void {
  const t = d.spec.template;
  if (t.metadata?.annotations) delete t.metadata.annotations['weft.dev/flavor'];
  for (const c of t.spec.containers) {
    c.env = [
      ...(c.env ?? []).filter((e) => !PROXYLESS_ENV.has(e.name)),
      { name: 'WEFT_FLAVOR', value: 'envoy' },
    ];
  }
}

/**
 * The manifests as objects, every Deployment container's image set to `image`; checks that they
 * deploy `w` (its namespace, a Deployment per workload), since the scenarios name those.
 */
export function clusterManifests(
  text: string,
  image: string,
  w: Workloads,
  flavor: Flavor = 'grpc',
): Record<string, unknown>[] {
  const objects = parseAllDocuments(text)
    .map((d) => d.toJS() as Record<string, unknown> | null)
    .filter((o): o is Record<string, unknown> => o !== null && typeof o === 'object');
  const deployments = objects.filter((o) => o.kind === 'Deployment') as unknown as Deployment[];
  for (const d of deployments) {
    for (const c of d.spec.template.spec.containers) c.image = image;
    if (flavor === 'envoy') behindEnvoy(d);
  }
  const names = new Set(
    deployments.filter((d) => d.metadata.namespace === w.namespace).map((d) => d.metadata.name),
  );
  const missing = [...w.servers, ...w.clients].map((x) => x.name).filter((n) => !names.has(n));
  if (missing.length > 0) {
    throw new Error(
      `the cluster manifests have no Deployment in namespace ${w.namespace} for workload(s) ${missing.join(', ')}`,
    );
  }
  return objects;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** See the file comment. */
export class ClusterDriver implements Driver {
  readonly name = 'cluster';
  readonly flavor: Flavor;
  readonly kubectl: Kubectl;
  private readonly transport: ClusterTransport;
  private readonly progress: (line: string) => void;
  private workloads: Workloads | undefined;
  private manifests: Record<string, unknown>[] = [];
  private endpoints: ClusterEndpoints | undefined;
  /** Each workload's Deployment selector (matchLabels). */
  private selectors = new Map<string, Record<string, string>>();
  /** Which callers each open channel was used from (closeChannel tells only those). */
  private readonly channels = new Map<string, Set<string>>();
  private readonly pending = new Set<Promise<void>>();
  private agent: WorkloadAgent | undefined;
  private certDir: string | undefined;
  private trustDomain = 'cluster.local';

  constructor(private readonly o: ClusterDriverOptions = {}) {
    this.kubectl = new Kubectl({
      ...(o.kubectl ? { bin: o.kubectl } : {}),
      ...(o.kubeconfig ? { kubeconfig: o.kubeconfig } : {}),
      ...(o.context ? { context: o.context } : {}),
    });
    this.transport = o.transport ?? new PortForwardTransport();
    this.flavor = o.flavor ?? 'grpc';
    this.progress = o.progress ?? ((line) => process.stderr.write(`${line}\n`));
  }

  private get weftNamespace(): string {
    return this.o.weftNamespace ?? 'weft-system';
  }

  /** The endpoints the transport resolved (after start). */
  get resolved(): ClusterEndpoints {
    if (!this.endpoints) throw new Error('the cluster driver is not started');
    return this.endpoints;
  }

  async start(w: Workloads): Promise<void> {
    this.workloads = w;
    const text = readFileSync(this.o.manifests ?? defaultClusterManifests(), 'utf8');
    this.manifests = clusterManifests(text, this.o.image ?? DEFAULT_ECHO_IMAGE, w, this.flavor);
    for (const d of this.manifests.filter((o) => o.kind === 'Deployment') as unknown as Deployment[]) {
      this.selectors.set(d.metadata.name, d.spec.selector.matchLabels ?? {});
    }
    await this.waitForNamespaceGone(w.namespace);
    this.progress(
      `applying the workloads (${this.manifests.length} objects, image ${this.o.image ?? DEFAULT_ECHO_IMAGE})`,
    );
    await this.apply(this.manifests as KubeManifest[]);
    await this.waitForWorkloads(w);
    this.endpoints = await this.transport.open({
      kubectl: this.kubectl,
      namespace: w.namespace,
      weftNamespace: this.weftNamespace,
      callers: w.clients.map((c) => c.name),
      progress: this.progress,
    });
    await this.waitForControlEndpoints();
    if (this.endpoints.caTarget) await this.startAgent(w, this.endpoints.caTarget);
    this.progress('workloads ready');
  }

  /** The pods of each workload (its Deployment's selector), newest first. */
  private async podsByWorkload(): Promise<Map<string, Pod[]>> {
    const w = this.workloads!;
    const pods = (await this.kubectl.getJson<PodList>(['pods', '-n', w.namespace])).items;
    const out = new Map<string, Pod[]>();
    for (const [name, sel] of this.selectors) {
      const mine = pods.filter((p) => Object.entries(sel).every(([k, v]) => p.metadata.labels?.[k] === v));
      mine.sort((a, b) =>
        (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? ''),
      );
      out.set(name, mine);
    }
    return out;
  }

  /**
   * Waits until every workload has exactly its replicas, all ready (the rollout is over: no old
   * pod left), and fails early when a pod was created without Weft's agent.
   */
  private async waitForWorkloads(w: Workloads): Promise<void> {
    const names = [...w.servers, ...w.clients].map((x) => x.name);
    const replicas = new Map(
      (this.manifests.filter((o) => o.kind === 'Deployment') as unknown as Deployment[]).map((d) => [
        d.metadata.name,
        d.spec.replicas ?? 1,
      ]),
    );
    const timeout = this.o.readyTimeoutMs ?? 180_000;
    const end = Date.now() + timeout;
    let last = '';
    for (;;) {
      const pods = await this.podsByWorkload();
      const states = names.map((n) => {
        const live = (pods.get(n) ?? []).filter((p) => !p.metadata.deletionTimestamp);
        return { n, live, ready: live.filter(isReady).length, want: replicas.get(n) ?? 1 };
      });
      // The container the flavor cannot work without: the agent (proxyless) or Envoy.
      const needed = this.flavor === 'envoy' ? INJECTED.proxy : INJECTED.agent;
      const uninjected = states.flatMap((s) =>
        s.live.filter((p) => !(p.spec?.initContainers ?? []).some((c) => c.name === needed)),
      );
      if (uninjected.length > 0) {
        throw new Error(
          `pod ${uninjected[0]!.metadata.name} has no ${needed} container: Weft's sidecar injector did not run for it. ` +
            'Install Weft with its injector (weft install --apply), keep the namespace label weft.dev/mesh=enabled, ' +
            `then delete the namespace ${w.namespace} and run again`,
        );
      }
      const done = states.every((s) => s.ready === s.want && s.live.length === s.want);
      const line = `waiting for workloads: ${states.map((s) => `${s.n} ${s.ready}/${s.want}`).join(', ')}`;
      if (done) return;
      if (line !== last) this.progress(line);
      last = line;
      if (Date.now() > end) {
        throw new Error(
          `workloads not ready after ${timeout / 1000} s (${line.slice('waiting for workloads: '.length)}); ` +
            `see kubectl -n ${w.namespace} get pods and kubectl -n ${w.namespace} describe pods ` +
            `(is the image ${this.o.image ?? DEFAULT_ECHO_IMAGE} loaded into the cluster?)`,
        );
      }
      await sleep(1000);
    }
  }

  /**
   * Waits while the workloads' namespace is being deleted (the previous flavor's or run's
   * workloads going): the API server refuses new objects in a terminating namespace.
   */
  private async waitForNamespaceGone(namespace: string): Promise<void> {
    const end = Date.now() + (this.o.readyTimeoutMs ?? 180_000);
    let said = false;
    for (;;) {
      const phase = await this.kubectl
        .run(['get', 'namespace', namespace, '--ignore-not-found', '-o', 'jsonpath={.status.phase}'])
        .catch(() => '');
      if (phase.trim() !== 'Terminating') return;
      if (!said) this.progress(`waiting for namespace ${namespace}, being deleted, to go`);
      said = true;
      if (Date.now() > end) throw new Error(`namespace ${namespace} is still being deleted; try again later`);
      await sleep(1000);
    }
  }

  private async waitForControlEndpoints(): Promise<void> {
    const end = Date.now() + 30_000;
    for (const [caller, url] of Object.entries(this.resolved.callers)) {
      for (;;) {
        try {
          const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
          if (r.ok) break;
        } catch {
          // Not listening yet.
        }
        if (Date.now() > end) throw new Error(`the control endpoint of ${caller} at ${url} does not answer`);
        await sleep(250);
      }
    }
  }

  /**
   * The driver's own mesh certificate, for CSDS on Weft's mTLS xDS port: a `weft agent` in this
   * process with a token of Weft's ServiceAccount (the control-plane identity, the only one CSDS
   * shows every proxy to), trusting the bundle Weft publishes into the workloads' namespace.
   */
  private async startAgent(w: Workloads, caTarget: string): Promise<void> {
    const account = CONTROL_PLANE_SERVICE_ACCOUNT;
    let bundle: string | undefined;
    const end = Date.now() + 30_000;
    while (!bundle) {
      try {
        const cm = await this.kubectl.getJson<{ data?: Record<string, string> }>([
          'configmap',
          CA_BUNDLE_CONFIGMAP,
          '-n',
          w.namespace,
        ]);
        bundle = cm.data?.[CA_BUNDLE_KEY];
      } catch (err) {
        if (Date.now() > end)
          throw new Error(`Weft's trust bundle never appeared: ${(err as Error).message}`);
      }
      if (!bundle) await sleep(500);
    }
    this.certDir = mkdtempSync(join(tmpdir(), 'weft-cluster-driver-'));
    const ns = this.weftNamespace;
    this.agent = new WorkloadAgent({
      server: caTarget,
      // A fresh short-lived token per request, as the agent's projected token would be.
      token: async () =>
        (
          await this.kubectl.run([
            'create',
            'token',
            account,
            '-n',
            ns,
            '--audience',
            'weft',
            '--duration',
            '1h',
          ])
        ).trim(),
      outDir: this.certDir,
      bootstrapBundlePem: bundle,
    });
    await this.agent.start();
    this.trustDomain = this.agent.state.identity?.split('/')[2] ?? this.trustDomain;
  }

  async apply(objects: readonly KubeManifest[]): Promise<void> {
    await this.kubectl.run(
      ['apply', '--server-side', '--force-conflicts', '--field-manager', 'weft-conformance', '-f', '-'],
      toKubectlInput(objects),
    );
  }

  async delete(objects: readonly KubeManifest[]): Promise<void> {
    await this.kubectl.run(
      ['delete', '--ignore-not-found', '--wait=false', '-f', '-'],
      toKubectlInput(objects),
    );
  }

  async call(spec: CallSpec, n: number): Promise<CallOutcome[]> {
    const url = this.resolved.callers[spec.from];
    if (!url) throw new Error(`no control endpoint for client workload ${spec.from}`);
    const body: CallRequest = {
      service: spec.service,
      port: spec.port,
      method: spec.method as CallRequest['method'],
      headers: spec.headers,
      n,
      deadlineMs: spec.deadlineMs ?? this.o.callDeadlineMs ?? 1500,
      channel: spec.channel,
      concurrency: this.o.concurrency ?? 10,
    };
    const users = this.channels.get(spec.channel) ?? new Set<string>();
    users.add(spec.from);
    this.channels.set(spec.channel, users);
    // An endpoint that cannot be reached is the driver's failure, never a denied call: counting
    // it as one would pass a `denied` expectation for the wrong reason.
    const res = await fetch(`${url}/call`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${spec.from}'s control endpoint answered ${res.status}: ${text}`);
    const parsed = callResponseSchema.safeParse(JSON.parse(text));
    if (!parsed.success || parsed.data.length !== n) {
      throw new Error(
        `${spec.from}'s control endpoint answered what is not ${n} call outcomes: ${text.slice(0, 200)}`,
      );
    }
    return parsed.data;
  }

  closeChannel(channel: string): void {
    const users = this.channels.get(channel);
    this.channels.delete(channel);
    for (const from of users ?? []) {
      const url = this.endpoints?.callers[from];
      if (!url) continue;
      const p = fetch(`${url}/channel/${encodeURIComponent(channel)}`, { method: 'DELETE' }).then(
        (r) => void r.body?.cancel(),
        () => undefined,
      );
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    }
  }

  /**
   * Scenario node ids are `<namespace>/<workload>`; in a cluster a proxy's node id is
   * `<namespace>/<pod>` with a generated pod name. Each workload id is mapped to its newest live
   * pod, CSDS is asked on every replica, and the results are keyed back by the scenario's ids.
   */
  async proxyConfig(nodeIds: readonly string[]): Promise<ProxyConfigs> {
    const w = this.workloads!;
    const pods = await this.podsByWorkload();
    const toPod = new Map<string, string>();
    for (const id of nodeIds) {
      const [ns, name] = id.split('/') as [string, string | undefined];
      const pod =
        ns === w.namespace && name ? pods.get(name)?.find((p) => !p.metadata.deletionTimestamp) : undefined;
      toPod.set(id, pod ? `${ns}/${pod.metadata.name}` : id);
    }
    const creds = this.certDir
      ? agentFileCredentials(this.certDir, controlPlaneIdentity(this.trustDomain))
      : undefined;
    const answers = await Promise.all(
      this.resolved.xdsTargets.map((t) => fetchProxyConfigs(t, [...toPod.values()], creds)),
    );
    const out: ProxyConfigs = {};
    for (const [id, podId] of toPod) {
      const found = answers.flatMap((a) => a[podId] ?? []);
      if (found.length > 0 || answers.some((a) => podId in a)) out[id] = found;
    }
    return out;
  }

  async conditions(): Promise<ReportedCondition[]> {
    // Weft shows debug views in a cluster only to a caller the API server vouches for: a token of
    // Weft's own ServiceAccount, which may list pods everywhere.
    const token = (
      await this.kubectl.run([
        'create',
        'token',
        CONTROL_PLANE_SERVICE_ACCOUNT,
        '-n',
        this.weftNamespace,
        '--duration',
        '10m',
      ])
    ).trim();
    const res = await fetch(`${this.resolved.adminUrl}/debug/conditions`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (!res.ok)
      throw new Error(
        `Weft's admin endpoint answered ${res.status} for /debug/conditions: ${await res.text()}`,
      );
    return ((await res.json()) as ReportedCondition[]).map(reportedCondition);
  }

  async stop(): Promise<void> {
    for (const ch of [...this.channels.keys()]) this.closeChannel(ch);
    await Promise.all(this.pending);
    this.agent?.stop();
    this.agent = undefined;
    if (this.certDir) rmSync(this.certDir, { recursive: true, force: true });
    this.certDir = undefined;
    await this.transport.close();
    this.endpoints = undefined;
    if (!this.o.keepWorkloads && this.manifests.length > 0) {
      this.progress('deleting the workloads');
      const manifests = this.manifests;
      this.manifests = [];
      try {
        await this.delete([...manifests].reverse() as KubeManifest[]);
      } catch (err) {
        // Teardown must not hide why the run ended (a start that failed on kubectl fails here too).
        this.progress(`could not delete the workloads: ${(err as Error).message}`);
      }
    }
  }
}
