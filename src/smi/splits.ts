/** The splits stage of a build: TrafficSplits resolved against Services and route groups, cycles reported. */

import { condition } from './conditions';
import { cmp, compareAge, createOrFix, key, notFound, portList, subjectOf } from './helpers';
import type {
  Condition,
  HttpMatch,
  HttpRouteGroupModel,
  MeshSettings,
  ServiceModel,
  SplitBackendModel,
  SplitModel,
} from './model';
import type { Split } from './normalize';
import { fitWeights, MAX_TOTAL_WEIGHT, RESCALED_TOTAL } from './quantity';

type ServiceName = { ok: true; name: string } | { ok: false; namespace: string | null };

/**
 * Reads a split's service reference. SMI calls `spec.service` an FQDN, so besides a short name
 * `<name>.<ns>`, `<name>.<ns>.svc` and `<name>.<ns>.svc.<clusterDomain>` are accepted; the namespace
 * must be the split's own, since a split routes only within its namespace.
 */
function serviceName(text: string, namespace: string, clusterDomain: string): ServiceName {
  const parts = text.split('.');
  if (parts.length === 1) return { ok: true, name: text };
  const [name, ns, ...rest] = parts as [string, string, ...string[]];
  const suffix = rest.join('.');
  if (suffix !== '' && suffix !== 'svc' && suffix !== `svc.${clusterDomain}`)
    return { ok: false, namespace: null };
  return ns === namespace ? { ok: true, name } : { ok: false, namespace: ns };
}

/** What resolving splits needs from other stages; conditions are reported into `conditions`. */
export interface SplitContext {
  readonly settings: MeshSettings;
  readonly rejected: ReadonlySet<string>;
  readonly services: ReadonlyMap<string, ServiceModel>;
  readonly groups: ReadonlyMap<string, HttpRouteGroupModel>;
  readonly conditions: Condition[];
}

function crossNamespace(split: Split, field: string, text: string, other: string): Condition {
  return condition(
    subjectOf(split),
    'CrossNamespaceService',
    `${field} ${JSON.stringify(text)} names namespace ${other}, but a TrafficSplit only routes to Services in its own namespace (${split.meta.namespace}); move the TrafficSplit to namespace ${other} or name a Service in ${split.meta.namespace}`,
    field,
  );
}

/** Resolves a split's root service; null (with a condition) when it does not resolve. */
function splitRoot(split: Split, ctx: SplitContext): ServiceModel | null {
  const ns = split.meta.namespace;
  const ref = serviceName(split.rootService, ns, ctx.settings.clusterDomain);
  if (!ref.ok && ref.namespace !== null) {
    ctx.conditions.push(crossNamespace(split, 'spec.service', split.rootService, ref.namespace));
    return null;
  }
  const root = ref.ok ? ctx.services.get(key(ns, ref.name)) : undefined;
  if (!root) {
    ctx.conditions.push(
      condition(
        subjectOf(split),
        'RootServiceNotFound',
        `spec.service ${JSON.stringify(split.rootService)} ${notFound(ctx.rejected, 'Service', ns, ref.ok ? ref.name : split.rootService)}, so the split is not served; ${createOrFix(ctx.rejected, 'Service', ns, ref.ok ? ref.name : split.rootService)}`,
        'spec.service',
      ),
    );
    return null;
  }
  return root;
}

