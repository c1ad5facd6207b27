/**
 * Applies EnvoyPatches across every proxy of the mesh and reports one set of conditions per patch.
 * A patch that fails on any proxy is applied on none ("no half-applied patches"): the pass is
 * repeated without it until no patch fails (bounded by the number of patches, since each pass
 * withdraws at least one).
 */
import type { Condition } from '../smi/model';
import {
  applyPatches,
  type PatchableResources,
  type PatchResult,
  type PatchSubject,
  type ResourceValidator,
  type ServiceTargetResolver,
} from './apply';
import { type EnvoyPatch, EnvoyPatchObject } from './schema';

/** One proxy to patch. */
export interface MeshProxy {
  readonly id: string;
  readonly subject: PatchSubject;
  readonly resources: PatchableResources;
}

/** Splits raw objects into EnvoyPatches (parsed) and everything else; invalid patches give conditions. */
export function extractPatches(objects: readonly unknown[]): {
  patches: EnvoyPatch[];
  rest: unknown[];
  conditions: Condition[];
} {
  const patches: EnvoyPatch[] = [];
  const rest: unknown[] = [];
  const conditions: Condition[] = [];
  for (const o of objects) {
    const kind = (o as { kind?: unknown })?.kind;
    if (kind !== 'EnvoyPatch') {
      rest.push(o);
      continue;
    }
    const meta = (o as { metadata?: { name?: string; namespace?: string } }).metadata ?? {};
    const label = `EnvoyPatch/${meta.namespace ?? 'default'}/${meta.name ?? ''}`;
    const parsed = EnvoyPatchObject.safeParse(o);
    if (parsed.success) {
      patches.push(parsed.data);
      continue;
    }
    for (const issue of parsed.error.issues) {
      const field = issue.path
        .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
        .join('')
        .replace(/^\./, '');
      conditions.push({
        object: label,
        type: 'Accepted',
        status: 'False',
        severity: 'Error',
        reason: 'InvalidPatch',
        field,
        message: `EnvoyPatch ${meta.namespace ?? 'default'}/${meta.name ?? ''}: ${field}: ${issue.message}; fix the field and apply again`,
      });
    }
  }
  return { patches, rest, conditions };
}

/** Options of {@link patchMesh}. */
export interface PatchMeshOptions {
  readonly meshNamespace: string;
  readonly resolve?: ServiceTargetResolver;
  readonly validate?: ResourceValidator;
  /** See `applyPatches` (default true). */
  readonly nativeRules?: boolean;
  /** Patches rolled back per proxy after a NACK. */
  readonly rolledBack?: ReadonlyMap<string, ReadonlySet<string>>;
  /**
   * Patches refused before this pass (Envoy refused a set they made), with why: they apply
   * nowhere and their Applied condition carries these errors.
   */
  readonly refused?: ReadonlyMap<string, readonly string[]>;
}

/** Patches every proxy; returns the patched resources by proxy id and the patch conditions. */
export function patchMesh(
  proxies: readonly MeshProxy[],
  patches: readonly EnvoyPatch[],
  opts: PatchMeshOptions,
): {
  resources: Map<string, PatchableResources>;
  conditions: Condition[];
  results: Map<string, PatchResult[]>;
} {
  const failed = new Set<string>(opts.refused?.keys() ?? []);
  // Why each patch failed, kept from the pass that found it: later passes skip failed patches.
  const failures = new Map<string, Set<string>>(
    [...(opts.refused ?? [])].map(([patch, errors]) => [patch, new Set(errors)]),
  );
  let out = new Map<string, PatchableResources>();
  let results = new Map<string, PatchResult[]>();
  for (let pass = 0; pass <= patches.length; pass++) {
    out = new Map();
    results = new Map();
    let newFailure = false;
    for (const p of proxies) {
      const skip = new Set([...failed, ...(opts.rolledBack?.get(p.id) ?? [])]);
      const r = applyPatches(p.resources, p.subject, patches, { ...opts, skip });
      out.set(p.id, r.resources);
      results.set(p.id, r.results);
      for (const res of r.results) {
        if (res.errors.length > 0 && !failed.has(res.patch)) {
          failed.add(res.patch);
          failures.set(res.patch, new Set(res.errors.map((e) => `${p.id}: ${e}`)));
          newFailure = true;
        }
      }
    }
    if (!newFailure) break;
  }
  const conditions: Condition[] = [];
  for (const patch of patches) {
    const id = `${patch.metadata.namespace}/${patch.metadata.name}`;
    const object = `EnvoyPatch/${id}`;
    conditions.push({
      object,
      type: 'Accepted',
      status: 'True',
      severity: 'Warning',
      reason: 'Accepted',
      message: `EnvoyPatch ${id} is well-formed`,
    });
    const errors = new Set<string>(failures.get(id) ?? []);
    const notFound: string[] = [];
    let applied = 0;
    let selected = 0;
    let rolledBack = 0;
    for (const [proxy, list] of results) {
      // A group the patch was rolled back for is still selected by it: say so, not "selects no proxy".
      if (opts.rolledBack?.get(proxy)?.has(id)) {
        rolledBack++;
        continue;
      }
      const r = list.find((x) => x.patch === id);
      if (!r?.selected) continue;
      selected++;
      if (r.applied) applied++;
      for (const n of r.notFound) notFound.push(`${proxy}: ${n}`);
    }
    if (errors.size > 0) {
      // The first failing operation, as a field path, for tools that point at the field.
      const field = [...errors]
        .map((e) => /spec\.patches\[\d+\][^:,\s]*/.exec(e)?.[0])
        .filter((f) => f !== undefined)
        .sort()[0];
      conditions.push({
        object,
        type: 'Applied',
        status: 'False',
        severity: 'Error',
        reason: 'Invalid',
        ...(field ? { field } : {}),
        message: `EnvoyPatch ${id} is applied nowhere: ${[...errors].sort().join('; ')}`,
      });
    } else if (selected === 0 && rolledBack > 0) {
      conditions.push({
        object,
        type: 'Applied',
        status: 'False',
        severity: 'Error',
        reason: 'RolledBack',
        message: `EnvoyPatch ${id} is rolled back on all ${rolledBack} proxy groups it selects after a proxy rejected it (see its Programmed condition); fix the patch and apply again`,
      });
    } else if (selected === 0) {
      conditions.push({
        object,
        type: 'Applied',
        status: 'False',
        severity: 'Warning',
        reason: 'NoMatchingProxy',
        message: `EnvoyPatch ${id} selects no proxy; check spec.selector and the patch's namespace`,
      });
    } else {
      conditions.push({
        object,
        type: 'Applied',
        status: notFound.length === 0 ? 'True' : 'False',
        severity: 'Warning',
        reason: notFound.length === 0 ? 'Applied' : 'TargetNotFound',
        message:
          `EnvoyPatch ${id} is applied to ${applied} of ${selected} selected proxies` +
          (rolledBack > 0 ? ` (rolled back on ${rolledBack} more after a NACK)` : '') +
          (notFound.length > 0 ? `; targets not found: ${notFound.sort().join('; ')}` : ''),
      });
    }
  }
  return { resources: out, conditions, results };
}
