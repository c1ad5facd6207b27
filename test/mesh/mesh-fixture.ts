/**
 * A small mesh of real proxyless gRPC workloads for end-to-end tests: manifests whose Pods and
 * EndpointSlices point at echo servers started in the test, each on its own loopback address
 * (Linux routes all of 127.0.0.0/8 to the loopback interface), so every workload has its own IP.
 * grpc-js-xds servers bind their port on every interface, so each server also gets its own port;
 * Services reach them through the named target port `grpc`, resolved from each Pod's containers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where each workload of the fixture listens. */
export interface FixtureAddresses {
  v1: string;
  v2: string;
  buyer: string;
  thief: string;
  /** The service port clients dial. */
  port: number;
  /** Where the v1 and v2 servers listen. */
  v1Port: number;
  v2Port: number;
}

/**
 * Addresses in `127.<net>.0.x`, distinct per test file. The buyer is 127.0.0.1 because loopback
 * connections come from there: in plaintext mode RBAC can only tell callers apart by address.
 */
export function addresses(net: number, v1Port: number, v2Port: number, port = 14001): FixtureAddresses {
  return {
    v1: `127.${net}.0.11`,
    v2: `127.${net}.0.12`,
    buyer: '127.0.0.1',
    thief: `127.${net}.0.22`,
    port,
    v1Port,
    v2Port,
  };
}

/** The status a kubelet would report for a fixture pod (kubectl applies no status). */
export function podStatus(ip: string): Record<string, unknown> {
  return { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] };
}

function pod(ns: string, name: string, sa: string, labels: string, ip: string, port?: number): string {
  const ports = port ? `, ports: [{ name: grpc, containerPort: ${port} }]` : '';
  const containers = `, containers: [{ name: app, image: echo${ports} }]`;
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name}, namespace: ${ns}, labels: { ${labels} } }
spec: { serviceAccountName: ${sa}${containers} }
status: { podIP: ${ip}, phase: Running, conditions: [{ type: Ready, status: "True" }] }
`;
}

function service(ns: string, name: string, selector: string, port: number): string {
  return `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${ns} }
spec: { selector: { ${selector} }, ports: [{ name: grpc, port: ${port}, targetPort: grpc, appProtocol: grpc }] }
`;
}

/** The workloads and services of the fixture (no SMI policy). */
export function workloads(a: FixtureAddresses): string {
  return [
    'apiVersion: v1\nkind: Namespace\nmetadata: { name: shop, labels: { weft.dev/mesh: enabled } }\n',
    ...['buyer', 'thief', 'store'].map(
      (sa) => `apiVersion: v1\nkind: ServiceAccount\nmetadata: { name: ${sa}, namespace: shop }\n`,
    ),
    service('shop', 'store', 'app: store', a.port),
    service('shop', 'store-v1', 'app: store, version: v1', a.port),
    service('shop', 'store-v2', 'app: store, version: v2', a.port),
    pod('shop', 'store-v1', 'store', 'app: store, version: v1', a.v1, a.v1Port),
    pod('shop', 'store-v2', 'store', 'app: store, version: v2', a.v2, a.v2Port),
    pod('shop', 'buyer', 'buyer', 'app: buyer', a.buyer),
    pod('shop', 'thief', 'thief', 'app: thief', a.thief),
  ].join('---\n');
}

/**
 * Marks the fixture's Pods Running and Ready at their addresses, as a kubelet would (kubectl
 * applies no status); `kubectl` runs one kubectl command and fails the test on error.
 */
export async function markFixturePodsReady(
  kubectl: (args: string[]) => Promise<unknown>,
  a: FixtureAddresses,
): Promise<void> {
  const pods = [
    ['store-v1', a.v1],
    ['store-v2', a.v2],
    ['buyer', a.buyer],
    ['thief', a.thief],
  ] as const;
  for (const [pod, ip] of pods) {
    const patch = JSON.stringify({ status: podStatus(ip) });
    await kubectl(['patch', 'pod', pod, '-n', 'shop', '--subresource=status', '--type=merge', '-p', patch]);
  }
}

/** A TrafficSplit of `store` over v1 and v2. */
export function split(w1: number, w2: number): string {
  return `apiVersion: split.smi-spec.io/v1alpha4
kind: TrafficSplit
metadata: { name: store-split, namespace: shop }
spec:
  service: store
  backends: [{ service: store-v1, weight: ${w1} }, { service: store-v2, weight: ${w2} }]
`;
}

/** Lets `buyer` call `store` (every gRPC method, via a TCPRoute-only target). */
export const BUYER_MAY_CALL = `apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: { name: grpc, namespace: shop }
spec: { matches: { ports: [14001] } }
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: buyer-to-store, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: store, namespace: shop }
  rules: [{ kind: TCPRoute, name: grpc }]
  sources: [{ kind: ServiceAccount, name: buyer, namespace: shop }]
`;

/** A temporary config folder. */
export class ConfigDir {
  readonly path = mkdtempSync(join(tmpdir(), 'weft-mesh-'));
  /** Writes (or replaces) one file. */
  write(name: string, text: string): void {
    writeFileSync(join(this.path, name), text);
  }
  /** Deletes one file. */
  drop(name: string): void {
    rmSync(join(this.path, name), { force: true });
  }
  /** Removes the folder. */
  remove(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}
