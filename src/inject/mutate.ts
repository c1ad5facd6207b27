/**
 * Sidecar injection as a pure function of the pod: the JSONPatch (RFC 6902) the webhook returns.
 *
 * An Envoy pod gets, in `spec.initContainers`, in this order:
 * 1. `weft-capture`: installs the iptables rules of capture.ts and exits;
 * 2. `weft-agent` (native sidecar): `weft agent` keeps the workload's certificate, key and the
 *    trust bundle in a shared in-memory emptyDir, from the projected ServiceAccount token (audience
 *    `weft`) and the bundle ConfigMap `weft-ca-bundle`; it starts the next container only once the
 *    certificate is there;
 * 3. `weft-proxy` (native sidecar): Envoy with the bootstrap of bootstrap.ts, ready once it holds
 *    its first configuration from Weft.
 * Native sidecars (`restartPolicy: Always` init containers, Kubernetes 1.29+) start in order and
 * each waits for the previous one's startup probe, so the application never starts before its proxy
 * can carry its traffic, and they do not keep a Job's pod alive after its containers finish.
 *
 * A proxyless gRPC pod (annotation `weft.dev/flavor: grpc`) gets only the agent, with its xDS relay
 * on 127.0.0.1:15010 and the certificate folder mounted read-only into its containers; no Envoy and
 * no capture.
 *
 * Probes: under capture, kubelet's probe to the pod's IP would land on Envoy's inbound listener,
 * which accepts only mesh mTLS, so an httpGet probe would fail. Each httpGet probe is rewritten to
 * Envoy's health port (not captured), path `/app-health/<container>/<livez|readyz|startupz>`,
 * which the bootstrap routes to the application on 127.0.0.1 (its own port and path). Only these
 * fixed paths are exposed, not the application. tcpSocket probes are left as they are: the TCP
 * connection is accepted by the redirect before any TLS, so they keep passing (they then tell that
 * the sidecar accepts connections rather than that the application does). gRPC and exec probes are
 * left unchanged too.
 */
import type { KubeObject } from '../kube/client';
import {
  BOOTSTRAP_FILE,
  type BootstrapOptions,
  envoyBootstrap,
  type ProbeRoute,
  SDS_CA_FILE,
  SDS_CERT_FILE,
  SIDECAR,
  sdsFiles,
} from './bootstrap';
import { captureRules, parseCidrs, parsePorts } from './capture';

/** Annotations the injector reads and writes. */
export const ANNOTATION = {
  /** `"false"` on a pod: do not inject. */
  inject: 'weft.dev/inject',
  /** Set to `"true"` on every injected pod. */
  injected: 'weft.dev/injected',
  /** `grpc`: a proxyless gRPC workload (agent only); `envoy` (default): the Envoy sidecar. */
  flavor: 'weft.dev/flavor',
  /** Comma-separated inbound ports not captured. */
  excludeInboundPorts: 'weft.dev/exclude-inbound-ports',
  /** Comma-separated outbound ports not captured. */
  excludeOutboundPorts: 'weft.dev/exclude-outbound-ports',
  /** Comma-separated outbound IPv4 CIDRs not captured. */
  excludeOutboundCidrs: 'weft.dev/exclude-outbound-cidrs',
} as const;

/** Names of what the injector adds; a pod that already holds one of them is not injected again. */
export const INJECTED = {
  capture: 'weft-capture',
  agent: 'weft-agent',
  proxy: 'weft-proxy',
  tokenVolume: 'weft-token',
  bundleVolume: 'weft-ca-bundle',
  certVolume: 'weft-certs',
  envoyVolume: 'weft-envoy',
} as const;

/** Where the projected token is mounted (audience `weft`). */
export const TOKEN_DIR = '/var/run/secrets/weft';
/** Where the trust bundle ConfigMap is mounted. */
export const BUNDLE_DIR = '/var/run/weft/bundle';
/** The trust bundle ConfigMap (published by Weft into every mesh namespace). */
export const BUNDLE_CONFIGMAP = 'weft-ca-bundle';
/** The loopback address of the agent's xDS relay in proxyless gRPC pods. */
export const GRPC_RELAY_ADDRESS = '127.0.0.1:15010';

/** Compute resources of a container. */
export interface Resources {
  requests?: Record<string, string>;
  limits?: Record<string, string>;
}

