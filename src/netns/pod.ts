/**
 * Pods in miniature: a Pod manifest run the way a kubelet would run it after Weft's injector
 * mutated it, with a network namespace in place of the pod sandbox and a mount namespace per
 * process in place of each container's file system.
 *
 * - The pod is passed through {@link injectPod} (the webhook's own function) and the JSON Patch is
 *   applied; whatever the injector produced is what runs: every init container in order (the
 *   capture container to completion, native sidecars started and their startup probes awaited),
 *   then the pod's containers. Commands are the containers' `command` and `args`, environment
 *   variables their `env` (with `fieldRef`s resolved from the pod), the user their
 *   `securityContext` (`runAsUser`/`runAsGroup`, `capabilities`, `allowPrivilegeEscalation`).
 * - Each process runs as `ip netns exec <pod> unshare --mount sh -c '<mounts>; exec setpriv ...'`:
 *   in its own mount namespace it gets a fresh tmpfs on /run (so /var/run/weft/... is per pod and
 *   per container, as in a container) and on /dev/shm (so Envoys do not share hot-restart memory),
 *   then each of its `volumeMounts` is bind-mounted from the pod's folder on the host. Volumes:
 *   `emptyDir` is a folder shared by the pod's processes, a `configMap` holds files the host gives
 *   (the trust bundle), a projected ServiceAccount token holds the token the host gives for the
 *   pod's ServiceAccount.
 * - An image is a command: a container without `command` runs the entrypoint the host maps its
 *   image to. Host binaries a pod needs (Envoy, node) and Weft's package are bind-mounted under
 *   `/run/weft-host` in each process, so they run whatever their host path's permissions
 *   (uid 1337 cannot traverse root's home, where Envoy is often cached); `/run/weft-host/bin` comes
 *   first on PATH, which is how the proxy container's `exec envoy` finds the Envoy found here.
 * - Each process logs to `<pod folder>/logs/<container>.log`. A container with `stdin: true` has its
 *   stdin and stdout piped to the host instead (the test apps take commands that way).
 *
 * Root only (namespaces, mounts, other uids); see {@link netnsUnavailable}.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { dirname, join, posix } from 'node:path';
import { type InjectorOptions, injectPod } from '../inject/mutate';
import type { KubeObject } from '../kube/client';
import { applyJsonPatch, type JsonPatchOp } from '../patch/json-patch';
import type { PodNamespace, PodNetwork } from './network';
import { commandPath } from './system';

/** Where host binaries and Weft's package appear inside every pod process. */
export const POD_HOST_DIR = '/run/weft-host';
/** Host binaries inside pods (first on PATH): `envoy`, `node`. */
export const POD_BIN_DIR = `${POD_HOST_DIR}/bin`;
/** Weft's package (the folder holding bin/ and dist/) inside pods. */
export const POD_PACKAGE_DIR = `${POD_HOST_DIR}/pkg`;
/** The package root on the host (this file runs from dist/src/netns). */
export const PACKAGE_ROOT = join(__dirname, '..', '..', '..');

/** The command of Weft's image inside a pod: `node bin/weft.js` (its entrypoint is `weft`). */
export const WEFT_ENTRYPOINT: readonly string[] = ['node', `${POD_PACKAGE_DIR}/bin/weft.js`];
/** The command of the test apps' image inside a pod (see pod-app.ts). */
export const POD_APP_ENTRYPOINT: readonly string[] = ['node', `${POD_PACKAGE_DIR}/dist/src/netns/pod-app.js`];

/** Options of {@link PodHost}. */
export interface PodHostOptions {
  network: PodNetwork;
  /** Folder for the pods' folders (volumes, logs). */
  dir: string;
  /** The injector's settings; point `xdsAddress` and `caAddress` at Weft on the bridge. */
  injector: InjectorOptions;
  /** Envoy, bind-mounted as `envoy` on the pods' PATH. */
  envoyBinary: string;
  /** The command each image runs when a container has no `command` (e.g. Weft's image: {@link WEFT_ENTRYPOINT}). */
  entrypoints: Readonly<Record<string, readonly string[]>>;
  /** The content of a projected ServiceAccount token (for Weft: a bootstrap token of that identity). */
  serviceAccountToken(namespace: string, serviceAccount: string, audience: string): string;
  /** ConfigMaps pods may mount, by `<namespace>/<name>` or `<name>` (any namespace): file name to content. */
  configMaps: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** Upper bound on each startup probe, whatever the probe allows (default 60 s). */
  startTimeoutMs?: number;
}

