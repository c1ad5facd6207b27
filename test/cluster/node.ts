/**
 * A real single-node Kubernetes cluster for the cluster tier, started and stopped by the tests:
 * etcd and kube-apiserver (the Kubernetes tier's `startKubeEnv`, advertised on the node's IP so
 * pods reach it through the `kubernetes` Service), kube-controller-manager, kube-scheduler,
 * kube-proxy (iptables mode) and kubelet, all built by `scripts/setup-kube.sh`; containerd and runc
 * from Debian, started here (no systemd); the pod network is the CNI bridge and host-local plugins
 * from Debian (containernetworking-plugins) on a bridge whose address is the node's IP.
 *
 * Choices that make it run on a machine that is not a dedicated node:
 * - containerd with `restrict_oom_score_adj`: a process here may not lower its oom_score_adj,
 *   and without it every sandbox fails (`can't get final child's PID from pipe: EOF`);
 * - kubelet with the cgroupfs driver, no QoS cgroups, no node allocatable enforcement, image
 *   garbage collection off (images are imported, they cannot be pulled again) and no eviction;
 * - packets are forwarded only for the bridge (`net.ipv4.conf.<bridge>.forwarding`), not
 *   machine-wide; kube-proxy leaves conntrack sysctls and `route_localnet` alone;
 * - everything lives in one work folder (containerd's root and state, kubelet's root, CNI's IPAM
 *   data), so stopping removes it all: pods, then the node's processes in reverse order,
 *   kube-proxy's rules (`kube-proxy --cleanup`), other KUBE- chains, mounts under the folder, the
 *   pods' network namespaces, the bridge and the pods' cgroups. A run that crashed is cleaned
 *   up by the next start.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/net';
import type { ProcessResult } from '../../src/process';
import { runProcess } from '../../src/process';
import { issue, type KubeEnv, kubeBinDir, startKubeEnv, stopProc, tail } from '../kube/env';
import { type ClusterDns, startClusterDns } from './dns';

/** The node components the cluster tier needs beyond the Kubernetes tier's. */
export const NODE_BINARIES = ['kubelet', 'kube-scheduler', 'kube-controller-manager', 'kube-proxy', 'pause'];
/** Debian commands the node needs, with their packages. */
const NODE_COMMANDS: Record<string, string> = {
  containerd: 'containerd',
  'containerd-shim-runc-v2': 'containerd',
  ctr: 'containerd',
  runc: 'runc',
  iptables: 'iptables',
  ip: 'iproute2',
  conntrack: 'conntrack',
  ldd: 'libc-bin',
  tar: 'tar',
};
/** Where Debian's containernetworking-plugins puts the CNI plugins. */
const CNI_BIN = '/usr/lib/cni';

/** Where the node's network lives. Defaults suit one cluster per machine. */
export interface ClusterNetwork {
  /** The bridge (at most 15 characters). */
  bridge: string;
  /** The pods' subnet, a /16; its first address is the bridge's and the node's IP. */
  podSubnet: string;
  /** The Services' ClusterIP range. */
  serviceSubnet: string;
}

/** The default network: pods in 10.220.0.0/16 (node 10.220.0.1), Services in 10.221.0.0/16. */
export const DEFAULT_CLUSTER_NETWORK: ClusterNetwork = {
  bridge: 'weftc0',
  podSubnet: '10.220.0.0/16',
  serviceSubnet: '10.221.0.0/16',
};

const NODE_NAME = 'weft-node';
/** Prefix of the work folders, so a later run finds what a crashed one left. */
const WORK_PREFIX = 'weft-cluster-';
/**
 * The cgroup (in every hierarchy) under which the pods' containers run: without QoS cgroups
 * kubelet gives no pod cgroup, and containerd's CRI then uses its namespace's name.
 */
const CGROUP_ROOT = 'k8s.io';

function which(cmd: string): string | undefined {
  for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return undefined;
}

/**
 * Why the cluster tier cannot run here, or undefined when it can: not root, not Linux, missing
 * Debian packages or CNI plugins, the node binaries not built.
 */