/** Settings of the injector (flags of `weft serve`). */
export interface InjectorOptions {
  /** Weft's image: capture init container and agent. */
  weftImage: string;
  /** Envoy's image. */
  proxyImage: string;
  proxyResources?: Resources;
  agentResources?: Resources;
  /** Weft's certificate endpoint (default `weft.weft-system.svc:15012`). */
  caAddress?: string;
  /** Weft's xDS address and trust domain, for the bootstrap. */
  xdsAddress?: string;
  trustDomain?: string;
  /** Cluster-wide capture exclusions, added to each pod's annotations. */
  excludeInboundPorts?: readonly number[];
  excludeOutboundPorts?: readonly number[];
  excludeOutboundCidrs?: readonly string[];
  /**
   * Stream the sidecars' stats to Weft (default true); off when Weft reads TrafficMetrics from a
   * Prometheus that scrapes them instead.
   */
  statsSink?: boolean;
}

/** Default resources of the Envoy sidecar. */
export const DEFAULT_PROXY_RESOURCES: Resources = {
  requests: { cpu: '100m', memory: '128Mi' },
  limits: { memory: '512Mi' },
};
const DEFAULT_AGENT_RESOURCES: Resources = {
  requests: { cpu: '10m', memory: '64Mi' },
  limits: { memory: '128Mi' },
};
/** Default address of Weft's certificate endpoint in a cluster. */
export const DEFAULT_CA_ADDRESS = 'weft.weft-system.svc:15012';

/** One RFC 6902 operation. */
export interface PatchOperation {
  op: 'add' | 'replace';
  path: string;
  value: unknown;
}

/** The outcome: a patch, nothing to do (and why), or a pod the injector cannot handle (and why). */
export type InjectResult =
  | { readonly outcome: 'inject'; readonly patch: PatchOperation[] }
  | { readonly outcome: 'skip'; readonly reason: string }
  | { readonly outcome: 'error'; readonly reason: string };

interface Probe {
  httpGet?: { port: number | string; path?: string; scheme?: string; host?: string; [k: string]: unknown };
  [k: string]: unknown;
}

interface Container {
  name: string;
  ports?: { containerPort: number; name?: string; protocol?: string }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  [k: string]: unknown;
}

interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  volumes?: { name: string }[];
  hostNetwork?: boolean;
  [k: string]: unknown;
}

const PROBES = [
  ['livenessProbe', 'livez'],
  ['readinessProbe', 'readyz'],
  ['startupProbe', 'startupz'],
] as const;

/** JSON Pointer escaping of one path segment. */
function pointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

function podName(pod: KubeObject): string {
  const m = pod.metadata ?? {};
  return `${m.namespace ?? ''}/${m.name || `${(m as { generateName?: string }).generateName ?? ''}*`}`;
}

const sidecarSecurity = {
  runAsUser: SIDECAR.proxyUid,
  runAsGroup: SIDECAR.proxyUid,
  runAsNonRoot: true,
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  capabilities: { drop: ['ALL'] },
};

function agentContainer(o: InjectorOptions, grpc: boolean): Container {
  return {
    name: INJECTED.agent,
    image: o.weftImage,
    args: [
      'agent',
      '--ca-server',
      o.caAddress ?? DEFAULT_CA_ADDRESS,
      '--token-file',
      `${TOKEN_DIR}/token`,
      '--ca-file',
      `${BUNDLE_DIR}/bundle.pem`,
      '--out',
      SIDECAR.certDir,
      ...(grpc
        ? ['--xds-relay', GRPC_RELAY_ADDRESS, '--xds-server', o.xdsAddress ?? 'weft.weft-system.svc:15010']
        : []),
    ],
    restartPolicy: 'Always',
    // The next container starts once the first certificate is on disk.
    startupProbe: {
      exec: { command: ['test', '-s', `${SIDECAR.certDir}/cert.pem`] },
      periodSeconds: 1,
      failureThreshold: 300,
    },
    resources: o.agentResources ?? DEFAULT_AGENT_RESOURCES,
    securityContext: sidecarSecurity,
    volumeMounts: [
      { name: INJECTED.tokenVolume, mountPath: TOKEN_DIR, readOnly: true },
      { name: INJECTED.bundleVolume, mountPath: BUNDLE_DIR, readOnly: true },
      { name: INJECTED.certVolume, mountPath: SIDECAR.certDir },
    ],
  };
}

/**
 * How long Envoy lets connections on a filter chain that changed finish before closing them. HTTP
 * access rules live in routes and apply to the next request at once; a TCP connection admitted by a
 * network RBAC rule that was revoked lasts at most this long (Envoy's default is 600 s).
 */
