/**
 * The dashboard's one picture of the mesh, assembled from what Weft already holds: the model
 * (workloads, services, TrafficTargets, splits), the proxy registry, the conditions, the
 * EnvoyPatches and the SMI TrafficMetrics the sidecars streamed. Pure apart from the clock it is
 * given: sources in, one JSON-ready {@link DashboardState} out, filtered to what the caller may
 * read.
 *
 * Live edges come from the TrafficMetrics API itself (`answer`), so the dashboard shows exactly
 * what `weft top` and `kubectl get --raw` show, never a second reading of the stats.
 */
import { answer, parseSecondsQuantity, type TrafficMetrics } from '../metrics/api';
import { type MetricsStore, parseWindow } from '../metrics/store';
import type { EnvoyPatch } from '../patch/select';
import type { Condition, MeshModel, WorkloadModel } from '../smi/model';
import { type ProxyStatus, proxyFlavor } from '../xds/proxy-state';
import type {
  AllowedEdge,
  DashboardState,
  DashNode,
  LiveEdge,
  PatchView,
  ProxyView,
  SplitView,
} from './types';

export type * from './types';

/**
 * The metrics window the dashboard reads by default: long enough that a burst of calls stays on the
 * picture while someone looks, short enough to be "now".
 */
export const DASHBOARD_WINDOW = '5m';

/** What {@link dashboardState} reads. */
export interface StateSources {
  readonly model: MeshModel | undefined;
  readonly conditions: readonly Condition[];
  readonly proxies: readonly ProxyStatus[];
  readonly patches: readonly EnvoyPatch[];
  /** Groups whose config carries a patch (`<ns>/<name>`). */
  readonly groupsPatchedBy: (patch: string) => readonly string[];
  readonly store: MetricsStore | undefined;
  readonly now: number;
  /** The metrics window, a duration as the TrafficMetrics API takes it (`30s`, `5m`); default {@link DASHBOARD_WINDOW}. */
  readonly window?: string;
  /** Refused attempts in the window per pod (`<ns>/<name>`), from the sidecars' RBAC stats. */
  readonly denied?: ReadonlyMap<string, number>;
  /** Whether the caller may read the namespace. */
  readonly visible: (namespace: string) => boolean;
}

const workloadId = (ns: string, name: string): string => `w:${ns}/${name}`;
const serviceId = (ns: string, name: string): string => `s:${ns}/${name}`;
const round1 = (n: number): number => Math.round(n * 10) / 10;
const round2 = (n: number): number => Math.round(n * 100) / 100;

function metricValue(t: TrafficMetrics, name: string): string | undefined {
  return t.metrics.find((m) => m.name === name)?.value;
}

function calls(t: TrafficMetrics): { ok: number; failed: number } {
  return {
    ok: Number(metricValue(t, 'success_count') ?? 0),
    failed: Number(metricValue(t, 'failure_count') ?? 0),
  };
}

/** The namespace of a proxy: `NAMESPACE` in its metadata, else the `<ns>/` of its node id. */
function proxyNamespace(p: ProxyStatus): string {
  const meta = p.node.metadata.NAMESPACE;
  if (typeof meta === 'string' && meta !== '') return meta;
  return p.node.id.includes('/') ? p.node.id.split('/', 1)[0]! : '';
}

/** Allowed edges: every source workload of a TrafficTarget to every workload running as its destination. */
function allowedEdges(model: MeshModel, workloads: readonly WorkloadModel[]): AllowedEdge[] {
  const byIdentity = new Map<string, WorkloadModel[]>();
  for (const w of workloads) byIdentity.set(w.identity, [...(byIdentity.get(w.identity) ?? []), w]);
  const edges = new Map<string, { from: string; to: string; by: Set<string> }>();
  const add = (from: WorkloadModel, to: WorkloadModel, by: string): void => {
    const f = workloadId(from.namespace, from.name);
    const t = workloadId(to.namespace, to.name);
    const key = `${f} ${t}`;
    const e = edges.get(key) ?? { from: f, to: t, by: new Set<string>() };
    e.by.add(by);
    edges.set(key, e);
  };
  if (model.settings.permissive) {
    for (const a of workloads) for (const b of workloads) if (a !== b) add(a, b, 'permissive');
  } else {
    for (const t of model.access) {
      if (t.rules.length === 0) continue;
      for (const dst of byIdentity.get(t.destination.identity) ?? [])
        for (const s of t.sources)
          for (const src of byIdentity.get(s.identity) ?? []) add(src, dst, `${t.namespace}/${t.name}`);
    }
  }
  return [...edges.values()]
    .map((e) => ({ from: e.from, to: e.to, by: [...e.by].sort() }))
    .sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
}

/** The kind the TrafficMetrics API names a workload by. */
const plural = (w: WorkloadModel): string => (w.kind === 'Pod' ? 'pods' : 'deployments');

/** Reads one path of the TrafficMetrics API; an empty list when it does not answer 200. */
function readMetrics(src: StateSources, model: MeshModel, path: string): TrafficMetrics[] {
  if (!src.store) return [];
  const a = answer(
    path,
    { window: src.window ?? DASHBOARD_WINDOW },
    { model, store: src.store, now: src.now, visible: src.visible },
  );
  if (a.status !== 200) return [];
  const body = a.body as { items?: TrafficMetrics[] };
  return body.items ?? [];
}

