/**
 * The compile loop shared by every way of running Weft (a folder, Kubernetes): raw objects in,
 * per-proxy snapshots out.
 *
 * - Inputs → `buildModel` (conditions on bad objects; the rest still builds). EnvoyPatches are
 *   split off and parsed on their own.
 * - A connecting proxy is resolved to a workload and flavor (see `proxies.ts`) and gets the cache
 *   group `<flavor>/<kind>/<namespace>/<name>`: a group's name is stable while its content changes.
 * - Translation is keyed by `groupKey(model, target)`, a hash of exactly what translation reads for
 *   that proxy: proxies with equal inputs share one translation and one snapshot, and after an
 *   input change only groups whose key changed are translated again (OSM recomputed every proxy
 *   on every change).
 * - Patches apply to the groups they select, all or nothing across the mesh; a patch that a proxy
 *   NACKs is rolled back for that proxy's group (see {@link MeshCompiler.rollBack}).
 * - With a {@link PatchJudge} (an Envoy binary at hand), every patched Envoy group's set is judged by
 *   Envoy before it is served. Compiling stays synchronous: a set not judged yet is judged in the
 *   background while the group keeps what it served (its last judged patched config, when that
 *   carried no patch that is now gone or changed, else the unpatched config); once Envoy has
 *   spoken the compiler recompiles and swaps it in, or withdraws the refused patch everywhere
 *   (`Applied=False` with Envoy's text and the operation). Judgements are cached by content, so
 *   an unchanged set is never judged twice, and groups no patch selects are never judged.
 */
import { createHash } from 'node:crypto';
import { type Logger, logger } from '../log';
import type { PatchableResources } from '../patch/apply';
import { type Judgement, type PatchJudge, refusalError, setKey } from '../patch/envoy-judge';
import { extractPatches, type MeshProxy, patchMesh } from '../patch/mesh';
import { type EnvoyPatch, selectsPatch } from '../patch/select';
import { ModelBuilder } from '../smi/build';
import type { Condition, MeshModel, WorkloadModel } from '../smi/model';
import { GroupKeys, type ProxyResources, type ProxyTarget, translateProxy } from '../translate';
import type { SnapshotCache } from '../xds/cache/cache';
import type { ResourceEncoder, Snapshot, SnapshotInput } from '../xds/cache/snapshot';
import type { NodeInfo } from '../xds/proxy-state';
import { CLUSTER, ENDPOINT, LISTENER, type ResourceTypeUrl, ROUTE, SECRET } from '../xds/resource-types';
import { serviceTargetResolver } from './patch-targets';
import { groupName, type ResolvedProxy, resolveProxy } from './proxies';

const log: Logger = logger('compiler');

/** Options of {@link MeshCompiler}. */
export interface MeshCompilerOptions {
  /** Compile with mutual TLS (default true). */
  mtls?: boolean;
  /** Namespace of mesh-wide settings and patches (default weft-system). */
  meshNamespace?: string;
  /** Envoy as the judge of patched sets (see the module comment); none: Weft's own checks only. */
  judge?: PatchJudge;
  /** See `applyPatches` (default true); off only to show Envoy refusing on its own. */
  nativeRules?: boolean;
  /**
   * Encodes one resource from its JSON text exactly as the compiler's encoder would, elsewhere
   * (serve passes its helper thread's): {@link MeshCompiler.updateInSlices} then encodes big
   * resources there while the loop keeps turning. Without it, they are encoded in the slice.
   */
  encodeElsewhere?: (typeUrl: ResourceTypeUrl, text: string) => Promise<Uint8Array>;
}

/** Inputs split and built into a model, ready to be made current. */
interface BuiltInputs {
  readonly built: ReturnType<ModelBuilder['build']>;
  /** The objects the model was built from (EnvoyPatches aside). */
  readonly rest: readonly unknown[];
  readonly patches: EnvoyPatch[];
  /** The caller's conditions and those of patches that could not be read. */
  readonly extraConditions: readonly Condition[];
  /** When the update started, and how long building the model took (ms). */
  readonly t0: number;
  readonly modelMs: number;
}