export const ENVOY_DRAIN_SECONDS = 5;

function proxyContainer(o: InjectorOptions, probes: ProbeRoute[]): Container {
  const b: BootstrapOptions = {
    ...(o.xdsAddress ? { xdsAddress: o.xdsAddress } : {}),
    ...(o.trustDomain ? { trustDomain: o.trustDomain } : {}),
    ...(o.statsSink === false ? { metricsSink: false } : {}),
    probes,
  };
  const sds = sdsFiles();
  // The bootstrap and SDS files travel in environment variables and are written into an emptyDir
  // at start: the pod's name (Envoy's node id) is not known at admission, and no other object has
  // to be created for the pod.
  const script =
    `printf '%s' "$WEFT_BOOTSTRAP" > ${BOOTSTRAP_FILE} && ` +
    `printf '%s' "$WEFT_SDS_CERT" > ${SDS_CERT_FILE} && ` +
    `printf '%s' "$WEFT_SDS_CA" > ${SDS_CA_FILE} && ` +
    `exec envoy -c ${BOOTSTRAP_FILE} --service-node "$WEFT_POD_NAMESPACE/$WEFT_POD_NAME" --service-cluster "$WEFT_POD_NAMESPACE" --drain-time-s ${ENVOY_DRAIN_SECONDS} --log-level warn`;
  const ready = { httpGet: { port: SIDECAR.healthPort, path: SIDECAR.readyPath } };
  return {
    name: INJECTED.proxy,
    image: o.proxyImage,
    command: ['sh', '-c', script],
    env: [
      { name: 'WEFT_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'WEFT_POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'WEFT_BOOTSTRAP', value: JSON.stringify(envoyBootstrap(b)) },
      { name: 'WEFT_SDS_CERT', value: JSON.stringify(sds[SDS_CERT_FILE]) },
      { name: 'WEFT_SDS_CA', value: JSON.stringify(sds[SDS_CA_FILE]) },
    ],
    restartPolicy: 'Always',
    ports: [{ name: 'weft-metrics', containerPort: SIDECAR.statsPort, protocol: 'TCP' }],
    // Ready means Envoy holds its first configuration from Weft: only then may the app start.
    startupProbe: { ...ready, periodSeconds: 1, failureThreshold: 600 },
    readinessProbe: { ...ready, periodSeconds: 5 },
    resources: o.proxyResources ?? DEFAULT_PROXY_RESOURCES,
    securityContext: sidecarSecurity,
    volumeMounts: [
      { name: INJECTED.certVolume, mountPath: SIDECAR.certDir, readOnly: true },
      { name: INJECTED.envoyVolume, mountPath: SIDECAR.envoyDir },
    ],
  };
}

function captureContainer(o: InjectorOptions, rules: string): Container {
  return {
    name: INJECTED.capture,
    image: o.weftImage,
    command: ['sh', '-c', 'printf \'%s\' "$WEFT_IPTABLES" | iptables-restore --noflush'],
    env: [{ name: 'WEFT_IPTABLES', value: rules }],
    resources: { requests: { cpu: '10m', memory: '16Mi' }, limits: { memory: '64Mi' } },
    // Root with NET_ADMIN and NET_RAW for the pod's own network namespace only; not privileged.
    // The root file system stays writable: iptables takes its lock under /run.
    securityContext: {
      runAsUser: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    },
  };
}

function volumes(envoy: boolean): { name: string; [k: string]: unknown }[] {
  return [
    {
      name: INJECTED.tokenVolume,
      projected: {
        sources: [{ serviceAccountToken: { audience: 'weft', expirationSeconds: 3600, path: 'token' } }],
      },
    },
    { name: INJECTED.bundleVolume, configMap: { name: BUNDLE_CONFIGMAP } },
    { name: INJECTED.certVolume, emptyDir: { medium: 'Memory' } },
    ...(envoy ? [{ name: INJECTED.envoyVolume, emptyDir: { medium: 'Memory' } }] : []),
  ];
}

/** Resolves a probe's port (a number or a container port's name) on `c`. */
function probePort(c: Container, port: number | string): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return c.ports?.find((p) => p.name === port)?.containerPort;
}

/**
 * The patch that injects `pod`, or why it is left alone. Idempotent: an injected pod (annotation
 * `weft.dev/injected` or any of the injector's container names) gives `skip`.
 */
