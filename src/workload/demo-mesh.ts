/**
 * The manifests of `weft demo`: the bookstore mesh of `examples/bookstore`, laid out so every
 * workload can run on this one machine. Each pod gets its own loopback address (Linux routes all of
 * 127.0.0.0/8 to the loopback interface) and its own port, because a proxyless gRPC server binds its
 * port on every interface; Services reach the pods through the named target port `grpc`.
 */

/** Where the demo's workloads listen. */
export interface DemoAddresses {
  /** bookstore v1 and v2 servers: `ip` and `port`. */
  v1: { ip: string; port: number };
  v2: { ip: string; port: number };
  /** Client pods' addresses. */
  bookbuyer: string;
  bookthief: string;
}

/** The port clients dial, as in the examples. */
export const DEMO_SERVICE_PORT = 14001;

function pod(ns: string, name: string, labels: string, ip: string, port?: number): string {
  const ports = port ? `, ports: [{ name: grpc, containerPort: ${port} }]` : '';
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { ${labels} } }
spec: { serviceAccountName: ${ns}, containers: [{ name: app, image: weft/echo${ports} }] }
status: { podIP: ${ip}, phase: Running, conditions: [{ type: Ready, status: "True" }] }
`;
}

function service(name: string, selector: string): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: bookstore }
spec:
  selector: { ${selector} }
  ports: [{ name: grpc, port: ${DEMO_SERVICE_PORT}, targetPort: grpc, appProtocol: grpc }]
`;
}

/** Namespaces, identities, Services and Pods (`10-workloads.yaml`). */
export function demoWorkloads(a: DemoAddresses): string {
  return [
    ...['bookbuyer', 'bookthief', 'bookstore'].flatMap((ns) => [
      `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${ns}, labels: { weft.dev/mesh: enabled } }\n`,
      `apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: ${ns}, namespace: ${ns} }\n`,
    ]),
    service('bookstore', 'app: bookstore'),
    service('bookstore-v1', 'app: bookstore, version: v1'),
    service('bookstore-v2', 'app: bookstore, version: v2'),
    pod('bookstore', 'bookstore-v1', 'app: bookstore, version: v1', a.v1.ip, a.v1.port),
    pod('bookstore', 'bookstore-v2', 'app: bookstore, version: v2', a.v2.ip, a.v2.port),
    pod('bookbuyer', 'bookbuyer', 'app: bookbuyer', a.bookbuyer),
    pod('bookthief', 'bookthief', 'app: bookthief', a.bookthief),
  ].join('---\n');
}

/** The TrafficSplit the user edits (`20-split.yaml`). */
export function demoSplit(v1: number, v2: number): string {
  return `# Edit the weights and save: the demo's counts move within a second.
apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: { name: bookstore-split, namespace: bookstore }
spec:
  service: bookstore
  backends:
    - { service: bookstore-v1, weight: ${v1} }
    - { service: bookstore-v2, weight: ${v2} }
`;
}

/**
 * bookbuyer may buy books (the gRPC method matched by `pathRegex`); bookthief has no TrafficTarget
 * (`30-access.yaml`).
 */
export function demoAccess(pathRegex: string): string {
  return `# Deny by default: bookbuyer may call Get on bookstore; bookthief may call nothing.
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: bookstore-routes, namespace: bookstore }
spec:
  matches:
    - { name: buy-a-book, pathRegex: ${pathRegex}, methods: [POST] }
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: bookbuyer-to-bookstore, namespace: bookstore }
spec:
  destination: { kind: ServiceAccount, name: bookstore, namespace: bookstore }
  rules: [{ kind: HTTPRouteGroup, name: bookstore-routes, matches: [buy-a-book] }]
  sources: [{ kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer }]
`;
}

/** The access of the proxyless demo: the echo server's Get. */
export const DEMO_ACCESS = demoAccess('/weft\\.echo\\.Echo/Get');

/** Where the Envoy demo's pods and Services are, on its pod network. */
export interface EnvoyDemoAddresses {
  pods: Record<'bookstore-v1' | 'bookstore-v2' | 'bookbuyer' | 'bookthief', string>;
  services: Record<'bookstore' | 'bookstore-v1' | 'bookstore-v2', string>;
}

/**
 * Namespaces, identities, Services (with cluster IPs: Envoy sidecars match calls by the address
 * dialed) and Pods of `weft demo --flavor envoy`: each pod runs the pod app (`image`), bookstore's
 * serving plain gRPC on the Service port, the clients serving nothing.
 */
export function demoEnvoyWorkloads(a: EnvoyDemoAddresses, image: string): string {
  const pod = (ns: string, name: string, labels: string, args: string): string => `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { ${labels} } }
spec:
  serviceAccountName: ${ns}
  containers: [{ name: app, image: ${image}, stdin: true, args: [${args}]${args ? `, ports: [{ name: grpc, containerPort: ${DEMO_SERVICE_PORT} }]` : ''} }]
status: { podIP: ${a.pods[name as keyof EnvoyDemoAddresses['pods']]}, phase: Running, conditions: [{ type: Ready, status: "True" }] }
`;
  const svc = (name: keyof EnvoyDemoAddresses['services'], selector: string): string => `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: bookstore }
spec:
  clusterIP: ${a.services[name]}
  selector: { ${selector} }
  ports: [{ name: grpc, port: ${DEMO_SERVICE_PORT}, targetPort: grpc, appProtocol: grpc }]
`;
  const serve = `"--grpc", "${DEMO_SERVICE_PORT}"`;
  return [
    ...['bookbuyer', 'bookthief', 'bookstore'].flatMap((ns) => [
      `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${ns}, labels: { weft.dev/mesh: enabled } }\n`,
      `apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: ${ns}, namespace: ${ns} }\n`,
    ]),
    svc('bookstore', 'app: bookstore'),
    svc('bookstore-v1', 'app: bookstore, version: v1'),
    svc('bookstore-v2', 'app: bookstore, version: v2'),
    pod('bookstore', 'bookstore-v1', 'app: bookstore, version: v1', serve),
    pod('bookstore', 'bookstore-v2', 'app: bookstore, version: v2', serve),
    pod('bookbuyer', 'bookbuyer', 'app: bookbuyer', ''),
    pod('bookthief', 'bookthief', 'app: bookthief', ''),
  ].join('---\n');
}
