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

/** bookbuyer may buy books (Get); bookthief has no TrafficTarget (`30-access.yaml`). */
export const DEMO_ACCESS = `# Deny by default: bookbuyer may call Get on bookstore; bookthief may call nothing.
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: bookstore-routes, namespace: bookstore }
spec:
  matches:
    - { name: buy-a-book, pathRegex: /weft\\.echo\\.Echo/Get, methods: [POST] }
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: bookbuyer-to-bookstore, namespace: bookstore }
spec:
  destination: { kind: ServiceAccount, name: bookstore, namespace: bookstore }
  rules: [{ kind: HTTPRouteGroup, name: bookstore-routes, matches: [buy-a-book] }]
  sources: [{ kind: ServiceAccount, name: bookbuyer, namespace: bookbuyer }]
`;
