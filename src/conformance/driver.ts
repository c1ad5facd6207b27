/**
 * What the conformance runner needs from the world it tests. The runner only judges; a driver
 * owns the cluster, the control plane and the workloads. The local driver runs all three in this
 * process (a real kube-apiserver, `weft serve --kubeconfig`, proxyless gRPC echo workloads); a
 * cluster driver (`cluster-driver.ts`) deploys the workloads into the current kubectl context,
 * where Weft is installed, and drives them from outside.
 */
import type { KubeManifest, Workloads } from './schema';

/**
 * The data plane a driver runs the workloads on: `grpc`, proxyless gRPC workloads (grpc-js-xds
 * makes every decision); `envoy`, Envoy sidecars as Weft's injector makes them, in front of apps
 * that know nothing of the mesh.
 */
export type Flavor = 'grpc' | 'envoy';
/** Every {@link Flavor}, in the order a run of both takes them. */
export const FLAVORS: readonly Flavor[] = ['grpc', 'envoy'];

/** One call's outcome: the backend that answered, or the gRPC status code name it failed with. */
export type CallOutcome = { ok: true; backend: string } | { ok: false; code: string; message: string };

/** A call to make. */
export interface CallSpec {
  /** Client workload name (from the workloads file). */
  from: string;
  /** Service name. */
  service: string;
  /** Service port. */
  port: number;
  method: string;
  headers: Record<string, string>;
  /**
   * The client channel to use: calls with the same channel share one xDS client (and its cache);
   * a new name opens a new one, as a newly started caller would.
   */
  channel: string;
  /** Deadline of each call in ms (default: the driver's). */
  deadlineMs?: number;
}

/** One xDS resource a proxy was sent, as CSDS reports it. */
export interface ProxyResource {
  typeUrl: string;
  name: string;
  version: string;
  /** ACKED, NACKED, REQUESTED, ... */
  clientStatus: string;
  /** The proxy's NACK text, when it rejected this resource. */
  error?: string;
  /** The resource in canonical proto3 JSON (Envoy's config-dump form). */
  config?: unknown;
}

/** What one proxy had, by node id. */
export type ProxyConfigs = Record<string, ProxyResource[]>;

/** A condition as Weft reports it (subset of its fields). */
export interface ReportedCondition {
  object: string;
  type: string;
  status: string;
  severity: string;
  reason: string;
  message: string;
}

/** The {@link ReportedCondition} fields of a condition (Weft's own, or one read from its admin API). */
export function reportedCondition(c: ReportedCondition): ReportedCondition {
  return {
    object: c.object,
    type: c.type,
    status: c.status,
    severity: c.severity,
    reason: c.reason,
    message: c.message,
  };
}

/** The world a conformance run acts on. */
export interface Driver {
  /** A short name for reports (`local`, `cluster`). */
  readonly name: string;
  /** The data plane its workloads run on (default `grpc`). */
  readonly flavor?: Flavor;
  /** Brings up the cluster, Weft and the workloads; resolves when calls can be made. */
  start(workloads: Workloads): Promise<void>;
  /** Applies objects (server-side, as kubectl would). */
  apply(objects: readonly KubeManifest[]): Promise<void>;
  /** Deletes objects; objects already gone are not an error. */
  delete(objects: readonly KubeManifest[]): Promise<void>;
  /** Makes `n` calls (concurrently, a few at a time) and resolves every outcome. */
  call(spec: CallSpec, n: number): Promise<CallOutcome[]>;
  /** Closes a channel opened by {@link Driver.call}. */
  closeChannel(channel: string): void;
  /** The config each of these proxies (node ids `<namespace>/<pod>`) had, from CSDS. */
  proxyConfig(nodeIds: readonly string[]): Promise<ProxyConfigs>;
  /** Weft's current conditions. */
  conditions(): Promise<ReportedCondition[]>;
  /** Tears everything down. */
  stop(): Promise<void>;
}
