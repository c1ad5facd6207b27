/**
 * The compile loop shared by every way of running Weft (a folder, Kubernetes): raw objects in,
 * per-proxy snapshots out.
 *
 * - Inputs → `buildModel` (conditions on bad objects; the rest still builds).
 * - A connecting proxy is resolved to a workload and flavor (see `proxies.ts`) and gets the cache
 *   group `<flavor>/<kind>/<namespace>/<name>`, so a group's name is stable while its content changes.
 * - Each group's config is the translation of its workload. Translation is keyed by
 *   `groupKey(model, target)`, a hash of exactly the inputs that translation reads for it, so
 *   proxies with identical inputs share one translation and one snapshot, and on an input change
 *   only groups whose key changed are translated again (OSM recomputed every proxy on every change).
 */
import { type Logger, logger } from '../log';
import { buildModel } from '../smi/build';
import type { Condition, MeshModel } from '../smi/model';
import { groupKey, type ProxyTarget, translateProxy } from '../translate';
import type { SnapshotCache } from '../xds/cache/cache';
import type { ResourceEncoder, Snapshot, SnapshotInput } from '../xds/cache/snapshot';
import type { NodeInfo } from '../xds/proxy-state';
import { CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET } from '../xds/resource-types';
import { groupName, type ResolvedProxy, resolveProxy } from './proxies';

const log: Logger = logger('compiler');

/** Options of {@link MeshCompiler}. */
export interface MeshCompilerOptions {
  /** Compile with mutual TLS (default true). */
  mtls?: boolean;
}

/** What one update did, for logs, metrics and the benchmark. */
export interface UpdateResult {
  readonly conditions: readonly Condition[];
  /** Active groups whose translation key changed and were translated again. */
  readonly translated: number;
  /** Active groups whose snapshot changed. */
  readonly changed: number;
  /** Active groups in all. */
  readonly groups: number;
  readonly ms: number;
}

interface ActiveGroup {
  target: ProxyTarget;
  key: string;
}

/** Inputs to snapshots, incrementally. */
export class MeshCompiler {
  private model: MeshModel;
  private conditions: readonly Condition[] = [];
  private readonly active = new Map<string, ActiveGroup>();
  private byKey = new Map<string, Snapshot>();
  private readonly mtls: boolean;
  /** Proxies refused because their certificate contradicts what they claim. */
  identityMismatches = 0;

  constructor(
    private readonly cache: SnapshotCache,
    private readonly encoder: ResourceEncoder,
    opts: MeshCompilerOptions = {},
  ) {
    this.mtls = opts.mtls ?? true;
    this.model = buildModel([]).model;
  }

  /** The current model. */
  get currentModel(): MeshModel {
    return this.model;
  }

  /** The current conditions. */
  get currentConditions(): readonly Condition[] {
    return this.conditions;
  }

  /** Replaces the inputs; recompiles the groups whose inputs changed. */
  update(objects: readonly unknown[], extraConditions: readonly Condition[] = []): UpdateResult {
    const t0 = performance.now();
    const built = buildModel(objects);
    this.model = built.model;
    this.conditions = [...extraConditions, ...built.conditions];
    const nextByKey = new Map<string, Snapshot>();
    let translated = 0;
    let changed = 0;
    for (const [group, g] of this.active) {
      const key = groupKey(this.model, g.target);
      let snap =
        nextByKey.get(key) ?? (key === g.key ? this.byKey.get(key) : undefined) ?? this.byKey.get(key);
      if (!snap) {
        snap = this.translate(g.target);
        translated++;
      }
      nextByKey.set(key, snap);
      g.key = key;
      if (this.cache.set(group, snap)) changed++;
    }
    this.byKey = nextByKey;
    return {
      conditions: this.conditions,
      translated,
      changed,
      groups: this.active.size,
      ms: performance.now() - t0,
    };
  }

  /** The xDS server's group function: resolves the proxy and makes sure its group is compiled. */
  groupOf(node: NodeInfo, identity: string | undefined): string | undefined {
    const r = resolveProxy(this.model, node, identity);
    if ('error' in r) {
      if (identity !== undefined && r.error.includes('certificate')) this.identityMismatches++;
      log.warn(r.error);
      return undefined;
    }
    return this.activate(r);
  }

  /** Compiles (or reuses) the group of a resolved proxy; returns its name. */
  activate(p: ResolvedProxy): string {
    const group = groupName(p);
    if (this.active.has(group)) return group;
    const target: ProxyTarget = {
      workload: { kind: p.workload.kind, namespace: p.workload.namespace, name: p.workload.name },
      flavor: p.flavor,
      mtls: this.mtls,
    };
    const key = groupKey(this.model, target);
    let snap = this.byKey.get(key);
    if (!snap) {
      snap = this.translate(target);
      this.byKey.set(key, snap);
    }
    this.active.set(group, { target, key });
    this.cache.set(group, snap);
    return group;
  }

  private translate(target: ProxyTarget): Snapshot {
    const { resources } = translateProxy(this.model, target);
    const input: SnapshotInput = {
      [LISTENER]: resources.listeners,
      [ROUTE]: resources.routes,
      [CLUSTER]: resources.clusters,
      [ENDPOINT]: resources.endpoints,
      [SECRET]: resources.secrets,
    };
    return this.encoder.snapshot(input);
  }
}
