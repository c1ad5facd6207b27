/** The services stage of a build: Services with their ports, endpoints and the workloads behind them. */

import { condition } from './conditions';
import { cmp, key, type LabelIndex, nsName, plural, selectFrom, subjectOf, uniqueRefs } from './helpers';
import type {
  AppProtocol,
  Condition,
  EndpointModel,
  EndpointPortModel,
  MeshSettings,
  ServiceModel,
  ServicePortModel,
  WorkloadRef,
} from './model';
import { type EndpointSlice, fieldPath, type Pod, type Service } from './normalize';
import { reuse, sameList } from './reuse';
import type { DraftIndex, PodIndex, WorkloadDraft } from './workloads';

/** The application protocol of a port; the rule is documented on {@link AppProtocol}. */
export function classifyPort(protocol: 'TCP' | 'UDP', name: string, appProtocol: string | null): AppProtocol {
  if (protocol === 'UDP') return 'udp';
  if (appProtocol !== null) {
    const value = appProtocol.toLowerCase();
    if (value === 'http' || value === 'http2' || value === 'h2c' || value === 'kubernetes.io/h2c')
      return 'http';
    if (value === 'grpc') return 'grpc';
    return 'tcp';
  }
  const prefix = name.toLowerCase().split('-')[0];
  if (prefix === 'http' || prefix === 'http2' || prefix === 'h2c') return 'http';
  if (prefix === 'grpc') return 'grpc';
  return 'tcp';
}

/** Endpoint being assembled: ports keyed by `name/protocol`. */
interface EndpointDraft {
  ready: boolean;
  readonly ports: Map<string, EndpointPortModel>;
  workload: WorkloadRef | null;
}

function finishEndpoints(drafts: ReadonlyMap<string, EndpointDraft>): EndpointModel[] {
  return [...drafts.entries()]
    .sort(([a], [b]) => cmp(a, b))
    .map(([ip, d]) => ({
      ip,
      ready: d.ready,
      ports: [...d.ports.values()].sort((a, b) => cmp(a.name, b.name) || cmp(a.port, b.port)),
      workload: d.workload,
    }));
}

interface ServiceContext {
  readonly settings: MeshSettings;
  /** Workloads by namespace, since selectors only select within one. */
  readonly draftsByNamespace: ReadonlyMap<string, LabelIndex<WorkloadDraft>>;
  readonly podsByNamespace: ReadonlyMap<string, LabelIndex<Pod>>;
  readonly podsByKey: ReadonlyMap<string, Pod>;
  readonly podByIp: ReadonlyMap<string, Pod>;
  readonly slicesByService: ReadonlyMap<string, EndpointSlice[]>;
  readonly conditions: Condition[];
}

function servicePorts(s: Service, conditions: Condition[]): { model: ServicePortModel; index: number }[] {
  const out: { model: ServicePortModel; index: number }[] = [];
  for (const [index, p] of s.ports.entries()) {
    if (p.protocol === 'SCTP') {
      conditions.push(
        condition(
          subjectOf(s),
          'UnsupportedProtocol',
          `spec.ports[${index}] (port ${p.port}) uses SCTP, which Weft does not proxy, so the port is not served; use TCP or UDP`,
          `spec.ports[${index}].protocol`,
        ),
      );
      continue;
    }
    out.push({
      index,
      model: {
        name: p.name,
        port: p.port,
        targetPort: p.targetPort,
        protocol: p.protocol,
        appProtocolRaw: p.appProtocol,
        appProtocol: classifyPort(p.protocol, p.name, p.appProtocol),
      },
    });
  }
  return out;
}