/** What one update did, for logs, metrics and the benchmark. */
export interface UpdateResult {
  readonly conditions: readonly Condition[];
  /** Translations computed (groups whose key was new). */
  readonly translated: number;
  /**
   * Active groups whose key was computed again, because something their view reads changed; the
   * others kept their key without looking at their view.
   */
  readonly rekeyed: number;
  /** Active groups whose snapshot changed. */
  readonly changed: number;
  /** Active groups in all. */
  readonly groups: number;
  /** Patched groups whose set Envoy is judging; they serve what they served until it has. */
  readonly judging?: number;
  /** Milliseconds spent. */
  readonly ms: number;
  /** Of which building the model. */
  readonly modelMs: number;
}

/** Why a patch is rolled back for a group. */
interface RollBack {
  /** The NACKing proxy's node id. */
  readonly proxy: string;
  /** Its `error_detail.message`. */
  readonly message: string;
  /** `JSON.stringify(spec)` of the patch it rejected. */
  readonly spec: string;
}

/** What a patched group served last after Envoy accepted it. */
interface Served {
  readonly snapshot: Snapshot;
  /** `<namespace>/<name>` and spec of each patch it carries. */
  readonly patches: ReadonlySet<string>;
  readonly touched: Map<string, readonly string[]>;
}

interface ActiveGroup {
  target: ProxyTarget;
  key: string;
}

function toInput(r: ProxyResources | PatchableResources): SnapshotInput {
  return {
    [LISTENER]: r.listeners,
    [ROUTE]: r.routes,
    [CLUSTER]: r.clusters,
    [ENDPOINT]: r.endpoints,
    [SECRET]: r.secrets,
  };
}

function conditionKey(c: Condition): string {
  return `${c.object}|${c.type}|${c.reason}|${c.message}`;
}

/** One translation: its resources, its snapshot, and what translating found about the inputs. */
interface GroupEntry {
  resources: ProxyResources;
  snapshot: Snapshot;
  conditions: readonly Condition[];
}

/** Inputs to snapshots, incrementally. */
export class MeshCompiler {
  /** Builds each model reusing the previous one, so unchanged model objects keep their identity. */
  private readonly builder = new ModelBuilder();
  /** Group keys, each computed again only when something its proxy's view reads changed. */
  private readonly keys = new GroupKeys();
  private model: MeshModel;
  private patches: EnvoyPatch[] = [];
  /** The inputs of the current model (every object but EnvoyPatches), for admission checks. */
  private inputs: readonly unknown[] = [];
  private conditions: readonly Condition[] = [];
  /** Conditions of the inputs (parsing, the model, patch schemas), kept across recompiles. */
  private inputConditions: readonly Condition[] = [];
  private readonly active = new Map<string, ActiveGroup>();
  /** The model's workloads by `<kind>/<namespace>/<name>`, for the list it was made from. */
  private workloadIndex: { list: readonly WorkloadModel[]; byKey: ReadonlyMap<string, WorkloadModel> } = {
    list: [],
    byKey: new Map(),
  };
  /** Translations and their snapshots by group key; only keys of active groups are kept. */
  private byKey = new Map<string, GroupEntry>();
  /** Translations {@link updateInSlices} made ahead for the model it is about to commit. */
  private prepared = new Map<string, GroupEntry>();
  /** The sliced update in progress: they run one at a time. */
  private slicing: Promise<unknown> = Promise.resolve();
  private readonly mtls: boolean;
  private readonly encodeElsewhere: MeshCompilerOptions['encodeElsewhere'];
  private readonly meshNamespace: string;
  /**
   * Patches rolled back per group after a NACK, with the proxy's own error and the spec it
   * rejected: a changed spec is a new attempt, so its rollback is forgotten.
   */
  private readonly rolledBack = new Map<string, Map<string, RollBack>>();
  /** Groups that resources of each patch landed in, for tracing NACKs back to patches. */
  private patchedResources = new Map<string, Map<string, readonly string[]>>();
  /** Proxies refused because their certificate contradicts what they claim. */
  identityMismatches = 0;
  private readonly judge: PatchJudge | undefined;
  private readonly nativeRules: boolean;
  /** Each patched group's last served set that Envoy accepted. */
  private readonly served = new Map<string, Served>();
  /** Judgements this compiler is waiting for. */
  private readonly waiting = new Set<Promise<unknown>>();
  private recompileScheduled: Promise<void> | undefined;
  private readonly judgedListeners: (() => void)[] = [];