/** A container as the harness reads it. */
interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  restartPolicy?: string;
  stdin?: boolean;
  ports?: { name?: string; containerPort: number }[];
  startupProbe?: Probe;
  securityContext?: {
    runAsUser?: number;
    runAsGroup?: number;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}

interface Probe {
  exec?: { command: string[] };
  httpGet?: { port: number | string; path?: string; host?: string };
  tcpSocket?: { port: number | string; host?: string };
  periodSeconds?: number;
  failureThreshold?: number;
}

interface Volume {
  name: string;
  emptyDir?: unknown;
  configMap?: { name: string };
  projected?: { sources: { serviceAccountToken?: { audience?: string; path: string } }[] };
}

interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
}

/** One process of a pod. */
export interface PodProcess {
  readonly container: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Where its stdout and stderr go (stderr only for `stdin: true` containers). */
  readonly logFile: string;
  /** Resolves with the exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Whether it has exited. */
  readonly done: boolean;
}

/** A running pod. */
export interface RunningPod {
  readonly namespace: string;
  readonly name: string;
  readonly ip: string;
  readonly netns: string;
  /** The pod's folder on the host (volumes/, logs/). */
  readonly dir: string;
  /** The pod as it ran: after injection when it was injected. */
  readonly spec: KubeObject;
  /** Whether Weft's injector mutated it (else why not). */
  readonly injection: { injected: true } | { injected: false; reason: string };
  /** The running process of a container (long-running init containers included). */
  process(container: string): PodProcess | undefined;
  /** A volume's folder on the host. */
  volumeDir(volume: string): string;
  /** Every container's log so far, by container name. */
  logs(): Record<string, string>;
  /** Stops the containers, then the sidecars (last started first), then deletes the namespace. */
  stop(): Promise<void>;
}

/** Quotes a word for sh. */
function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function fieldOf(pod: KubeObject, path: string): string {
  const spec = (pod.spec ?? {}) as PodSpec;
  const status = (pod.status ?? {}) as { podIP?: string; hostIP?: string };
  const values: Record<string, string | undefined> = {
    'metadata.name': pod.metadata?.name,
    'metadata.namespace': pod.metadata?.namespace,
    'metadata.uid': pod.metadata?.uid,
    'spec.serviceAccountName': spec.serviceAccountName ?? 'default',
    'status.podIP': status.podIP,
    'status.hostIP': status.hostIP,
  };
  const v = values[path];
  if (v === undefined) throw new Error(`fieldRef ${path} is not supported here (or not set on the pod)`);
  return v;
}

/** Pod after injection, and whether it was injected. */
export function injectedPod(
  pod: KubeObject,
  injector: InjectorOptions,
): { spec: KubeObject; injection: RunningPod['injection'] } {
  const r = injectPod(pod, injector);
  if (r.outcome === 'error') throw new Error(`the injector refused the pod: ${r.reason}`);
  if (r.outcome === 'skip') return { spec: pod, injection: { injected: false, reason: r.reason } };
  const spec = applyJsonPatch(pod as never, r.patch as JsonPatchOp[]) as unknown as KubeObject;
  return { spec, injection: { injected: true } };
}

/** Runs pods on a {@link PodNetwork}; see the module comment. */
export class PodHost {
  private readonly running = new Set<RunningPod>();
  private readonly bins: Record<string, string>;

  constructor(private readonly o: PodHostOptions) {
    this.bins = {
      ip: commandPath('ip'),
      unshare: commandPath('unshare'),
      sh: commandPath('sh'),
    };
  }

