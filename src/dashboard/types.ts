/**
 * The shape of the dashboard's state, shared by the server (`state.ts`) and the page (`web/`),
 * which is why it imports nothing that needs Node.
 */
import type { Condition } from '../smi/model';

/** A node of the topology: a workload (`w:<ns>/<name>`) or a service (`s:<ns>/<name>`). */
export interface DashNode {
  readonly id: string;
  readonly kind: 'workload' | 'service';
  readonly namespace: string;
  readonly name: string;
  /** Workloads: the ServiceAccount; services: `''`. */
  readonly serviceAccount: string;
  /** Services: the workloads behind them (node ids). */
  readonly backends: readonly string[];
  /** Pods: attempts their sidecar's access policy refused in the window (callers unknown); else 0. */
  readonly denied: number;
}

/** An edge TrafficTargets allow: a source workload may reach a destination workload. */
export interface AllowedEdge {
  readonly from: string;
  readonly to: string;
  /** The TrafficTargets (`<ns>/<name>`) that allow it; `permissive` in permissive mode. */
  readonly by: readonly string[];
}

/** An edge with traffic in the window, from the client side's stats. */
export interface LiveEdge {
  readonly from: string;
  /** A workload node when the destination resolves to one pod, else the service node. */
  readonly to: string;
  /** Requests per second over the window. */
  readonly rps: number;
  /** Share of answers that were not 5xx, 0..1; null without calls. */
  readonly success: number | null;
  /** Milliseconds; null without latency samples. */
  readonly p99: number | null;
  /**
   * No TrafficTarget allows the source to reach the destination: these calls were attempts the
   * destination's sidecar refused (Envoy answers them 403, which the stats count as non-5xx).
   */
  readonly denied: boolean;
}

/** One backend of a split: configured and observed share. */
export interface SplitBackendView {
  readonly service: string;
  readonly weight: number;
  /** The weight's share of the split, percent. */
  readonly configuredPercent: number;
  /** Calls the backend got through the split in the window. */
  readonly calls: number;
  /** Share of those calls, percent; null when the split had no calls. */
  readonly observedPercent: number | null;
}

/** A TrafficSplit as the dashboard shows it. */
export interface SplitView {
  readonly namespace: string;
  readonly name: string;
  readonly rootService: string;
  readonly backends: readonly SplitBackendView[];
}

/** A connected proxy's sync state. */
export interface ProxyView {
  readonly id: string;
  readonly namespace: string;
  readonly flavor: 'envoy' | 'grpc';
  readonly group: string | null;
  readonly identity: string | null;
  /** Every type it subscribed to has ACKed the version last sent. */
  readonly synced: boolean;
  /** Per type: sent and ACKed versions, and the last NACK's message. */
  readonly types: readonly { type: string; sent: string | null; acked: string | null; nack: string | null }[];
}

/** An EnvoyPatch and what became of it. */
export interface PatchView {
  readonly namespace: string;
  readonly name: string;
  /** `Applied` (in at least one group's config), `Pending` (selects nothing yet, or is judged), `Failed`. */
  readonly status: 'Applied' | 'Pending' | 'Failed';
  /** Groups whose config carries it. */
  readonly groups: readonly string[];
  /** Its conditions' messages (a rollback after a NACK included). */
  readonly messages: readonly string[];
}

/** Everything the dashboard draws. */
export interface DashboardState {
  /** ISO time the state was assembled. */
  readonly at: string;
  readonly window: string;
  readonly permissive: boolean;
  readonly nodes: readonly DashNode[];
  readonly allowed: readonly AllowedEdge[];
  readonly live: readonly LiveEdge[];
  readonly splits: readonly SplitView[];
  readonly proxies: readonly ProxyView[];
  readonly conditions: readonly Condition[];
  readonly patches: readonly PatchView[];
}
