/**
 * The Envoy tier's mesh, as manifests for `weft serve --config-dir`: namespace `shop` with
 * - `buyer` and `thief`, client-only pods (their app serves nothing);
 * - `store-v1` and `store-v2` (ServiceAccount `store`) serving HTTP/1.1 on 8080, h2c on 8081, gRPC
 *   on 9090 and a TCP echo on 7070, behind Services `store` (split 90/10 over the other two),
 *   `store-v1` and `store-v2`, each with a virtual ClusterIP on the pod network;
 * - `web-0` and `web-1` (ServiceAccount `web`), a StatefulSet's pods behind the headless Service
 *   `web` (`clusterIP: None`), serving HTTP/1.1 on 8080;
 * and, outside the mesh (in no manifest, not injected), the pod `outside` serving HTTP/1.1 on 8080.
 *
 * Access: buyer may call store's HTTP routes `/open`, `/revocable` and the gRPC service, and its
 * TCP port; thief may call only store's TCP port (so its HTTP calls reach store's sidecar, which
 * denies them); buyer may call web's `/open`.
 */

import { ANNOTATION } from '../../src/inject/mutate';
import type { KubeObject } from '../../src/kube/client';
import { type EnvoyMesh, type MeshPod, POD_APP_IMAGE } from '../../src/netns/mesh';
import type { PodNetwork } from '../../src/netns/network';

/** Ports the store pods serve. */
export const PORT = { http1: 8080, h2c: 8081, grpc: 9090, tcp: 7070 } as const;

/** The pods of the tier and their addresses. */
export interface TierAddresses {
  pods: Record<TierPod, string>;
  services: { store: string; 'store-v1': string; 'store-v2': string };
}

/** Addresses for every tier pod and Service, taken from the network in a fixed order. */
export function tierAddresses(net: PodNetwork): TierAddresses {
  return {
    pods: Object.fromEntries(TIER_PODS.map((p) => [p, net.podAddress()])) as Record<TierPod, string>,
    services: {
      store: net.serviceAddress(),
      'store-v1': net.serviceAddress(),
      'store-v2': net.serviceAddress(),
    },
  };
}

/**
 * Starts these tier pods at once and puts each in `into`; when any fails, throws every failure
 * (each names its pod and the end of its log), after the others have started or failed too.
 */
export async function startTierPods(
  mesh: EnvoyMesh,
  names: readonly TierPod[],
  a: TierAddresses,
  into: Map<TierPod, MeshPod>,
): Promise<void> {
  const started = await Promise.allSettled(
    names.map(async (p) => {
      into.set(p, await mesh.startPod(tierPod(p, a)));
    }),
  );
  const failed = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed.length > 0)
    throw new Error(failed.map((f) => String(f.reason?.message ?? f.reason)).join('\n\n'));
}

/** Pods of the tier. */
export const TIER_PODS = ['buyer', 'thief', 'store-v1', 'store-v2', 'web-0', 'web-1', 'outside'] as const;
/** A pod of the tier. */
export type TierPod = (typeof TIER_PODS)[number];

/** ServiceAccounts that get bootstrap tokens. */
export const TIER_SERVICE_ACCOUNTS = ['shop/buyer', 'shop/thief', 'shop/store', 'shop/web'] as const;

const STORE_PORTS = [
  { name: 'http', containerPort: PORT.http1 },
  { name: 'h2c', containerPort: PORT.h2c },
  { name: 'grpc', containerPort: PORT.grpc },
  { name: 'tcp', containerPort: PORT.tcp },
];

function app(args: string[], ports: { name: string; containerPort: number }[] = []): Record<string, unknown> {
  return { name: 'app', image: POD_APP_IMAGE, stdin: true, args, ...(ports.length > 0 ? { ports } : {}) };
}

/** The Pod manifest of one tier pod, with the status a kubelet would report. */
export function tierPod(name: TierPod, a: TierAddresses): KubeObject {
  const storeArgs = [
    '--http1',
    `${PORT.http1}`,
    '--h2c',
    `${PORT.h2c}`,
    '--grpc',
    `${PORT.grpc}`,
    '--tcp',
    `${PORT.tcp}`,
  ];
  const base = (sa: string, labels: Record<string, string>, spec: Record<string, unknown>): KubeObject => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'shop', labels },
    spec: { serviceAccountName: sa, ...spec },
    status: {
      phase: 'Running',
      podIP: a.pods[name],
      podIPs: [{ ip: a.pods[name] }],
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  });
  switch (name) {
    case 'buyer':
    case 'thief':
      return base(name, { app: name }, { containers: [app([])] });
    case 'store-v1':
    case 'store-v2':
      return base(
        'store',
        { app: 'store', version: name.slice(-2) },
        { containers: [app(storeArgs, STORE_PORTS)] },
      );
    case 'web-0':
    case 'web-1':
      return base(
        'web',
        { app: 'web', 'statefulset.kubernetes.io/pod-name': name },
        {
          hostname: name,
          subdomain: 'web',
          containers: [app(['--http1', `${PORT.http1}`], [{ name: 'http', containerPort: PORT.http1 }])],
        },
      );
    case 'outside': {
      const p = base('default', { app: 'outside' }, { containers: [app(['--http1', `${PORT.http1}`])] });
      p.metadata!.annotations = { [ANNOTATION.inject]: 'false' };
      return p;
    }
  }
}