export function clusterUnavailable(): string | undefined {
  if (process.platform !== 'linux') return `the cluster tier needs Linux (this is ${process.platform})`;
  const reasons: string[] = [];
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    reasons.push(
      'a kubelet and containerd need root (mounts, cgroups, iptables, network namespaces): run as root',
    );
  const missing = Object.keys(NODE_COMMANDS).filter((c) => !which(c));
  const packages = new Set(missing.map((c) => NODE_COMMANDS[c]!));
  if (!existsSync(join(CNI_BIN, 'bridge')) || !existsSync(join(CNI_BIN, 'host-local')))
    packages.add('containernetworking-plugins');
  if (packages.size > 0) {
    const list = [...packages].sort().join(' ');
    reasons.push(`missing Debian packages: apt-get install ${list} (scripts/prepare-tests.sh does as root)`);
  }
  let bin: string | undefined;
  try {
    bin = kubeBinDir();
  } catch (err) {
    reasons.push((err as Error).message);
  }
  if (bin) {
    const absent = NODE_BINARIES.filter((b) => !existsSync(join(bin, b)));
    if (absent.length > 0)
      reasons.push(`no ${absent.join(', ')} in ${bin}: run scripts/setup-kube.sh (or set WEFT_KUBE_BIN)`);
  }
  return reasons.length > 0 ? reasons.join('; ') : undefined;
}

/** The `host`th address of a /16 written `a.b.0.0/16` (1 is its first usable address). */
function addressIn(subnet: string, host: number): string {
  const [a, b] = subnet.split('/')[0]!.split('.');
  return `${a}.${b}.${Math.floor(host / 256)}.${host % 256}`;
}

/** A running single-node cluster. */
export interface Cluster {
  readonly env: KubeEnv;
  readonly kubeconfigPath: string;
  /** The node's IP: the bridge's address, where the API server listens. */
  readonly nodeIp: string;
  readonly network: ClusterNetwork;
  readonly binDir: string;
  /** The work folder (logs of every component are `<name>.log` in it). */
  readonly dir: string;
  /** The cluster's DNS (Services' names to ClusterIPs), on the node's IP. */
  readonly dns: ClusterDns;
  /** Runs kubectl against the cluster. */
  kubectl(args: string[], stdin?: string): Promise<ProcessResult>;
  /** Loads a `docker save` archive into containerd's Kubernetes namespace. */
  importImages(archive: string): Promise<void>;
  /** The last lines of a component's log (`containerd`, `kubelet`, ...), for failure messages. */
  log(component: string): string;
  /** Stops everything and removes what it made; safe to call twice. */
  stop(): Promise<void>;
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  network?: ClusterNetwork;
  /** Images to load before kubelet starts (the pause image must be among them). */
  imageArchive: string;
  /** The pause image's name (containerd's sandbox_image). */
  pauseImage: string;
  /** Progress lines (each component as it comes up). */
  progress?: (line: string) => void;
}

function sh(cmd: string, args: readonly string[]): string {
  return execFileSync(which(cmd) ?? cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function shQuiet(cmd: string, args: readonly string[]): string {
  try {
    return sh(cmd, args);
  } catch {
    return '';
  }
}

/** Kills every process whose command line mentions `needle`, and every process in our cgroups. */
function killLeftovers(needle: string): void {
  const pids = new Set<number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline.includes(needle)) pids.add(Number(entry));
    } catch {
      // gone
    }
  }
  for (const dir of cgroupDirs()) {
    for (const pid of readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      pids.add(Number(pid));
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** Every cgroup under the tier's root, deepest first, in every mounted hierarchy. */
function cgroupDirs(): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
    }
    out.push(dir);
  };
  if (!existsSync('/sys/fs/cgroup')) return out;
  const roots = existsSync(`/sys/fs/cgroup/cgroup.controllers`)
    ? ['/sys/fs/cgroup']
    : readdirSync('/sys/fs/cgroup').map((h) => join('/sys/fs/cgroup', h));
  for (const h of roots) {
    const root = join(h, CGROUP_ROOT);
    try {
      if (statSync(root).isDirectory()) walk(root);
    } catch {
      // not in this hierarchy
    }
  }
  return out;
}