/** Assembles the dashboard's state; see the module comment. */
export function dashboardState(src: StateSources): DashboardState {
  const model = src.model;
  const workloads = (model?.workloads ?? []).filter((w) => src.visible(w.namespace));
  const services = (model?.services ?? []).filter((s) => src.visible(s.namespace));
  const nodes: DashNode[] = [
    ...workloads.map((w) => ({
      id: workloadId(w.namespace, w.name),
      kind: 'workload' as const,
      namespace: w.namespace,
      name: w.name,
      serviceAccount: w.serviceAccount,
      backends: [],
      denied: w.kind === 'Pod' ? (src.denied?.get(`${w.namespace}/${w.name}`) ?? 0) : 0,
    })),
    ...services.map((s) => ({
      id: serviceId(s.namespace, s.name),
      kind: 'service' as const,
      namespace: s.namespace,
      name: s.name,
      serviceAccount: '',
      backends: s.workloads
        .filter((w) => src.visible(w.namespace))
        .map((w) => workloadId(w.namespace, w.name))
        .sort(),
      denied: 0,
    })),
  ];
  const allowed = model ? allowedEdges(model, workloads) : [];
  const allowedKeys = new Set(allowed.map((e) => `${e.from} ${e.to}`));
  const nodeIds = new Set(nodes.map((n) => n.id));
  const backendsOf = new Map(nodes.map((n) => [n.id, n.backends]));

  const seconds = (parseWindow(src.window ?? DASHBOARD_WINDOW) ?? 300_000) / 1000;
  const live: LiveEdge[] = [];
  if (model)
    for (const w of workloads) {
      const from = workloadId(w.namespace, w.name);
      const path = `/v1alpha1/namespaces/${w.namespace}/${plural(w)}/${w.name}/edges`;
      for (const t of readMetrics(src, model, path)) {
        const r = t.edge.resource;
        if (t.edge.direction !== 'to' || !r?.namespace || !r.name) continue;
        const to = r.kind === 'Service' ? serviceId(r.namespace, r.name) : workloadId(r.namespace, r.name);
        if (!nodeIds.has(to)) continue;
        const { ok, failed } = calls(t);
        const n = ok + failed;
        const p99 = metricValue(t, 'p99_response_latency');
        // A call to a service is allowed when the source may reach some workload behind it.
        const targets = to.startsWith('s:') ? (backendsOf.get(to) ?? []) : [to];
        const permitted = targets.some((d) => d === from || allowedKeys.has(`${from} ${d}`));
        live.push({
          from,
          to,
          rps: round2(n / seconds),
          success: n === 0 ? null : ok / n,
          p99: p99 === undefined ? null : parseSecondsQuantity(p99),
          denied: n > 0 && !permitted,
        });
      }
    }

  const splits: SplitView[] = [];
  for (const s of model?.splits ?? []) {
    if (!src.visible(s.namespace)) continue;
    const total = s.backends.reduce((a, b) => a + b.weight, 0);
    const items = model
      ? readMetrics(src, model, `/v1alpha2/namespaces/${s.namespace}/trafficsplits/${s.name}/edges`)
      : [];
    const got = new Map<string, number>();
    for (const i of items)
      if (i.backend) {
        const c = calls(i);
        got.set(i.backend.name, (got.get(i.backend.name) ?? 0) + c.ok + c.failed);
      }
    const observed = [...got.values()].reduce((a, b) => a + b, 0);
    splits.push({
      namespace: s.namespace,
      name: s.name,
      rootService: s.rootService,
      backends: s.backends.map((b) => ({
        service: b.service,
        weight: b.weight,
        configuredPercent: total === 0 ? 0 : round1((100 * b.weight) / total),
        calls: got.get(b.service) ?? 0,
        observedPercent: observed === 0 ? null : round1((100 * (got.get(b.service) ?? 0)) / observed),
      })),
    });
  }

  const proxies: ProxyView[] = src.proxies
    .filter((p) => src.visible(proxyNamespace(p)))
    .map((p) => {
      const types = Object.entries(p.types)
        .map(([type, t]) => ({
          type,
          sent: t.sentVersion ?? null,
          acked: t.ackedVersion ?? null,
          nack: t.lastNack?.message ?? null,
        }))
        .sort((a, b) => a.type.localeCompare(b.type));
      return {
        id: p.node.id,
        namespace: proxyNamespace(p),
        flavor: proxyFlavor(p),
        group: p.group ?? null,
        identity: p.identity ?? null,
        synced: Object.values(p.types).every(
          (t) => !t.awaiting && !t.lastNack && t.sentVersion === t.ackedVersion,
        ),
        types,
      };
    })
    .sort((a, b) => a.id.localeCompare(b.id));

  const conditions = src.conditions.filter((c) => src.visible(c.object.split('/')[1] ?? ''));

  const patches: PatchView[] = src.patches
    .filter((p) => src.visible(p.metadata.namespace))
    .map((p) => {
      const key = `${p.metadata.namespace}/${p.metadata.name}`;
      const own = conditions.filter((c) => c.object === `EnvoyPatch/${key}`);
      const groups = [...src.groupsPatchedBy(key)].sort();
      // Rollbacks after a NACK are conditions too (`RolledBack`), so errors cover them.
      const failed = own.some((c) => c.severity === 'Error' && c.status === 'False');
      return {
        namespace: p.metadata.namespace,
        name: p.metadata.name,
        status: failed
          ? ('Failed' as const)
          : groups.length > 0
            ? ('Applied' as const)
            : ('Pending' as const),
        groups,
        messages: own.map((c) => c.message),
      };
    })
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));

  return {
    at: new Date(src.now).toISOString(),
    window: src.window ?? DASHBOARD_WINDOW,
    permissive: model?.settings.permissive ?? false,
    nodes,
    allowed,
    live: live.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to)),
    splits,
    proxies,
    conditions,
    patches,
  };
}