function endpointsFromSlices(
  s: Service,
  slices: readonly EndpointSlice[],
  ports: readonly ServicePortModel[],
  ctx: ServiceContext,
): Map<string, EndpointDraft> {
  const drafts = new Map<string, EndpointDraft>();
  const served = new Set(ports.map((p) => `${p.name}/${p.protocol}`));
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    const slicePorts = slice.ports.filter(
      (p): p is { name: string; port: number; protocol: 'TCP' | 'UDP' } =>
        p.port !== null && served.has(`${p.name}/${p.protocol}`),
    );
    for (const e of slice.endpoints) {
      for (const ip of e.addresses) {
        let workload: WorkloadRef | null = null;
        const podNs = e.pod?.namespace ?? s.meta.namespace;
        const named = e.pod ? ctx.podsByKey.get(key(podNs, e.pod.name)) : undefined;
        const byIp = ctx.podByIp.get(key(s.meta.namespace, ip));
        const pod = named ?? byIp;
        if (pod) workload = { kind: 'Pod', namespace: pod.meta.namespace, name: pod.meta.name };
        let d = drafts.get(ip);
        if (!d) {
          d = { ready: false, ports: new Map(), workload: null };
          drafts.set(ip, d);
        }
        d.ready ||= e.ready;
        d.workload ??= workload;
        for (const p of slicePorts)
          d.ports.set(`${p.name}/${p.protocol}`, { name: p.name, port: p.port, protocol: p.protocol });
      }
    }
  }
  return drafts;
}

function endpointsFromPods(
  s: Service,
  ports: readonly { model: ServicePortModel; index: number }[],
  ctx: ServiceContext,
): Map<string, EndpointDraft> {
  const drafts = new Map<string, EndpointDraft>();
  const unresolved = new Map<number, string[]>();
  const selector = s.selector;
  if (selector === null) return drafts;
  for (const pod of selectFrom(ctx.podsByNamespace.get(s.meta.namespace), selector)) {
    // Finished pods keep their IP in status but no longer serve it.
    if (pod.phase === 'Succeeded' || pod.phase === 'Failed' || pod.ips.length === 0) continue;
    const epPorts = new Map<string, EndpointPortModel>();
    for (const { model: p, index } of ports) {
      let target: number | null = null;
      if (typeof p.targetPort === 'number') target = p.targetPort;
      else {
        const cp = pod.containerPorts.find((c) => c.name === p.targetPort && c.protocol === p.protocol);
        if (cp) target = cp.port;
      }
      if (target === null) {
        const list = unresolved.get(index) ?? [];
        list.push(pod.meta.name);
        unresolved.set(index, list);
        continue;
      }
      epPorts.set(`${p.name}/${p.protocol}`, { name: p.name, port: target, protocol: p.protocol });
    }
    for (const ip of pod.ips) {
      drafts.set(ip, {
        ready: pod.ready,
        ports: new Map(epPorts),
        workload: { kind: 'Pod', namespace: pod.meta.namespace, name: pod.meta.name },
      });
    }
  }
  for (const [index, pods] of [...unresolved.entries()].sort(([a], [b]) => a - b)) {
    const p = ports.find((x) => x.index === index)!.model;
    const first = pods[0]!;
    const more = pods.length > 1 ? ` (and ${plural(pods.length - 1, 'more Pod')})` : '';
    ctx.conditions.push(
      condition(
        subjectOf(s),
        'UnresolvedTargetPort',
        `spec.ports[${index}].targetPort ${JSON.stringify(p.targetPort)} names no ${p.protocol} container port of Pod ${s.meta.namespace}/${first}${more}, so port ${p.port} is not served there; add a container port named ${JSON.stringify(p.targetPort)} or use a port number`,
        `spec.ports[${index}].targetPort`,
      ),
    );
  }
  return drafts;
}

function buildService(s: Service, ctx: ServiceContext): ServiceModel {
  const ports = servicePorts(s, ctx.conditions);
  const portModels = ports.map((p) => p.model).sort((a, b) => a.port - b.port || cmp(a.protocol, b.protocol));
  const slices = ctx.slicesByService.get(key(s.meta.namespace, s.meta.name)) ?? [];
  const endpointSource = slices.length > 0 ? 'EndpointSlice' : s.selector !== null ? 'Pods' : 'None';
  const drafts =
    endpointSource === 'EndpointSlice'
      ? endpointsFromSlices(s, slices, portModels, ctx)
      : endpointSource === 'Pods'
        ? endpointsFromPods(s, ports, ctx)
        : new Map<string, EndpointDraft>();
  const endpoints = finishEndpoints(drafts);
  const workloads: WorkloadRef[] = [];
  if (s.selector !== null) {
    for (const w of selectFrom(ctx.draftsByNamespace.get(s.meta.namespace), s.selector)) {
      workloads.push(w.ref);
    }
  }
  for (const e of endpoints) if (e.workload) workloads.push(e.workload);
  const headless = s.clusterIP === 'None';
  return {
    namespace: s.meta.namespace,
    name: s.meta.name,
    hostname: `${s.meta.name}.${s.meta.namespace}.svc.${ctx.settings.clusterDomain}`,
    type: s.type,
    clusterIP: headless ? null : s.clusterIP,
    headless,
    selector: s.selector,
    ports: portModels,
    endpointSource,
    endpoints,
    workloads: uniqueRefs(workloads),
  };
}