  /**
   * Runs `pod` (a Pod manifest with `status.podIP` on the network): creates its namespace,
   * injects it, starts its init containers and containers in order and resolves once the last
   * sidecar passed its startup probe and every container started. On failure whatever started is
   * stopped and the error carries the failing container's log.
   */
  async start(pod: KubeObject): Promise<RunningPod> {
    const ns = pod.metadata?.namespace ?? 'default';
    const name = pod.metadata?.name;
    const ip = (pod.status as { podIP?: string } | undefined)?.podIP;
    if (!name || !ip)
      throw new Error('a pod to run needs metadata.name and status.podIP (from PodNetwork.podAddress)');
    const { spec, injection } = injectedPod(pod, this.o.injector);
    const dir = join(this.o.dir, `${ns}.${name}`);
    mkdirSync(join(dir, 'logs'), { recursive: true });
    mkdirSync(join(dir, 'volumes'), { recursive: true });
    // Volumes are bind-mounted by path, so only their own modes matter, not this folder's.
    chmodSync(dir, 0o755);
    const net = await this.o.network.addNamespace(ip);
    const processes = new Map<string, PodProcess>();
    const order: PodProcess[] = [];
    let stopped = false;
    const podSpec = (spec.spec ?? {}) as PodSpec;
    const running: RunningPod = {
      namespace: ns,
      name,
      ip,
      netns: net.netns,
      dir,
      spec,
      injection,
      process: (c) => processes.get(c),
      volumeDir: (v) => join(dir, 'volumes', v),
      logs: () => {
        const out: Record<string, string> = {};
        for (const c of [...(podSpec.initContainers ?? []), ...(podSpec.containers ?? [])]) {
          const f = join(dir, 'logs', `${c.name}.log`);
          if (existsSync(f)) out[c.name] = readFileSync(f, 'utf8');
        }
        return out;
      },
      stop: async () => {
        if (stopped) return;
        stopped = true;
        this.running.delete(running);
        for (const p of [...order].reverse()) await stopProcess(p);
        await this.o.network.removeNamespace(net);
      },
    };
    this.running.add(running);
    try {
      this.makeVolumes(spec, running);
      for (const c of podSpec.initContainers ?? []) {
        const p = this.run(spec, net, c, running);
        if (c.restartPolicy === 'Always') {
          processes.set(c.name, p);
          order.push(p);
          await this.awaitStartup(spec, net, c, p, running);
        } else {
          const code = await p.exited;
          if (code !== 0)
            throw new Error(`init container ${c.name} exited with ${code}${tail(running, c.name)}`);
        }
      }
      for (const c of podSpec.containers ?? []) {
        const p = this.run(spec, net, c, running);
        processes.set(c.name, p);
        order.push(p);
        await this.awaitStartup(spec, net, c, p, running);
      }
    } catch (err) {
      await running.stop();
      throw new Error(`pod ${ns}/${name}: ${err instanceof Error ? err.message : String(err)}`);
    }
    return running;
  }

  /** Stops every pod this host started. */
  async stopAll(): Promise<void> {
    for (const p of [...this.running]) await p.stop();
  }

