/**
 * `buildModel`: from raw Kubernetes objects to a resolved, sorted {@link MeshModel} plus
 * conditions.
 *
 * Pure: no I/O, no clock, no randomness, inputs never mutated, and the result depends only on the
 * set of inputs, not their order. Best effort: a bad object yields a condition and is left out;
 * everything else still builds.
 */

import { buildAccess, type IdentityPorts, identityPorts } from './access';
import { type Bindings, buildBindings } from './bindings';
import { sortConditions } from './conditions';
import { cmp, labelIndexes, nsName } from './helpers';
import type {
  AccessModel,
  BuildResult,
  Condition,
  MeshModel,
  MeshSettings,
  NamespaceModel,
  ObjectLabels,
  ServiceRef,
  SplitModel,
  WorkloadModel,
} from './model';
import type { ObjectMeta } from './normalize';
import { byKind, type Inputs, type Members, readObjects } from './read';
import { kept, reuse, type Stage, sameData, stage } from './reuse';
import { buildHttpRouteGroup, buildL4Route, type L4Routes, type RouteGroups } from './routes';
import { buildServices, type Services } from './services';
import { resolveSettings } from './settings';
import { buildSplits } from './splits';
import {
  backsOf,
  buildWorkloads,
  type DraftIndex,
  type PodIndex,
  podIndex,
  workloadDrafts,
} from './workloads';

/** Everything a build keeps for the next one. */
interface BuildState {
  readonly inputs: Inputs;
  readonly members: Members;
  readonly settings: Stage<MeshSettings>;
  readonly pods: Stage<PodIndex>;
  readonly drafts: Stage<DraftIndex>;
  readonly services: Stage<Services>;
  readonly backs: Stage<ReadonlyMap<string, readonly ServiceRef[]>>;
  readonly workloads: Stage<readonly WorkloadModel[]>;
  readonly ports: Stage<IdentityPorts>;
  readonly routes: Stage<RouteGroups>;
  readonly l4: Stage<L4Routes>;
  readonly splits: Stage<readonly SplitModel[]>;
  readonly bindings: Stage<Bindings>;
  readonly access: Stage<readonly AccessModel[]>;
  readonly namespaces: Stage<readonly NamespaceModel[]>;
  readonly objectLabels: Stage<ObjectLabels>;
  readonly model: MeshModel;
}