  constructor(
    private readonly cache: SnapshotCache,
    private readonly encoder: ResourceEncoder,
    opts: MeshCompilerOptions = {},
  ) {
    this.mtls = opts.mtls ?? true;
    this.meshNamespace = opts.meshNamespace ?? 'weft-system';
    this.judge = opts.judge;
    this.nativeRules = opts.nativeRules ?? true;
    this.encodeElsewhere = opts.encodeElsewhere;
    this.model = this.builder.build([]).model;
  }

  /** The Envoy judge of patched sets, if any. */
  get envoyJudge(): PatchJudge | undefined {
    return this.judge;
  }

  /** The parsed EnvoyPatches of the current inputs. */
  get currentPatches(): readonly EnvoyPatch[] {
    return this.patches;
  }

  /**
   * The objects the current model was built from (EnvoyPatches aside): the SMI webhook builds
   * them again with the object under review in place of its stored version.
   */
  get currentInputs(): readonly unknown[] {
    return this.inputs;
  }

  /** Whether proxies are compiled for mutual TLS. */
  get mutualTls(): boolean {
    return this.mtls;
  }

  /** The mesh namespace. */
  get meshNs(): string {
    return this.meshNamespace;
  }

  /** Targets of the active groups (connected proxies). */
  activeTargets(): ProxyTarget[] {
    return [...this.active.values()].map((g) => g.target);
  }

  /**
   * Calls `listener` after each recompile that an Envoy judgement caused (conditions and
   * snapshots may have changed without new inputs).
   */
  onJudged(listener: () => void): void {
    this.judgedListeners.push(listener);
  }

  /** Resolves once no judgement is pending and the recompile it caused has run. */
  async whenJudged(): Promise<void> {
    while (this.waiting.size > 0 || this.recompileScheduled) {
      await Promise.allSettled([...this.waiting]);
      await this.recompileScheduled;
    }
  }

  /** After a judgement: recompile once (many judgements ending together cost one recompile). */
  private judged(): void {
    this.recompileScheduled ??= new Promise<void>((done) =>
      setImmediate(() => {
        this.recompileScheduled = undefined;
        this.conditions = [...this.inputConditions, ...this.recompile().conditions];
        for (const l of this.judgedListeners) l();
        done();
      }),
    );
  }

  /** The current model. */
  get currentModel(): MeshModel {
    return this.model;
  }

  /** The current conditions (inputs, translation and patches). */
  get currentConditions(): readonly Condition[] {
    return this.conditions;
  }

  /** Names of the active groups. */
  groups(): string[] {
    return [...this.active.keys()].sort();
  }

  /** Replaces the inputs; recompiles the groups whose inputs changed. */
  update(objects: readonly unknown[], extraConditions: readonly Condition[] = []): UpdateResult {
    return this.commit(this.buildInputs(objects, extraConditions));
  }

  /** Splits the EnvoyPatches from the rest of `objects` and builds the model of the rest. */
  private buildInputs(objects: readonly unknown[], extraConditions: readonly Condition[]): BuiltInputs {
    const t0 = performance.now();
    const { patches, rest, conditions: patchParse } = extractPatches(objects);
    const m0 = performance.now();
    const built = this.builder.build(rest);
    return {
      built,
      rest,
      patches,
      extraConditions: [...extraConditions, ...patchParse],
      t0,
      modelMs: performance.now() - m0,
    };
  }