  private makeVolumes(pod: KubeObject, r: RunningPod): void {
    const spec = (pod.spec ?? {}) as PodSpec;
    const ns = r.namespace;
    for (const v of spec.volumes ?? []) {
      const d = r.volumeDir(v.name);
      mkdirSync(d, { recursive: true });
      if (v.emptyDir !== undefined) {
        // emptyDir is writable by every container whatever its uid, as kubelet makes it.
        chmodSync(d, 0o777);
      } else if (v.configMap) {
        chmodSync(d, 0o755);
        const files = this.o.configMaps[`${ns}/${v.configMap.name}`] ?? this.o.configMaps[v.configMap.name];
        if (!files)
          throw new Error(`volume ${v.name}: no ConfigMap ${ns}/${v.configMap.name} given to the pod host`);
        for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text, { mode: 0o644 });
      } else if (v.projected) {
        chmodSync(d, 0o755);
        for (const s of v.projected.sources) {
          if (!s.serviceAccountToken)
            throw new Error(`volume ${v.name}: only serviceAccountToken projections are supported here`);
          const token = this.o.serviceAccountToken(
            ns,
            spec.serviceAccountName ?? 'default',
            s.serviceAccountToken.audience ?? '',
          );
          const file = join(d, s.serviceAccountToken.path);
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, token, { mode: 0o644 });
        }
      } else {
        throw new Error(`volume ${v.name}: only emptyDir, configMap and projected tokens are supported here`);
      }
    }
  }

  /** The shell script that sets up a process's mount namespace and drops to its user. */
  private setupScript(r: RunningPod, c: Container): string {
    const lines = [
      'set -e',
      'mount -t tmpfs -o mode=0755 weft-run /run',
      // Where /var/run is a folder of its own rather than a link to /run, give it a tmpfs too,
      // so nothing a pod mounts there lands on the host's disk.
      '[ -L /var/run ] || mount -t tmpfs -o mode=0755 weft-var-run /var/run',
      'mount -t tmpfs -o mode=1777 weft-shm /dev/shm',
      `mkdir -p ${POD_BIN_DIR} ${POD_PACKAGE_DIR}`,
      `touch ${POD_BIN_DIR}/envoy ${POD_BIN_DIR}/node`,
      `mount --bind ${q(this.o.envoyBinary)} ${POD_BIN_DIR}/envoy`,
      `mount --bind ${q(process.execPath)} ${POD_BIN_DIR}/node`,
      `mount --bind ${q(PACKAGE_ROOT)} ${POD_PACKAGE_DIR}`,
    ];
    for (const m of c.volumeMounts ?? []) {
      const path = posix.normalize(m.mountPath);
      if (!/^\/(var\/)?run\//.test(path))
        throw new Error(
          `container ${c.name}: volume mount ${m.mountPath} is outside /run and /var/run, which are the only folders pods get here`,
        );
      lines.push(`mkdir -p ${q(path)}`, `mount --bind ${q(r.volumeDir(m.name))} ${q(path)}`);
      if (m.readOnly) lines.push(`mount -o remount,bind,ro ${q(path)}`);
    }
    const sc = c.securityContext ?? {};
    const uid = sc.runAsUser ?? 0;
    const gid = sc.runAsGroup ?? uid;
    const priv: string[] = [];
    if (uid !== 0 || gid !== 0) priv.push(`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups');
    if (sc.allowPrivilegeEscalation === false) priv.push('--no-new-privs');
    const caps = sc.capabilities;
    if (caps?.drop?.some((d) => d.toUpperCase() === 'ALL')) {
      const add = (caps.add ?? []).map((a) => `,+${a.toLowerCase()}`).join('');
      priv.push(`--bounding-set=-all${add}`);
      if (uid === 0) priv.push(`--inh-caps=-all${add}`);
    }
    lines.push(priv.length > 0 ? `exec setpriv ${priv.join(' ')} -- "$@"` : 'exec "$@"');
    return lines.join('\n');
  }

  private argv(c: Container): string[] {
    const command = c.command ?? (c.image ? this.o.entrypoints[c.image] : undefined);
    if (!command)
      throw new Error(
        `container ${c.name}: no command, and image ${c.image ?? '(none)'} has no entrypoint here`,
      );
    return [...command, ...(c.args ?? [])];
  }

  private env(pod: KubeObject, c: Container): Record<string, string> {
    const env: Record<string, string> = {
      PATH: `${POD_BIN_DIR}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
      HOSTNAME: pod.metadata?.name ?? '',
      HOME: '/',
    };
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      else if (e.valueFrom?.fieldRef) env[e.name] = fieldOf(pod, e.valueFrom.fieldRef.fieldPath);
      else throw new Error(`container ${c.name}: env ${e.name}: only value and fieldRef are supported here`);
    }
    return env;
  }

  /** Starts one process of the pod (a container, or a probe's command with `logName`). */
  private spawnIn(
    pod: KubeObject,
    net: PodNamespace,
    c: Container,
    r: RunningPod,
    argv: readonly string[],
    logName: string,
    interactive: boolean,
  ): PodProcess {
    const logFile = join(r.dir, 'logs', `${logName}.log`);
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(
        this.bins.ip!,
        [
          'netns',
          'exec',
          net.netns,
          this.bins.unshare!,
          '--mount',
          '--propagation',
          'private',
          this.bins.sh!,
          '-c',
          this.setupScript(r, c),
          'weft-pod',
          ...argv,
        ],
        {
          // Its own process group, so stopping it reaches whatever it starts.
          detached: true,
          env: this.env(pod, c),
          stdio: interactive ? ['pipe', 'pipe', fd] : ['ignore', fd, fd],
        },
      );
    } finally {
      closeSync(fd);
    }
    let done = false;
    const exited = new Promise<number | null>((resolve) => {
      child.once('exit', (code) => {
        done = true;
        resolve(code);
      });
      child.once('error', () => {
        done = true;
        resolve(-1);
      });
    });
    return {
      container: c.name,
      pid: child.pid ?? -1,
      child,
      logFile,
      exited,
      get done() {
        return done;
      },
    };
  }

  private run(pod: KubeObject, net: PodNamespace, c: Container, r: RunningPod): PodProcess {
    return this.spawnIn(pod, net, c, r, this.argv(c), c.name, c.stdin === true);
  }

  /** Waits for a container's startup probe (none: started), failing when the process exits. */
  private async awaitStartup(
    pod: KubeObject,
    net: PodNamespace,
    c: Container,
    p: PodProcess,
    r: RunningPod,
  ): Promise<void> {
    const probe = c.startupProbe;
    if (!probe) return;
    const limit = this.o.startTimeoutMs ?? 60_000;
    const allowed = (probe.periodSeconds ?? 10) * (probe.failureThreshold ?? 3) * 1000;
    const end = Date.now() + Math.min(limit, allowed);
    // Probed more often than its period: only the deadline is the probe's, the pace is a test's.
    for (;;) {
      if (p.done)
        throw new Error(
          `container ${c.name} exited (${await p.exited}) before its startup probe passed${tail(r, c.name)}`,
        );
      if (await this.probeOnce(pod, net, c, probe, r)) return;
      if (Date.now() > end)
        throw new Error(
          `container ${c.name}: startup probe did not pass within ${Math.min(limit, allowed)} ms${tail(r, c.name)}`,
        );
      await new Promise((res) => setTimeout(res, 200));
    }
  }

  private async probeOnce(
    pod: KubeObject,
    net: PodNamespace,
    c: Container,
    probe: Probe,
    r: RunningPod,
  ): Promise<boolean> {
    const host = probe.httpGet?.host ?? probe.tcpSocket?.host ?? r.ip;
    // A probe names its port by number or by the name of one of the container's ports.
    const portOf = (port: number | string): number =>
      typeof port === 'number' || /^\d+$/.test(port)
        ? Number(port)
        : (c.ports?.find((x) => x.name === port)?.containerPort ?? 0);
    if (probe.exec) {
      const p = this.spawnIn(pod, net, c, r, probe.exec.command, `${c.name}.probe`, false);
      return (await p.exited) === 0;
    }
    if (probe.httpGet) {
      const code = await httpStatus(host, portOf(probe.httpGet.port), probe.httpGet.path ?? '/');
      return code >= 200 && code < 400;
    }
    if (probe.tcpSocket) return tcpOpen(host, portOf(probe.tcpSocket.port));
    return true;
  }
}

function tail(r: RunningPod, container: string): string {
  const log = r.logs()[container] ?? '';
  const lines = log.trimEnd().split('\n').slice(-15).join('\n');
  return lines ? `; its log ends:\n${lines}` : ' (its log is empty)';
}

async function stopProcess(p: PodProcess): Promise<void> {
  // A process that never started has no pid, and -(-1) would signal every process there is.
  if (p.done || p.pid <= 1) return;
  const signal = (s: NodeJS.Signals): void => {
    try {
      process.kill(-p.pid, s);
    } catch {
      // already gone
    }
  };
  signal('SIGTERM');
  const killed = await Promise.race([
    p.exited.then(() => true),
    new Promise((r) => setTimeout(() => r(false), 5000)),
  ]);
  if (!killed) {
    signal('SIGKILL');
    await p.exited;
  }
}

/** GET http://host:port/path; resolves with the status, 0 when it could not connect. */
export function httpStatus(host: string, port: number, path: string, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, method: 'GET', timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, host);
    s.setTimeout(2000, () => s.destroy());
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(false));
  });
}