/** One build, reusing whatever of `prev` its inputs did not change. */
function build(
  objects: readonly unknown[],
  prev: BuildState | undefined,
): { state: BuildState; result: BuildResult } {
  const readConditions: Condition[] = [];
  // Objects that were rejected, so that references to them say so instead of "not found".
  const rejected = new Set<string>();
  const { inputs, members } = byKind(readObjects(objects, readConditions, rejected), prev);
  // References to rejected objects are reported differently, so stages that resolve references
  // depend on the set; it is nearly always small, and its sorted text is a value `===` compares.
  const rejectedKey = [...rejected].sort().join('\n');

  const settings = stage(prev?.settings, [inputs.meshConfigs], (c) => {
    const fresh = resolveSettings(inputs.meshConfigs, c);
    return prev && sameData(prev.settings.value, fresh) ? prev.settings.value : fresh;
  });
  const pods = stage(prev?.pods, [inputs.pods], () => podIndex(inputs.pods));
  // Workloads first: services need their labels; workloads then need the services they back.
  const drafts = stage(prev?.drafts, [inputs.pods, inputs.deployments], () => {
    const list = workloadDrafts(inputs.pods, inputs.deployments);
    return {
      drafts: list,
      byNamespace: labelIndexes(
        list,
        (d) => d.ref.namespace,
        (d) => d.labels,
      ),
    };
  });
  const services = stage(
    prev?.services,
    [inputs.services, inputs.slices, settings.value, pods.value, drafts.value],
    (c) =>
      buildServices(
        inputs.services,
        inputs.slices,
        settings.value,
        pods.value,
        drafts.value,
        c,
        prev?.services.value,
      ),
  );
  // Workloads depend on services only through which services each one backs.
  const backs = stage(prev?.backs, [services.value.list], () =>
    kept(prev?.backs.value, backsOf(services.value.list)),
  );
  const workloads = stage(prev?.workloads, [drafts.value, backs.value, settings.value], () =>
    reuse(
      buildWorkloads(drafts.value.drafts, backs.value, settings.value),
      prev?.workloads.value,
      (w) => `${w.kind}/${w.namespace}/${w.name}`,
    ),
  );
  // TrafficTargets depend on services only through the ports each identity serves.
  const ports = stage(prev?.ports, [services.value.list, workloads.value], () =>
    kept(prev?.ports.value, identityPorts(services.value.list, workloads.value)),
  );
  const routes = stage(prev?.routes, [inputs.httpRouteGroups], (c) => {
    const rejectedMatches = new Set<string>();
    const list = reuse(
      inputs.httpRouteGroups.map((g) => buildHttpRouteGroup(g, c, rejectedMatches)),
      prev?.routes.value.list,
      nsName,
    );
    return { list, byKey: new Map(list.map((g) => [nsName(g), g])), rejectedMatches };
  });
  const l4 = stage(prev?.l4, [inputs.l4Routes], () => {
    const list = reuse(
      inputs.l4Routes
        .map(buildL4Route)
        .sort((a, b) => cmp(a.kind, b.kind) || cmp(a.namespace, b.namespace) || cmp(a.name, b.name)),
      prev?.l4.value.list,
      (r) => `${r.kind}/${nsName(r)}`,
    );
    return { list, byKey: new Map(list.map((r) => [`${r.kind}/${nsName(r)}`, r])) };
  });
  const splits = stage(
    prev?.splits,
    [inputs.splits, settings.value, rejectedKey, services.value.list, routes.value],
    (c) =>
      reuse(
        buildSplits(inputs.splits, {
          settings: settings.value,
          rejected,
          services: new Map(services.value.list.map((s) => [nsName(s), s])),
          groups: routes.value.byKey,
          conditions: c,
        }),
        prev?.splits.value,
        nsName,
      ),
  );
  // Bindings depend on workloads (a label selector picks workloads); an equal result is kept so a
  // pod change that does not change what a binding declares leaves access alone.
  const bindings = stage(prev?.bindings, [inputs.identityBindings, workloads.value, settings.value], (c) =>
    kept(prev?.bindings.value, buildBindings(inputs.identityBindings, workloads.value, settings.value, c)),
  );
  const access = stage(
    prev?.access,
    [
      inputs.targets,
      bindings.value,
      inputs.serviceAccounts,
      settings.value,
      rejectedKey,
      routes.value,
      l4.value,
      ports.value,
      workloads.value,
    ],
    (c) =>
      reuse(
        buildAccess(inputs.targets, inputs.serviceAccounts, workloads.value, ports.value, {
          settings: settings.value,
          rejected,
          groups: routes.value.byKey,
          l4: l4.value.byKey,
          rejectedMatches: routes.value.rejectedMatches,
          bindings: bindings.value,
          conditions: c,
        }),
        prev?.access.value,
        // A TrafficTarget whose destination is an IdentityBinding has one model per destination.
        (a) => `${nsName(a)}|${a.destination.identity}`,
      ),
  );
  const namespaces = stage(prev?.namespaces, [inputs.namespaces], () =>
    inputs.namespaces.map((n) => ({ name: n.meta.name, labels: n.meta.labels })),
  );
  // Apart from the service and split models (see ObjectLabels); an equal result is kept, so that the
  // model stays the same object when only something else about a Service changed.
  const objectLabels = stage(prev?.objectLabels, [inputs.services, inputs.splits], () =>
    kept(prev?.objectLabels.value, {
      services: labelsByName(inputs.services),
      trafficSplits: labelsByName(inputs.splits),
    }),
  );

  const parts: MeshModel = {
    settings: settings.value,
    namespaces: namespaces.value,
    services: services.value.list,
    workloads: workloads.value,
    splits: splits.value,
    access: access.value,
    httpRouteGroups: routes.value.list,
    l4Routes: l4.value.list,
    objectLabels: objectLabels.value,
  };
  const old = prev?.model;
  const model: MeshModel =
    old && (Object.keys(parts) as (keyof MeshModel)[]).every((k) => parts[k] === old[k]) ? old : parts;
  // The order stages report in is the order of a build from scratch; sorting makes it irrelevant
  // anyway, except between conditions that differ only in severity.
  const conditions = sortConditions([
    ...readConditions,
    ...settings.conditions,
    ...services.conditions,
    ...routes.conditions,
    ...splits.conditions,
    ...bindings.conditions,
    ...access.conditions,
  ]);
  return {
    state: {
      inputs,
      members,
      settings,
      pods,
      drafts,
      services,
      backs,
      workloads,
      ports,
      routes,
      l4,
      splits,
      bindings,
      access,
      namespaces,
      objectLabels,
      model,
    },
    result: { model, conditions },
  };
}

/**
 * The labels of objects that have any, by `<namespace>/<name>`, keys sorted so that the result does
 * not depend on input order (golden files and `kept` see key order).
 */
function labelsByName(
  objects: readonly { readonly meta: ObjectMeta }[],
): Readonly<Record<string, Readonly<Record<string, string>>>> {
  const entries = objects
    .filter((o) => Object.keys(o.meta.labels).length > 0)
    .map((o) => [`${o.meta.namespace}/${o.meta.name}`, o.meta.labels] as const)
    .sort(([a], [b]) => cmp(a, b));
  return Object.fromEntries(entries);
}

/**
 * Builds the mesh model from raw objects: parsed YAML documents or API objects, in any order, of any
 * kind (kinds Weft does not read are reported and ignored; `List` objects are expanded).
 *
 * Pure and deterministic: the same set of inputs always gives a deep-equal result, whatever their
 * order; inputs are never mutated (frozen inputs work). Never throws on bad input: every problem is
 * a {@link Condition}, and the offending object, or part of it, is left out.
 */
export function buildModel(objects: readonly unknown[]): BuildResult {
  return build(objects, undefined).result;
}

/**
 * Builds models one after another, each exactly as {@link buildModel} would, but reusing the
 * previous build: a stage whose inputs are unchanged is not run again, and a model object (service,
 * workload, split, TrafficTarget, route group) that comes out equal to the previous one is that
 * previous object. A split change thus rebuilds the splits and nothing else, and every service
 * keeps its identity, so caches keyed by model objects (translation's fingerprints) stay warm.
 *
 * It relies on what sources promise anyway: an input object is never mutated after it is passed
 * in; a changed object is a new object.
 */
export class ModelBuilder {
  private state: BuildState | undefined;

  /** Builds the model of `objects`; same result as `buildModel(objects)`. */
  build(objects: readonly unknown[]): BuildResult {
    const { state, result } = build(objects, this.state);
    this.state = state;
    return result;
  }
}