  /**
   * Like {@link update}, but first translates each active group whose inputs changed, one group
   * per `pause()` (a turn of the event loop by default), so that xDS and admin keep answering
   * while a big compile runs: only building the model, one group's translation and one group's
   * encoding run without a break. Until the end nothing is served from the new inputs, and the
   * end is {@link update}'s own synchronous step, which finds those translations ready. Calls are queued, never
   * interleaved, since each one builds its model from the previous one.
   */
  updateInSlices(
    objects: readonly unknown[],
    extraConditions: readonly Condition[] = [],
    pause: () => Promise<void> = () => new Promise((r) => setImmediate(r)),
  ): Promise<UpdateResult> {
    const run = this.slicing.then(async () => {
      const inputs = this.buildInputs(objects, extraConditions);
      await pause();
      const model = inputs.built.model;
      const prepared = new Map<string, GroupEntry>();
      // A group that proxies join meanwhile is translated in the last step; one that leaves
      // only costs its translation here.
      for (const g of [...this.active.values()]) {
        const { key } = this.keys.keyOf(model, g.target);
        if (this.byKey.has(key) || prepared.has(key)) continue;
        const t = translateProxy(model, g.target, this.keys.view(model, g.target));
        await pause();
        const input = toInput(t.resources);
        // Encoding a big resource (a RouteConfiguration of 10,000 routes: 0.2–0.6 s) is the
        // longest step of all; done elsewhere ahead, the snapshot below finds it encoded. The
        // list holds those encodings until the snapshot does.
        const ahead = this.encodeElsewhere ? await this.encoder.encodeAhead(input, this.encodeElsewhere) : [];
        prepared.set(key, {
          resources: t.resources,
          snapshot: this.encoder.snapshot(input),
          conditions: t.conditions,
        });
        ahead.length = 0;
        await pause();
      }
      this.prepared = prepared;
      try {
        return this.commit(inputs);
      } finally {
        this.prepared = new Map();
      }
    });
    this.slicing = run.catch(() => undefined);
    return run;
  }

  /** Makes a built model current and recompiles from it. */
  private commit({ built, rest, patches, extraConditions, t0, modelMs }: BuiltInputs): UpdateResult {
    this.model = built.model;
    this.inputs = rest;
    this.patches = patches;
    this.forgetStaleRollBacks();
    const result = this.recompile();
    this.inputConditions = [...extraConditions, ...built.conditions];
    this.conditions = [...this.inputConditions, ...result.conditions];
    return { ...result, conditions: this.conditions, ms: performance.now() - t0, modelMs };
  }

  /**
   * Rolls `patch` (`<namespace>/<name>`) back for `group` after `nack` (the proxy and its own error
   * text) and recompiles. It stays rolled back for that group until the patch's spec changes.
   */
  rollBack(group: string, patch: string, nack: { proxy: string; message: string }): void {
    const current = this.patches.find((p) => `${p.metadata.namespace}/${p.metadata.name}` === patch);
    const map = this.rolledBack.get(group) ?? new Map<string, RollBack>();
    map.set(patch, { ...nack, spec: JSON.stringify(current?.spec ?? null) });
    this.rolledBack.set(group, map);
    this.conditions = [...this.inputConditions, ...this.recompile().conditions];
  }