/** Reports slices that name no Service, or one that is not given, or that carry FQDNs. */
function checkSlices(
  slices: readonly EndpointSlice[],
  serviceKeys: ReadonlySet<string>,
  conditions: Condition[],
): void {
  const labelField = fieldPath(['metadata', 'labels', 'kubernetes.io/service-name']);
  for (const slice of slices) {
    if (slice.serviceName === null) {
      conditions.push(
        condition(
          subjectOf(slice),
          'EndpointSliceMissingServiceName',
          `has no kubernetes.io/service-name label, so it belongs to no Service and is ignored; add the label naming its Service`,
          labelField,
        ),
      );
    } else if (!serviceKeys.has(key(slice.meta.namespace, slice.serviceName))) {
      conditions.push(
        condition(
          subjectOf(slice),
          'EndpointSliceServiceNotFound',
          `label kubernetes.io/service-name names ${JSON.stringify(slice.serviceName)}, which is not a Service in namespace ${slice.meta.namespace}, so the slice is ignored; create the Service or fix the label`,
          labelField,
        ),
      );
    } else if (slice.addressType === 'FQDN') {
      conditions.push(
        condition(
          subjectOf(slice),
          'UnsupportedAddressType',
          `addressType FQDN is not supported, so its endpoints are not served; use IPv4 or IPv6 addresses`,
          'addressType',
        ),
      );
    }
  }
}

/** A service as built, with what it was built from besides settings, pods and workloads. */
interface BuiltService {
  readonly slices: readonly EndpointSlice[];
  readonly model: ServiceModel;
  readonly conditions: readonly Condition[];
}

/** The services stage: the models, and each one as built, for the next build to reuse. */
export interface Services {
  readonly list: readonly ServiceModel[];
  readonly built: ReadonlyMap<Service, BuiltService>;
  /** What every service was built against; `built` is reusable only while these are the same. */
  readonly settings: MeshSettings;
  readonly pods: PodIndex;
  readonly drafts: DraftIndex;
}

/**
 * Builds every service. A service whose input object and slices are those of `prev`, built against
 * the same settings, pods and workloads, is `prev`'s, conditions included: an endpoint change
 * rebuilds one service, not all of them.
 */
export function buildServices(
  services: readonly Service[],
  slices: readonly EndpointSlice[],
  settings: MeshSettings,
  pods: PodIndex,
  drafts: DraftIndex,
  conditions: Condition[],
  prev: Services | undefined,
): Services {
  const serviceKeys = new Set(services.map((s) => key(s.meta.namespace, s.meta.name)));
  const slicesByService = new Map<string, EndpointSlice[]>();
  for (const slice of slices) {
    if (slice.serviceName === null) continue;
    const k = key(slice.meta.namespace, slice.serviceName);
    if (!serviceKeys.has(k)) continue;
    const list = slicesByService.get(k) ?? [];
    list.push(slice);
    slicesByService.set(k, list);
  }
  checkSlices(slices, serviceKeys, conditions);
  const reusable =
    prev && prev.settings === settings && prev.pods === pods && prev.drafts === drafts
      ? prev.built
      : undefined;
  const ctx: ServiceContext = {
    settings,
    draftsByNamespace: drafts.byNamespace,
    podsByNamespace: pods.byNamespace,
    podsByKey: pods.byKey,
    podByIp: pods.byIp,
    slicesByService,
    conditions,
  };
  const built = new Map<Service, BuiltService>();
  const list = services.map((s) => {
    const own = slicesByService.get(key(s.meta.namespace, s.meta.name)) ?? [];
    let b = reusable?.get(s);
    if (!b || !sameList(b.slices, own)) {
      const reported: Condition[] = [];
      b = { slices: own, model: buildService(s, { ...ctx, conditions: reported }), conditions: reported };
    }
    built.set(s, b);
    for (const c of b.conditions) conditions.push(c);
    return b.model;
  });
  return { list: reuse(list, prev?.list, nsName), built, settings, pods, drafts };
}