/** Unmounts everything mounted under `prefix`, deepest first. */
function unmountUnder(prefix: string): void {
  for (let round = 0; round < 3; round++) {
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((l) => l.split(' ')[4] ?? '')
      .map((p) => p.replace(/\\040/g, ' '))
      .filter((p) => p.startsWith(prefix))
      .sort((a, b) => b.length - a.length);
    if (mounts.length === 0) return;
    for (const m of mounts) shQuiet('umount', ['-l', m]);
  }
}

/**
 * Removes what a cluster left (this run's, or a crashed run's when `dir` is undefined): processes,
 * kube-proxy's and kubelet's iptables chains, mounts, the pods' network namespaces and veths, the
 * bridge, IPAM records, cgroups.
 */
function cleanup(network: ClusterNetwork, binDir: string | undefined, dir?: string): void {
  const needle = dir ?? join(tmpdir(), WORK_PREFIX);
  killLeftovers(needle);
  if (binDir && existsSync(join(binDir, 'kube-proxy'))) shQuiet(join(binDir, 'kube-proxy'), ['--cleanup']);
  // Chains kubelet and kube-proxy make that --cleanup leaves (KUBE-FIREWALL, the canaries).
  for (const table of ['filter', 'nat', 'mangle']) {
    const rules = shQuiet('iptables', ['-t', table, '-S']).split('\n');
    for (const r of rules) {
      // Jumps from built-in chains into KUBE- chains first, then the chains.
      const m = /^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) (.*-j KUBE-\S+.*)$/.exec(r);
      if (m) shQuiet('iptables', ['-t', table, '-D', m[1]!, ...splitRule(m[2]!)]);
    }
    const chains = rules.map((r) => /^-N (KUBE-\S+)$/.exec(r)?.[1]).filter((c): c is string => !!c);
    for (const c of chains) shQuiet('iptables', ['-t', table, '-F', c]);
    for (const c of chains) shQuiet('iptables', ['-t', table, '-X', c]);
  }
  const roots = dir
    ? [dir]
    : readdirSync(tmpdir())
        .filter((d) => d.startsWith(WORK_PREFIX))
        .map((d) => join(tmpdir(), d));
  for (const r of roots) unmountUnder(r);
  // containerd names the pods' network namespaces cni-<uuid>; only ours join our bridge.
  for (const ns of existsSync('/run/netns') ? readdirSync('/run/netns') : []) {
    if (!ns.startsWith('cni-')) continue;
    const links = shQuiet('ip', ['-n', ns, '-o', 'link']);
    const ours = shQuiet('ip', ['-o', 'link', 'show', 'master', network.bridge]);
    // A namespace whose veth is gone (its pod stopped) or whose peer is on our bridge.
    const peerIdx = /@if(\d+):/.exec(links.split('\n').find((l) => /eth0@/.test(l)) ?? '')?.[1];
    if (!peerIdx || ours.split('\n').some((l) => l.startsWith(`${peerIdx}:`))) {
      shQuiet('umount', [`/run/netns/${ns}`]);
      rmSync(`/run/netns/${ns}`, { force: true });
    }
  }
  shQuiet('ip', ['link', 'del', network.bridge]);
  for (const cg of cgroupDirs()) {
    try {
      rmdirSync(cg);
    } catch {
      // still busy; the next run tries again
    }
  }
  // A crashed run's folder; this run's own is removed by stop() unless WEFT_KEEP_CLUSTER is set.
  if (!dir) for (const r of roots) rmSync(r, { recursive: true, force: true });
}

/** Splits an `iptables -S` rule into arguments (quoted comments kept whole). */
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

/** Starts `bin` with `args`, its output appended to `<dir>/<name>.log`. */
function start(dir: string, name: string, bin: string, args: string[]): ChildProcess {
  const fd = openSync(join(dir, `${name}.log`), 'a');
  return spawn(bin, args, { stdio: ['ignore', fd, fd] });
}