  /** Drops rollbacks of patches that are gone or whose spec changed since the NACK. */
  private forgetStaleRollBacks(): void {
    const specs = new Map(
      this.patches.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, JSON.stringify(p.spec)]),
    );
    for (const [group, map] of this.rolledBack) {
      for (const [patch, r] of map) if (specs.get(patch) !== r.spec) map.delete(patch);
      if (map.size === 0) this.rolledBack.delete(group);
    }
  }

  /** Patches whose resources a NACK of `resourceNames` on `group` touches. */
  patchesTouching(group: string, resourceNames: readonly string[]): string[] {
    const touched = this.patchedResources.get(group);
    if (!touched) return [];
    const names = new Set(resourceNames);
    return [...touched.entries()]
      .filter(([, res]) => res.some((r) => names.has(r.slice(r.indexOf('/') + 1))))
      .map(([p]) => p);
  }

  private workloadOf(t: ProxyTarget): WorkloadModel | undefined {
    if (this.workloadIndex.list !== this.model.workloads) {
      const list = this.model.workloads;
      this.workloadIndex = {
        list,
        byKey: new Map(list.map((w) => [`${w.kind}/${w.namespace}/${w.name}`, w])),
      };
    }
    return this.workloadIndex.byKey.get(`${t.workload.kind}/${t.workload.namespace}/${t.workload.name}`);
  }

  private translated(
    target: ProxyTarget,
    next: Map<string, GroupEntry>,
    stats: { translated: number; rekeyed: number },
  ) {
    const { key, computed } = this.keys.keyOf(this.model, target);
    if (computed) stats.rekeyed++;
    let entry = next.get(key) ?? this.byKey.get(key) ?? this.prepared.get(key);
    if (!entry) {
      const t = translateProxy(this.model, target, this.keys.view(this.model, target));
      entry = {
        resources: t.resources,
        snapshot: this.encoder.snapshot(toInput(t.resources)),
        conditions: t.conditions,
      };
      stats.translated++;
    }
    next.set(key, entry);
    return { key, entry };
  }

  private recompile(): {
    conditions: Condition[];
    translated: number;
    rekeyed: number;
    changed: number;
    groups: number;
    judging: number;
  } {
    const next = new Map<string, GroupEntry>();
    const stats = { translated: 0, rekeyed: 0 };
    const patchable: {
      id: string;
      group: string;
      w: WorkloadModel;
      target: ProxyTarget;
      resources: ProxyResources;
      unpatched: Snapshot;
    }[] = [];
    const snapshots = new Map<string, Snapshot>();
    for (const [group, g] of this.active) {
      const { key, entry } = this.translated(g.target, next, stats);
      g.key = key;
      const w = this.workloadOf(g.target);
      const subject = w && {
        namespace: w.namespace,
        labels: w.labels,
        serviceAccount: w.serviceAccount,
        flavor: g.target.flavor,
      };
      if (w && subject && this.patches.some((p) => selectsPatch(p, subject, this.meshNamespace))) {
        patchable.push({
          id: group,
          group,
          w,
          target: g.target,
          resources: entry.resources,
          unpatched: entry.snapshot,
        });
      } else {
        snapshots.set(group, entry.snapshot);
        this.served.delete(group);
      }
    }
    // What translating found about the inputs, once per object and reason whatever the groups.
    const found = new Map<string, Condition>();
    for (const g of this.active.values()) {
      for (const c of next.get(g.key)?.conditions ?? []) found.set(conditionKey(c), c);
    }
    let conditions: Condition[] = [...found.values()].sort((a, b) =>
      conditionKey(a) < conditionKey(b) ? -1 : 1,
    );
    this.patchedResources = new Map();
    let judging = 0;
    if (this.patches.length > 0) {
      const proxies: MeshProxy[] = patchable.map((p) => ({
        id: p.id,
        subject: {
          namespace: p.w.namespace,
          labels: p.w.labels,
          serviceAccount: p.w.serviceAccount,
          flavor: p.target.flavor,
        },
        resources: p.resources,
      }));
      const refused = new Map<string, string[]>();
      const opts = {
        meshNamespace: this.meshNamespace,
        resolve: serviceTargetResolver,
        rolledBack: new Map([...this.rolledBack].map(([g, m]) => [g, new Set(m.keys())])),
        refused,
        nativeRules: this.nativeRules,
      };
      let r = patchMesh(proxies, this.patches, opts);
      // Patched sets Envoy has not judged yet, by group.
      const unjudged = new Map<string, { key: string; applied: Set<string> }>();
      if (this.judge) {
        // Known refusals withdraw their patch everywhere, which changes other sets: repeat until
        // every patched set is either accepted or not judged yet (bounded: each pass withdraws one).
        for (let pass = 0; pass <= this.patches.length; pass++) {
          unjudged.clear();
          const fresh = new Map<string, string[]>();
          for (const p of proxies) {
            const applied = new Set((r.results.get(p.id) ?? []).filter((x) => x.applied).map((x) => x.patch));
            // Envoy judges what Envoy gets: proxyless gRPC clients read the same resources
            // their own way (their NACKs still roll patches back).
            if (applied.size === 0 || p.subject.flavor !== 'envoy') continue;
            const key = setKey(r.resources.get(p.id) ?? p.resources);
            const j: Judgement | undefined = this.judge.peek(key);
            if (!j) unjudged.set(p.id, { key, applied });
            else if (!j.accepted && !refused.has(j.patch))
              fresh.set(j.patch, [...(fresh.get(j.patch) ?? []), refusalError(p.id, j)]);
          }
          if (fresh.size === 0) break;
          for (const [k, v] of fresh) refused.set(k, v);
          r = patchMesh(proxies, this.patches, opts);
        }
      }
      conditions = [...conditions, ...r.conditions];
      const specOf = new Map(
        this.patches.map((p) => [`${p.metadata.namespace}/${p.metadata.name}`, JSON.stringify(p.spec)]),
      );
      const specs = (ids: Iterable<string>): Set<string> =>
        new Set([...ids].map((id) => `${id} ${specOf.get(id) ?? ''}`));
      for (const [i, p] of patchable.entries()) {
        const wait = unjudged.get(p.id);
        if (wait && this.judge) {
          judging++;
          // Keep what the group served while Envoy judges, unless it carries a patch that is gone
          // or changed (or refused now): then the unpatched config, which needs no judging.
          const prev = this.served.get(p.group);
          const proposed = specs(wait.applied);
          if (prev && [...prev.patches].every((x) => proposed.has(x))) {
            snapshots.set(p.group, prev.snapshot);
            this.patchedResources.set(p.group, prev.touched);
          } else {
            snapshots.set(p.group, p.unpatched);
            this.served.delete(p.group);
          }
          if (!this.judge.pending(wait.key)) {
            const proxy = proxies[i]!;
            const task = this.judge
              .judge(
                {
                  resources: proxy.resources,
                  subject: proxy.subject,
                  patches: this.patches,
                  applied: wait.applied,
                  patched: r.resources.get(p.id) ?? p.resources,
                  meshNamespace: this.meshNamespace,
                  resolve: serviceTargetResolver,
                  nativeRules: this.nativeRules,
                },
                wait.key,
              )
              .then(
                (j) => {
                  if (!j.accepted)
                    log.warn('Envoy refused a patched config', {
                      group: p.group,
                      patch: j.patch,
                      error: j.message,
                    });
                },
                (err: unknown) =>
                  log.error('judging a patched config failed', { group: p.group, error: String(err) }),
              )
              .finally(() => {
                this.waiting.delete(task);
                this.judged();
              });
            this.waiting.add(task);
          }
          continue;
        }
        const snapshot = this.encoder.snapshot(toInput(r.resources.get(p.id) ?? p.resources));
        snapshots.set(p.group, snapshot);
        const touched = new Map<string, readonly string[]>();
        for (const res of r.results.get(p.id) ?? []) if (res.applied) touched.set(res.patch, res.touched);
        this.patchedResources.set(p.group, touched);
        if (touched.size > 0) this.served.set(p.group, { snapshot, patches: specs(touched.keys()), touched });
        else this.served.delete(p.group);
      }
      for (const [group, map] of this.rolledBack) {
        for (const [patch, r] of map) {
          conditions.push({
            object: `EnvoyPatch/${patch}`,
            type: 'Programmed',
            status: 'False',
            severity: 'Error',
            reason: 'RolledBack',
            message: `EnvoyPatch ${patch} was rejected (NACK) by proxy ${r.proxy} of ${group}, which said: ${JSON.stringify(r.message)}; it is rolled back for that group until the patch changes; fix the patch so the proxy accepts it`,
          });
        }
      }
    }
    let changed = 0;
    for (const [group, snap] of snapshots) if (this.cache.set(group, snap)) changed++;
    this.byKey = next;
    return {
      conditions,
      translated: stats.translated,
      rekeyed: stats.rekeyed,
      changed,
      groups: this.active.size,
      judging,
    };
  }

  /** Groups whose snapshot carries `patch` (`<namespace>/<name>`) now. */
  groupsPatchedBy(patch: string): string[] {
    return [...this.patchedResources.entries()].filter(([, m]) => m.has(patch)).map(([g]) => g);
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
    this.active.set(group, { target, key: '' });
    if (this.patches.length > 0) {
      // Patches apply all-or-nothing across groups, so a new group means one more full pass.
      this.conditions = [...this.inputConditions, ...this.recompile().conditions];
      return group;
    }
    const { key, entry } = this.translated(target, this.byKey, { translated: 0, rekeyed: 0 });
    this.active.get(group)!.key = key;
    this.cache.set(group, entry.snapshot);
    if (entry.conditions.length > 0) {
      const known = new Set(this.conditions.map(conditionKey));
      this.conditions = [...this.conditions, ...entry.conditions.filter((c) => !known.has(conditionKey(c)))];
    }
    return group;
  }

  /** A fingerprint of the current conditions, to report changes only. */
  conditionsFingerprint(): string {
    return createHash('sha256').update(JSON.stringify(this.conditions)).digest('base64url');
  }
}