function buildSplit(split: Split, root: ServiceModel, ctx: SplitContext): SplitModel | null {
  const ns = split.meta.namespace;
  const subject = subjectOf(split);
  const rootLabel = `Service ${ns}/${root.name}`;
  // Merged backends by service name: weight sum and where each was first listed.
  const merged = new Map<string, { weight: bigint; index: number; ports: number[] }>();
  for (const [i, b] of split.backends.entries()) {
    const field = `spec.backends[${i}].service`;
    const ref = serviceName(b.service, ns, ctx.settings.clusterDomain);
    if (!ref.ok && ref.namespace !== null) {
      ctx.conditions.push(crossNamespace(split, field, b.service, ref.namespace));
      continue;
    }
    const svc = ref.ok ? ctx.services.get(key(ns, ref.name)) : undefined;
    if (!svc) {
      ctx.conditions.push(
        condition(
          subject,
          'BackendNotFound',
          `${field} ${JSON.stringify(b.service)} ${notFound(ctx.rejected, 'Service', ns, ref.ok ? ref.name : b.service)}, so it gets no traffic; ${createOrFix(ctx.rejected, 'Service', ns, ref.ok ? ref.name : b.service)}`,
          field,
        ),
      );
      continue;
    }
    const earlier = merged.get(svc.name);
    if (earlier) {
      const total = earlier.weight + BigInt(b.weight);
      ctx.conditions.push(
        condition(
          subject,
          'DuplicateBackend',
          `${field} ${JSON.stringify(b.service)} repeats spec.backends[${earlier.index}], so their weights are added (${earlier.weight} + ${b.weight} = ${total}); list each Service once`,
          field,
        ),
      );
      earlier.weight = total;
      continue;
    }
    if (svc.name === root.name) {
      // SMI rules out self-referential splits because the root usually selects every version;
      // Weft still serves it (the root's share goes to the root's own endpoints) but says so.
      ctx.conditions.push(
        condition(
          subject,
          'SelfReferentialBackend',
          `${field} ${JSON.stringify(b.service)} is the root service itself, so its share goes to every endpoint of ${rootLabel}, whichever version; list a Service that selects only the version meant`,
          field,
        ),
      );
    }
    // SMI: a backend serves a root port only when it has a port with the same number.
    const ports: number[] = [];
    const missing: number[] = [];
    for (const rp of root.ports) {
      if (svc.ports.some((bp) => bp.port === rp.port && bp.protocol === rp.protocol)) ports.push(rp.port);
      else missing.push(rp.port);
    }
    if (ports.length === 0) {
      ctx.conditions.push(
        condition(
          subject,
          'BackendPortMismatch',
          `${field} ${JSON.stringify(b.service)} has none of the ports of root ${rootLabel} (${portList(missing) || 'none'}), so it gets no traffic; give Service ${ns}/${svc.name} the root's port numbers`,
          field,
          'Error',
        ),
      );
      continue;
    }
    if (missing.length > 0) {
      ctx.conditions.push(
        condition(
          subject,
          'BackendPortMismatch',
          `${field} ${JSON.stringify(b.service)} lacks port ${portList(missing)} of root ${rootLabel}, so it gets no traffic on ${missing.length === 1 ? 'that port' : 'those ports'}; add ${missing.length === 1 ? 'the port' : 'the ports'} to Service ${ns}/${svc.name}`,
          field,
        ),
      );
    }
    merged.set(svc.name, { weight: BigInt(b.weight), index: i, ports });
  }
  if (merged.size === 0) {
    ctx.conditions.push(
      condition(
        subject,
        'NoBackends',
        `spec.backends leaves no usable backend, so the split is not served and traffic to ${rootLabel} goes to its own endpoints; list at least one Service with the root's ports`,
        'spec.backends',
      ),
    );
    return null;
  }
  const names = [...merged.keys()].sort();
  const fitted = fitWeights(names.map((n) => merged.get(n)!.weight));
  if (fitted.rescaled || split.weightsRescaled) {
    ctx.conditions.push(
      condition(
        subject,
        'WeightsRescaled',
        `the weights in spec.backends add up to more than ${MAX_TOTAL_WEIGHT}, so they were scaled to a total of about ${RESCALED_TOTAL} keeping their ratios; use smaller weights`,
        'spec.backends',
      ),
    );
  }
  const backends: SplitBackendModel[] = names.map((n, i) => ({
    service: n,
    weight: fitted.weights[i]!,
    ports: merged.get(n)!.ports,
  }));
  if (backends.every((b) => b.weight === 0)) {
    ctx.conditions.push(
      condition(
        subject,
        'AllWeightsZero',
        `every backend in spec.backends has weight 0, so the calls this split covers for ${rootLabel} reach no backend and fail; give at least one backend a positive weight`,
        'spec.backends',
      ),
    );
  }
  let matches: HttpMatch[] | null = null;
  if (split.matches !== null) {
    const seen = new Set<string>();
    matches = [];
    for (const [i, ref] of split.matches.entries()) {
      const group = ctx.groups.get(key(ns, ref.name));
      if (!group) {
        ctx.conditions.push(
          condition(
            subject,
            'RouteGroupNotFound',
            `spec.matches[${i}].name ${JSON.stringify(ref.name)} ${notFound(ctx.rejected, 'HTTPRouteGroup', ns, ref.name)}, so the requests it would match are not split; ${createOrFix(ctx.rejected, 'HTTPRouteGroup', ns, ref.name)}`,
            `spec.matches[${i}].name`,
          ),
        );
        continue;
      }
      if (seen.has(group.name)) continue;
      seen.add(group.name);
      matches.push(...group.matches);
    }
    matches.sort((a, b) => cmp(a.routeGroup, b.routeGroup) || cmp(a.name, b.name));
  }
  return { namespace: ns, name: split.meta.name, rootService: root.name, backends, matches };
}

/**
 * Builds every served split: one per root service (the oldest wins, the others get
 * `SplitConflict`), sorted by namespace and root, with cycles between splits reported.
 */