function yamlOf(o: unknown): string {
  return `${JSON.stringify(o)}\n`;
}

function service(
  name: string,
  clusterIP: string,
  selector: Record<string, string>,
  ports: unknown[],
): string {
  return yamlOf({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'shop' },
    spec: { clusterIP, selector, ports },
  });
}

const STORE_SERVICE_PORTS = [
  { name: 'http', port: PORT.http1, targetPort: 'http', appProtocol: 'http' },
  { name: 'h2c', port: PORT.h2c, targetPort: 'h2c', appProtocol: 'kubernetes.io/h2c' },
  { name: 'grpc', port: PORT.grpc, targetPort: 'grpc', appProtocol: 'grpc' },
  { name: 'tcp', port: PORT.tcp, targetPort: 'tcp', appProtocol: 'tcp' },
];

/** Namespace, ServiceAccounts, Services and the mesh's pods (all but `outside`). */
export function tierWorkloads(a: TierAddresses): string {
  const docs = [
    yamlOf({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'shop', labels: { 'weft.dev/mesh': 'enabled' } },
    }),
    ...['buyer', 'thief', 'store', 'web'].map((sa) =>
      yamlOf({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: 'shop' } }),
    ),
    service('store', a.services.store, { app: 'store' }, STORE_SERVICE_PORTS),
    service('store-v1', a.services['store-v1'], { app: 'store', version: 'v1' }, STORE_SERVICE_PORTS),
    service('store-v2', a.services['store-v2'], { app: 'store', version: 'v2' }, STORE_SERVICE_PORTS),
    service('web', 'None', { app: 'web' }, [
      { name: 'http', port: PORT.http1, targetPort: 'http', appProtocol: 'http' },
    ]),
    ...TIER_PODS.filter((p) => p !== 'outside').map((p) => yamlOf(tierPod(p, a))),
  ];
  return docs.join('---\n');
}

/** Routes: store's HTTP paths and gRPC service, its TCP port, web's `/open`. */
export const TIER_ROUTES = `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: store-paths, namespace: shop }
spec:
  matches:
    - { name: open, pathRegex: /open, methods: ["*"] }
    - { name: revocable, pathRegex: /revocable, methods: ["*"] }
    - { name: grpc, pathRegex: /weft.pod.Echo/, methods: ["*"] }
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: { name: store-tcp, namespace: shop }
spec: { matches: { ports: [${PORT.tcp}] } }
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: web-paths, namespace: shop }
spec:
  matches:
    - { name: open, pathRegex: /open, methods: ["*"] }
`;

/** buyer → store: the given matches of store-paths, and the TCP port. */
export function buyerToStore(matches: readonly string[]): string {
  return `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: buyer-to-store, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: store, namespace: shop }
  rules: [{ kind: HTTPRouteGroup, name: store-paths, matches: [${matches.join(', ')}] }]
  sources: [{ kind: ServiceAccount, name: buyer, namespace: shop }]
---
# A TrafficTarget of its own: next to HTTP rules, a TCPRoute rule would narrow them to its ports
# (the SMI spec's L7 example), not open the TCP port beside them.
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: buyer-to-store-tcp, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: store, namespace: shop }
  rules: [{ kind: TCPRoute, name: store-tcp }]
  sources: [{ kind: ServiceAccount, name: buyer, namespace: shop }]
`;
}

/** thief → store: the TCP port only; buyer → web: `/open`. */
export const OTHER_TARGETS = `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: thief-to-store-tcp, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: store, namespace: shop }
  rules: [{ kind: TCPRoute, name: store-tcp }]
  sources: [{ kind: ServiceAccount, name: thief, namespace: shop }]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: buyer-to-web, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: web, namespace: shop }
  rules: [{ kind: HTTPRouteGroup, name: web-paths, matches: [open] }]
  sources: [{ kind: ServiceAccount, name: buyer, namespace: shop }]
`;

/** store splits 90/10 over store-v1 and store-v2. */
export const STORE_SPLIT = `apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: { name: store-split, namespace: shop }
spec:
  service: store
  backends: [{ service: store-v1, weight: 90 }, { service: store-v2, weight: 10 }]
`;