export function injectPod(pod: KubeObject, o: InjectorOptions): InjectResult {
  const annotations = pod.metadata?.annotations ?? {};
  const spec = (pod.spec ?? {}) as PodSpec;
  const name = podName(pod);
  if (annotations[ANNOTATION.inject] === 'false')
    return { outcome: 'skip', reason: `pod ${name} opts out (${ANNOTATION.inject}: "false")` };
  const all = [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
  const ours = new Set<string>(Object.values(INJECTED));
  if (annotations[ANNOTATION.injected] === 'true' || all.some((c) => ours.has(c.name)))
    return { outcome: 'skip', reason: `pod ${name} already has Weft's sidecars` };
  const error = (reason: string): InjectResult => ({ outcome: 'error', reason: `pod ${name}: ${reason}` });
  const clash = (spec.volumes ?? []).find((v) => ours.has(v.name));
  if (clash)
    return error(
      `volume name "${clash.name}" is reserved for Weft's sidecars; rename the volume or set ${ANNOTATION.inject}: "false"`,
    );
  const flavor = annotations[ANNOTATION.flavor] ?? 'envoy';
  if (flavor !== 'envoy' && flavor !== 'grpc')
    return error(`annotation ${ANNOTATION.flavor} is "${flavor}"; use "envoy" (the default) or "grpc"`);
  const envoy = flavor === 'envoy';
  if (envoy && spec.hostNetwork)
    return error(
      `spec.hostNetwork is true, so traffic capture would rewrite the node's iptables; set ${ANNOTATION.inject}: "false" on host-network pods`,
    );
  let rules = '';
  if (envoy) {
    try {
      const from = (key: string, parse: (v: string, what: string) => unknown[]) =>
        annotations[key] ? parse(annotations[key], `annotation ${key}`) : [];
      rules = captureRules({
        excludeInboundPorts: [
          ...(o.excludeInboundPorts ?? []),
          ...(from(ANNOTATION.excludeInboundPorts, parsePorts) as number[]),
        ],
        excludeOutboundPorts: [
          ...(o.excludeOutboundPorts ?? []),
          ...(from(ANNOTATION.excludeOutboundPorts, parsePorts) as number[]),
        ],
        excludeOutboundCidrs: [
          ...(o.excludeOutboundCidrs ?? []),
          ...(from(ANNOTATION.excludeOutboundCidrs, parseCidrs) as string[]),
        ],
      });
    } catch (err) {
      return error((err as Error).message);
    }
  }
  const patch: PatchOperation[] = [];
  const probes: ProbeRoute[] = [];
  (spec.containers ?? []).forEach((c, i) => {
    if (!envoy) {
      // Proxyless gRPC reads the certificate files itself (grpc's file_watcher provider).
      patch.push({
        op: 'add',
        path: `/spec/containers/${i}/volumeMounts`,
        value: [
          ...(c.volumeMounts ?? []),
          { name: INJECTED.certVolume, mountPath: SIDECAR.certDir, readOnly: true },
        ],
      });
      return;
    }
    for (const [field, kind] of PROBES) {
      const get = c[field]?.httpGet;
      if (!get) continue;
      const port = probePort(c, get.port);
      // A named port the container does not declare is kubelet's problem to report: leave it.
      if (port === undefined) continue;
      const path = `/app-health/${c.name}/${kind}`;
      probes.push({
        path,
        port,
        appPath: get.path ?? '/',
        scheme: get.scheme === 'HTTPS' ? 'HTTPS' : 'HTTP',
      });
      const { host: _host, scheme: _scheme, ...rest } = get;
      patch.push({
        op: 'replace',
        path: `/spec/containers/${i}/${field}/httpGet`,
        value: { ...rest, port: SIDECAR.healthPort, path, scheme: 'HTTP' },
      });
    }
  });
  const sidecars = envoy
    ? [captureContainer(o, rules), agentContainer(o, false), proxyContainer(o, probes)]
    : [agentContainer(o, true)];
  // Ours go first: the user's own init containers then run with the network already captured
  // and the proxy up, as the app does.
  patch.push({
    op: 'add',
    path: '/spec/initContainers',
    value: [...sidecars, ...(spec.initContainers ?? [])],
  });
  patch.push({ op: 'add', path: '/spec/volumes', value: [...(spec.volumes ?? []), ...volumes(envoy)] });
  patch.push(
    pod.metadata?.annotations
      ? { op: 'add', path: `/metadata/annotations/${pointer(ANNOTATION.injected)}`, value: 'true' }
      : { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION.injected]: 'true' } },
  );
  return { outcome: 'inject', patch };
}
