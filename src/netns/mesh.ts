/**
 * A mesh of real Envoy sidecars on one machine: a {@link PodNetwork}, `weft serve` in folder mode
 * with its CA listening on the bridge's host address (xDS and the certificate endpoint; admin on
 * loopback), and a {@link PodHost} whose injector points at it. Each pod runs what Weft's injector
 * makes of it (capture rules, `weft agent`, Envoy with Weft's bootstrap), with a bootstrap token of
 * its ServiceAccount in place of the projected token and the CA's bundle in place of the
 * `weft-ca-bundle` ConfigMap.
 *
 * Steps: {@link EnvoyMesh.create} (the network; take addresses for the manifests), write the
 * manifests into the config folder, {@link EnvoyMesh.start} (Weft), then {@link EnvoyMesh.startPod}.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BUNDLE_CONFIGMAP, type InjectorOptions } from '../inject/mutate';
import type { KubeObject } from '../kube/client';
import {
  DEFAULT_PROXY_IMAGE,
  DEFAULT_WEFT_IMAGE,
  type RunningServe,
  type ServeOptions,
  startServe,
} from '../serve';
import { PodApp } from './app-client';
import { PodNetwork } from './network';
import { POD_APP_ENTRYPOINT, PodHost, type RunningPod, WEFT_ENTRYPOINT } from './pod';

/** The image name of the pod app (pod-app.ts) in pod manifests. */
export const POD_APP_IMAGE = 'weft-pod-app';

/** Options of {@link EnvoyMesh.create}. */
export interface EnvoyMeshOptions {
  /** The network's name and subnet (see {@link PodNetwork}). */
  network: string;
  subnet: string;
  /** Weft's config folder (manifests). */
  configDir: string;
  /** A folder for the CA, the token file and the pods' folders. */
  workDir: string;
  /** ServiceAccounts (`<namespace>/<name>`) whose pods get a bootstrap token. */
  serviceAccounts: readonly string[];
  /** The mesh's trust domain (default cluster.local). */
  trustDomain?: string;
  /** The Envoy binary (see findEnvoy). */
  envoyBinary: string;
  /** More images and their commands. */
  entrypoints?: Readonly<Record<string, readonly string[]>>;
  /** More `weft serve` options. */
  serve?: Partial<ServeOptions>;
  /** Upper bound on each sidecar's startup (default 60 s). */
  startTimeoutMs?: number;
}

/** A pod of the mesh, with its app when it runs one (a container with `stdin: true`). */
export interface MeshPod {
  readonly pod: RunningPod;
  readonly app: PodApp | undefined;
}

/** See the module comment. */
export class EnvoyMesh {
  private weftRunning: RunningServe | undefined;
  private host: PodHost | undefined;
  private readonly tokens: Map<string, string>;
  private readonly caDir: string;

  private constructor(
    private readonly o: EnvoyMeshOptions,
    /** The pods' network. */
    readonly network: PodNetwork,
  ) {
    this.caDir = join(o.workDir, 'ca');
    this.tokens = new Map(o.serviceAccounts.map((sa) => [sa, randomBytes(24).toString('base64url')]));
  }

  /** Creates the network (cleaning up what a crashed run of the same name left). */
  static async create(o: EnvoyMeshOptions): Promise<EnvoyMesh> {
    mkdirSync(o.workDir, { recursive: true });
    return new EnvoyMesh(o, await PodNetwork.create({ name: o.network, subnet: o.subnet }));
  }

  /** The trust domain. */
  get trustDomain(): string {
    return this.o.trustDomain ?? 'cluster.local';
  }

  /** Weft, once started. */
  get weft(): RunningServe {
    if (!this.weftRunning) throw new Error('the mesh is not started: call start() first');
    return this.weftRunning;
  }

  /** The injector's settings pods are mutated with. */
  get injector(): InjectorOptions {
    const host = this.network.hostAddress;
    return {
      weftImage: DEFAULT_WEFT_IMAGE,
      proxyImage: DEFAULT_PROXY_IMAGE,
      xdsAddress: `${host}:${this.weft.port}`,
      caAddress: `${host}:${this.weft.identity.certificatePort}`,
      trustDomain: this.trustDomain,
      ...(this.o.serve?.prometheusUrl ? { statsSink: false } : {}),
    };
  }

  /** Starts Weft on the config folder; resolves once it serves. */
  async start(): Promise<void> {
    const tokensFile = join(this.o.workDir, 'tokens.yaml');
    const entries = [...this.tokens].map(([sa, token]) => `  - token: ${token}\n    identity: ${sa}\n`);
    writeFileSync(tokensFile, `tokens:\n${entries.join('')}`, { mode: 0o600 });
    const host = this.network.hostAddress;
    this.weftRunning = await startServe({
      configDir: this.o.configDir,
      xdsAddress: `${host}:0`,
      caDir: this.caDir,
      caAddress: `${host}:0`,
      trustDomain: this.trustDomain,
      bootstrapTokens: tokensFile,
      adminAddress: '127.0.0.1:0',
      ...this.o.serve,
    });
    const bundle = readFileSync(join(this.caDir, 'bundle.pem'), 'utf8');
    this.host = new PodHost({
      network: this.network,
      dir: join(this.o.workDir, 'pods'),
      injector: this.injector,
      envoyBinary: this.o.envoyBinary,
      entrypoints: {
        [DEFAULT_WEFT_IMAGE]: WEFT_ENTRYPOINT,
        [POD_APP_IMAGE]: POD_APP_ENTRYPOINT,
        ...this.o.entrypoints,
      },
      serviceAccountToken: (ns, sa) => {
        const t = this.tokens.get(`${ns}/${sa}`);
        if (!t)
          throw new Error(`no bootstrap token for ServiceAccount ${ns}/${sa}: list it in serviceAccounts`);
        return t;
      },
      configMaps: { [BUNDLE_CONFIGMAP]: { 'bundle.pem': bundle } },
      ...(this.o.startTimeoutMs ? { startTimeoutMs: this.o.startTimeoutMs } : {}),
    });
  }

  /** Runs a pod (see {@link PodHost.start}) and attaches to its app. */
  async startPod(pod: KubeObject): Promise<MeshPod> {
    if (!this.host) throw new Error('the mesh is not started: call start() first');
    const running = await this.host.start(pod);
    const containers = (
      (running.spec.spec as { containers?: { name: string; stdin?: boolean }[] }).containers ?? []
    ).filter((c) => c.stdin === true);
    try {
      const p = containers[0] ? running.process(containers[0].name) : undefined;
      return { pod: running, app: p ? await PodApp.attach(p) : undefined };
    } catch (err) {
      const logs = running.logs();
      await running.stop();
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n${JSON.stringify(logs)}`);
    }
  }

  /** Stops every pod, Weft and the network. Safe to call twice and after a failed start. */
  async stop(): Promise<void> {
    await this.host?.stopAll();
    await this.weftRunning?.stop();
    this.weftRunning = undefined;
    await this.network.destroy();
  }
}