async function until<T>(
  what: string,
  timeoutMs: number,
  check: () => Promise<T | undefined>,
  why: () => string,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what} not after ${timeoutMs / 1000} s:\n${why()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Starts the cluster; resolves once its node is Ready. */
export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const network = o.network ?? DEFAULT_CLUSTER_NETWORK;
  const progress = o.progress ?? (() => {});
  const bin = kubeBinDir();
  cleanup(network, bin);
  const nodeIp = addressIn(network.podSubnet, 1);
  const apiServiceIp = addressIn(network.serviceSubnet, 1);
  const dir = join(tmpdir(), `${WORK_PREFIX}${process.pid}`);
  mkdirSync(dir, { recursive: true });
  const procs: { name: string; p: ChildProcess }[] = [];
  let env: KubeEnv | undefined;
  let dns: ClusterDns | undefined;
  const log = (name: string) => tail(join(dir, `${name}.log`));
  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', onExit);
    // Pods first, through the API, so that containerd tears their networks down itself.
    if (env && procs.some((x) => x.name === 'kubelet' && x.p.exitCode === null)) {
      for (const name of ['kube-controller-manager', 'kube-scheduler']) {
        await stopProc(procs.find((x) => x.name === name)?.p);
      }
      await env.kubectl(['delete', 'pods', '--all', '--all-namespaces', '--grace-period=1', '--timeout=60s']);
    }
    for (const { p } of [...procs].reverse()) await stopProc(p);
    await dns?.close();
    await env?.stop();
    cleanup(network, bin, dir);
    if (!process.env.WEFT_KEEP_CLUSTER) rmSync(dir, { recursive: true, force: true });
  };
  const onExit = (): void => {
    // Synchronous last resort when a test forgets stop(): kill and remove what we can.
    for (const { p } of procs) p.kill('SIGKILL');
    cleanup(network, bin, dir);
  };
  process.on('exit', onExit);
  try {
    // The bridge first: its address is the node's IP, where the API server listens.
    sh('ip', ['link', 'add', network.bridge, 'type', 'bridge']);
    sh('ip', ['addr', 'add', `${nodeIp}/16`, 'dev', network.bridge]);
    sh('ip', ['link', 'set', network.bridge, 'up']);
    // Pod -> ClusterIP -> pod is routed through the node: forward what enters from the bridge.
    writeFileSync(`/proc/sys/net/ipv4/conf/${network.bridge}/forwarding`, '1');

    progress('etcd and kube-apiserver');
    env = await startKubeEnv({
      address: nodeIp,
      serviceClusterIpRange: network.serviceSubnet,
      serviceSans: [
        `IP:${apiServiceIp}`,
        'DNS:kubernetes',
        'DNS:kubernetes.default',
        'DNS:kubernetes.default.svc',
        'DNS:kubernetes.default.svc.cluster.local',
      ],
      withNodes: true,
      // As every real cluster has it: the chart registers Weft's TrafficMetrics APIServices, and
      // an APIService the aggregator cannot reach fails discovery, which stalls the namespace
      // controller (a deleted namespace stays Terminating).
      aggregation: true,
      parentDir: dir,
    });
    const pki = env.dir;
    issue(pki, 'node', `/CN=system:node:${NODE_NAME}/O=system:nodes`, 'extendedKeyUsage=clientAuth\n');
    const nodeKubeconfig = join(dir, 'node.kubeconfig');
    writeFileSync(
      nodeKubeconfig,
      readFileSync(env.kubeconfigPath, 'utf8').replace(/admin\.(crt|key)/g, 'node.$1'),
    );

    progress('containerd');
    const ctrDir = join(dir, 'containerd');
    const sock = join(ctrDir, 'containerd.sock');
    const cniConf = join(dir, 'cni');
    mkdirSync(cniConf, { recursive: true });
    writeFileSync(
      join(ctrDir, '..', 'containerd.toml'),
      containerdConfig(ctrDir, sock, cniConf, o.pauseImage),
    );
    writeFileSync(join(cniConf, '10-weft-cluster.conflist'), cniConfig(network, nodeIp, join(dir, 'ipam')));
    mkdirSync(ctrDir, { recursive: true });
    procs.push({
      name: 'containerd',
      p: start(dir, 'containerd', which('containerd')!, ['--config', join(dir, 'containerd.toml')]),
    });
    const ctr = (args: string[]) => runProcess(which('ctr')!, ['--address', sock, '-n', 'k8s.io', ...args]);
    await until(
      'containerd',
      30_000,
      async () => ((await ctr(['version'])).code === 0 ? true : undefined),
      () => log('containerd'),
    );
    const importImages = async (archive: string): Promise<void> => {
      const r = await ctr(['images', 'import', '--all-platforms', archive]);
      if (r.code !== 0) throw new Error(`ctr images import ${archive}: ${r.stderr}`);
    };
    await importImages(o.imageArchive);

    progress('kube-controller-manager, kube-scheduler');
    const admin = env.kubeconfigPath;
    procs.push({
      name: 'kube-controller-manager',
      p: start(dir, 'kube-controller-manager', join(bin, 'kube-controller-manager'), [
        `--kubeconfig=${admin}`,
        `--service-account-private-key-file=${join(pki, 'sa.key')}`,
        `--root-ca-file=${join(pki, 'ca.crt')}`,
        '--use-service-account-credentials=false',
        '--leader-elect=false',
        '--secure-port=0',
      ]),
    });
    procs.push({
      name: 'kube-scheduler',
      p: start(dir, 'kube-scheduler', join(bin, 'kube-scheduler'), [
        `--kubeconfig=${admin}`,
        '--leader-elect=false',
        '--secure-port=0',
      ]),
    });

    progress('kube-proxy');
    const proxyConfig = join(dir, 'kube-proxy.yaml');
    writeFileSync(
      proxyConfig,
      JSON.stringify({
        apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
        kind: 'KubeProxyConfiguration',
        clientConnection: { kubeconfig: admin },
        mode: 'iptables',
        hostnameOverride: NODE_NAME,
        bindAddress: nodeIp,
        healthzBindAddress: `127.0.0.1:${await freePort()}`,
        metricsBindAddress: `127.0.0.1:${await freePort()}`,
        clusterCIDR: network.podSubnet,
        nodePortAddresses: [`${nodeIp}/32`],
        // Leave the machine's conntrack table sizes and timeouts as they are.
        conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
        // No NodePorts on 127.0.0.1, so route_localnet stays off. A pod's call to a ClusterIP
        // whose endpoint is on the same bridge is answered across the bridge: only with
        // br_netfilter's bridge-nf-call-iptables does conntrack see that answer and undo the DNAT.
        // Where it is off (a machine-wide switch this tier does not turn), every Service call is
        // masqueraded to the node instead, so answers come back through it.
        iptables: { localhostNodePorts: false, masqueradeAll: !bridgeNetfilter() },
      }),
    );
    procs.push({
      name: 'kube-proxy',
      p: start(dir, 'kube-proxy', join(bin, 'kube-proxy'), [`--config=${proxyConfig}`]),
    });

    progress('cluster DNS');
    const started = env;
    dns = await startClusterDns({
      address: nodeIp,
      domain: 'cluster.local',
      services: async () => {
        const r = await started.kubectl([
          'get',
          'services',
          '--all-namespaces',
          '-o',
          'jsonpath={range .items[*]}{.metadata.name}.{.metadata.namespace} {.spec.clusterIP}{"\\n"}{end}',
        ]);
        const m = new Map<string, string>();
        for (const line of r.stdout.split('\n')) {
          const [name, ip] = line.split(' ');
          if (name && ip && ip !== 'None') m.set(name, ip);
        }
        return m;
      },
    });

    progress('kubelet');
    const kubeletConfig = join(dir, 'kubelet.yaml');
    writeFileSync(
      kubeletConfig,
      JSON.stringify({
        apiVersion: 'kubelet.config.k8s.io/v1beta1',
        kind: 'KubeletConfiguration',
        address: nodeIp,
        port: await freePort(nodeIp),
        readOnlyPort: 0,
        healthzPort: 0,
        authentication: {
          anonymous: { enabled: false },
          webhook: { enabled: false },
          x509: { clientCAFile: join(pki, 'ca.crt') },
        },
        authorization: { mode: 'AlwaysAllow' },
        containerRuntimeEndpoint: `unix://${sock}`,
        cgroupDriver: 'cgroupfs',
        cgroupsPerQOS: false,
        enforceNodeAllocatable: [],
        failSwapOn: false,
        // Images are imported, not pulled: never collect them, never evict for disk.
        imageGCHighThresholdPercent: 100,
        imageGCLowThresholdPercent: 99,
        evictionHard: {},
        clusterDNS: [nodeIp],
        clusterDomain: 'cluster.local',
        resolvConf: join(dir, 'resolv.conf'),
        serializeImagePulls: false,
        registerNode: true,
        protectKernelDefaults: false,
        localStorageCapacityIsolation: false,
      }),
    );
    writeFileSync(join(dir, 'resolv.conf'), `nameserver ${nodeIp}\n`);
    procs.push({
      name: 'kubelet',
      p: start(dir, 'kubelet', join(bin, 'kubelet'), [
        `--config=${kubeletConfig}`,
        `--kubeconfig=${nodeKubeconfig}`,
        `--root-dir=${join(dir, 'kubelet')}`,
        `--cert-dir=${join(dir, 'kubelet-pki')}`,
        `--hostname-override=${NODE_NAME}`,
        `--node-ip=${nodeIp}`,
      ]),
    });
    const kubectl = env.kubectl;
    await until(
      `node ${NODE_NAME} Ready`,
      120_000,
      async () => {
        for (const { name, p } of procs) {
          if (p.exitCode !== null) throw new Error(`${name} exited with ${p.exitCode}:\n${log(name)}`);
        }
        const r = await kubectl([
          'get',
          'node',
          NODE_NAME,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return r.stdout.trim() === 'True' ? true : undefined;
      },
      () => log('kubelet'),
    );
    // Pods are admitted only once their namespace has its default ServiceAccount.
    await until(
      'the default ServiceAccount',
      60_000,
      async () => ((await kubectl(['get', 'serviceaccount', 'default'])).code === 0 ? true : undefined),
      () => log('kube-controller-manager'),
    );
    progress(`node ${NODE_NAME} Ready (${nodeIp})`);
    return {
      env: started,
      kubeconfigPath: started.kubeconfigPath,
      nodeIp,
      network,
      binDir: bin,
      dir,
      dns,
      kubectl,
      importImages,
      log,
      stop,
    };
  } catch (err) {
    const message = (err as Error).message;
    await stop();
    throw new Error(message);
  }
}

/** Whether bridged IPv4 traffic passes through iptables (br_netfilter loaded and switched on). */
function bridgeNetfilter(): boolean {
  try {
    return readFileSync('/proc/sys/net/bridge/bridge-nf-call-iptables', 'utf8').trim() === '1';
  } catch {
    return false;
  }
}

/** containerd's configuration: its own root, state and socket; CRI with our pause and CNI. */
function containerdConfig(root: string, sock: string, cniConf: string, pauseImage: string): string {
  return `version = 2
root = "${root}/root"
state = "${root}/state"
# Plugins that would write outside the work folder or need what this machine lacks.
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "${sock}"
[ttrpc]
  address = "${sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${pauseImage}"
  # This machine may not lower oom_score_adj; without this every sandbox fails to start.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${CNI_BIN}"
    conf_dir = "${cniConf}"
`;
}

/**
 * The pod network: Debian's CNI bridge plugin on our bridge (not a gateway: the bridge already
 * has the node's address, and a gateway bridge would turn on forwarding machine-wide) and
 * host-local IPAM whose default route goes to the node; without that route a pod cannot reach a
 * ClusterIP, which only the node's kube-proxy rules translate.
 */
function cniConfig(network: ClusterNetwork, nodeIp: string, ipamDir: string): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'weft-cluster',
    plugins: [
      {
        type: 'bridge',
        bridge: network.bridge,
        isGateway: false,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [
            [
              {
                subnet: network.podSubnet,
                rangeStart: addressIn(network.podSubnet, 256 + 1),
                rangeEnd: addressIn(network.podSubnet, 256 * 200),
                gateway: nodeIp,
              },
            ],
          ],
          routes: [{ dst: '0.0.0.0/0', gw: nodeIp }],
          dataDir: ipamDir,
        },
      },
    ],
  });
}