export function buildSplits(splits: readonly Split[], ctx: SplitContext): SplitModel[] {
  const byRoot = new Map<string, { split: Split; root: ServiceModel }[]>();
  for (const split of splits) {
    const root = splitRoot(split, ctx);
    if (!root) continue;
    const k = key(root.namespace, root.name);
    const list = byRoot.get(k) ?? [];
    list.push({ split, root });
    byRoot.set(k, list);
  }
  const out: SplitModel[] = [];
  const sources = new Map<SplitModel, Split>();
  for (const list of byRoot.values()) {
    list.sort((a, b) => compareAge(a.split, b.split));
    const winner = list[0]!;
    for (const { split } of list.slice(1)) {
      ctx.conditions.push(
        condition(
          subjectOf(split),
          'SplitConflict',
          `spec.service ${JSON.stringify(split.rootService)} is already split by TrafficSplit ${winner.split.meta.namespace}/${winner.split.meta.name}, which is older (or as old and first by name); only one TrafficSplit per root service is served; delete one of them or merge their backends`,
          'spec.service',
        ),
      );
    }
    const model = buildSplit(winner.split, winner.root, ctx);
    if (model) {
      out.push(model);
      sources.set(model, winner.split);
    }
  }
  out.sort((a, b) => cmp(a.namespace, b.namespace) || cmp(a.rootService, b.rootService));
  reportSplitCycles(out, sources, ctx.conditions);
  return out;
}

/**
 * Splits do not chain: a call to a split's root goes straight to its backends' endpoints, never
 * through another split whose root is that backend. A cycle (b splits to c, c splits to b) is
 * therefore served as written, which swaps traffic rather than dividing it, and is almost surely a
 * mistake; each split on the cycle gets a `SplitCycle` warning naming the whole loop. Linear in
 * the number of splits and backends (Tarjan's strongly connected components).
 */
function reportSplitCycles(
  splits: readonly SplitModel[],
  sources: ReadonlyMap<SplitModel, Split>,
  conditions: Condition[],
): void {
  const byRoot = new Map<string, SplitModel>();
  for (const sp of splits) byRoot.set(key(sp.namespace, sp.rootService), sp);
  const next = (sp: SplitModel): SplitModel[] => {
    const out: SplitModel[] = [];
    for (const b of sp.backends) {
      if (b.service === sp.rootService) continue;
      const to = byRoot.get(key(sp.namespace, b.service));
      if (to) out.push(to);
    }
    return out;
  };
  // Tarjan, iteratively: a hostile input may chain thousands of splits.
  const index = new Map<SplitModel, number>();
  const low = new Map<SplitModel, number>();
  const onStack = new Set<SplitModel>();
  const stack: SplitModel[] = [];
  const component = new Map<SplitModel, number>();
  let counter = 0;
  let components = 0;
  for (const start of splits) {
    if (index.has(start)) continue;
    const work: { node: SplitModel; edges: SplitModel[]; i: number }[] = [];
    const enter = (n: SplitModel): void => {
      index.set(n, counter);
      low.set(n, counter);
      counter++;
      stack.push(n);
      onStack.add(n);
      work.push({ node: n, edges: next(n), i: 0 });
    };
    enter(start);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      if (top.i < top.edges.length) {
        const to = top.edges[top.i++]!;
        if (!index.has(to)) enter(to);
        else if (onStack.has(to)) low.set(top.node, Math.min(low.get(top.node)!, index.get(to)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(top.node)!));
      if (low.get(top.node) === index.get(top.node)) {
        for (;;) {
          const n = stack.pop()!;
          onStack.delete(n);
          component.set(n, components);
          if (n === top.node) break;
        }
        components++;
      }
    }
  }
  const sizes = new Map<number, number>();
  for (const c of component.values()) sizes.set(c, (sizes.get(c) ?? 0) + 1);
  for (const sp of splits) {
    const c = component.get(sp)!;
    if ((sizes.get(c) ?? 0) < 2) continue;
    const split = sources.get(sp)!;
    // The loop through this split: its first backend on the cycle, then back to its root.
    const path = cyclePath(sp, (n) => next(n).filter((x) => component.get(x) === c));
    const first = path[1]!;
    const at = split.backends.findIndex((b) => b.service === first.rootService);
    const loop = path.map((x) => x.rootService).join(' → ');
    conditions.push(
      condition(
        subjectOf(split),
        'SplitCycle',
        `spec.backends[${at}].service ${JSON.stringify(first.rootService)} is itself the root of TrafficSplit ${first.namespace}/${first.name}, and the splits loop back here (${loop}); splits do not chain, so calls to ${sp.rootService} go straight to the endpoints of its backends and the loop swaps traffic between these services; split each root only to Services that select one version`,
        `spec.backends[${at}].service`,
      ),
    );
  }
}

/** Shortest path from `from` back to itself along `edges` (breadth first), endpoints included. */
function cyclePath(from: SplitModel, edges: (n: SplitModel) => SplitModel[]): SplitModel[] {
  const parent = new Map<SplitModel, SplitModel>();
  const queue: SplitModel[] = [from];
  for (let i = 0; i < queue.length; i++) {
    const n = queue[i]!;
    for (const to of edges(n)) {
      if (to === from) {
        const path = [from];
        for (let x: SplitModel | undefined = n; x !== undefined && x !== from; x = parent.get(x))
          path.splice(1, 0, x);
        path.push(from);
        return path;
      }
      if (!parent.has(to)) {
        parent.set(to, n);
        queue.push(to);
      }
    }
  }
  return [from, from];
}
