/**
 * Applies EnvoyPatches to one proxy's resources, safely.
 *
 * - Order: priority (lower first), then creation time, then namespace/name.
 * - Selection: a patch reaches proxies in its own namespace whose workload matches its selector; a
 *   patch in the mesh namespace without a selector reaches every proxy. Nothing else: a patch can
 *   never touch another namespace's workloads.
 * - Each patch is applied to a copy; the resources it touched are decoded strictly and checked
 *   (unknown fields, types, Envoy's validation rules), and the set with the consistency checks and
 *   the rules Envoy enforces while building config (envoy-rules.ts), before it is kept. A patch that fails keeps
 *   nothing: the resources stay as they were before it, and later patches still apply.
 * - Guard-rails: a patch that changes a TLS context or an RBAC filter is refused unless it sets
 *   `allowSecurityOverride: true`.
 * Pure: no I/O; the resources passed in are not mutated.
 */
import { checkJson } from '../envoy/codec';
import { validate as validateRules } from '../envoy/validate';
import { checkReferences } from '../translate/consistency';
import { checkEnvoyRules } from './envoy-rules';
import { applyJsonPatch, type JsonPatchOp } from './json-patch';
import { protoMerge } from './merge';
import type { EnvoyPatch, PatchOperation, PatchResourceType } from './schema';

type Json = unknown;
type JsonObject = { [k: string]: Json };

/** Resources of one proxy, by kind (canonical JSON, each list sorted by name). */
export interface PatchableResources {
  listeners: JsonObject[];
  routes: JsonObject[];
  clusters: JsonObject[];
  endpoints: JsonObject[];
  secrets: JsonObject[];
}

/** The proxy being patched, as selectors see it. */
export interface PatchSubject {
  readonly namespace: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
  readonly flavor: 'envoy' | 'grpc';
}

/** Resolves a by-meaning target (a service port) to the generated names of one type. */
export type ServiceTargetResolver = (
  type: PatchResourceType,
  service: { name: string; namespace: string; port?: number },
  resources: PatchableResources,
) => string[];

/** Extra validation of a patched resource (protoc-gen-validate rules); returns problems. */
export type ResourceValidator = (typeName: string, json: unknown) => { path: string; message: string }[];

/** What happened to one patch on one proxy. */
export interface PatchResult {
  /** `<namespace>/<name>` of the patch. */
  readonly patch: string;
  /** The patch selected this proxy. */
  readonly selected: boolean;
  /** It was applied (selected, every operation found its target, everything checked out). */
  readonly applied: boolean;
  /** Operations whose target was not found, as `operation N: <what>`. */
  readonly notFound: readonly string[];
  /** Why it was refused: operation index, field path and reason, one sentence each. */
  readonly errors: readonly string[];
  /** Names of the resources it changed or added, as `<Type>/<name>`. */
  readonly touched: readonly string[];
}

const TYPE_INFO: Record<
  PatchResourceType,
  { key: keyof PatchableResources; message: string; nameField: string }
> = {
  Listener: { key: 'listeners', message: 'envoy.config.listener.v3.Listener', nameField: 'name' },
  RouteConfiguration: {
    key: 'routes',
    message: 'envoy.config.route.v3.RouteConfiguration',
    nameField: 'name',
  },
  Cluster: { key: 'clusters', message: 'envoy.config.cluster.v3.Cluster', nameField: 'name' },
  ClusterLoadAssignment: {
    key: 'endpoints',
    message: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
    nameField: 'cluster_name',
  },
};

const HCM_TYPE =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

function isObject(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Patch order: priority, creation time, namespace/name. */
export function orderPatches(patches: readonly EnvoyPatch[]): EnvoyPatch[] {
  return [...patches].sort((a, b) => {
    if (a.spec.priority !== b.spec.priority) return a.spec.priority - b.spec.priority;
    const ta = a.metadata.creationTimestamp ?? '';
    const tb = b.metadata.creationTimestamp ?? '';
    if (ta !== tb) return ta < tb ? -1 : 1;
    const ka = `${a.metadata.namespace}/${a.metadata.name}`;
    const kb = `${b.metadata.namespace}/${b.metadata.name}`;
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

/** Does `patch` reach `subject`? */
export function selects(patch: EnvoyPatch, subject: PatchSubject, meshNamespace: string): boolean {
  const sel = patch.spec.selector;
  if (patch.metadata.namespace !== subject.namespace) {
    return patch.metadata.namespace === meshNamespace && sel === undefined;
  }
  if (!sel) return true;
  if (sel.flavor && sel.flavor !== subject.flavor) return false;
  if (sel.serviceAccount && sel.serviceAccount !== subject.serviceAccount) return false;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (subject.labels[k] !== v) return false;
  return true;
}

/** Collects the security-relevant parts of a resource: TLS contexts and RBAC filters. */
function securityParts(node: Json, path: string, out: Map<string, string>): void {
  if (Array.isArray(node)) {
    for (const [i, x] of node.entries()) securityParts(x, `${path}[${i}]`, out);
    return;
  }
  if (!isObject(node)) return;
  const type = node['@type'];
  if (typeof type === 'string' && (type.includes('.rbac.v3.RBAC') || type.includes('.tls.v3.'))) {
    out.set(path, JSON.stringify(node));
    return;
  }
  for (const [k, v] of Object.entries(node)) {
    if (k === 'transport_socket') out.set(`${path}.${k}`, JSON.stringify(v));
    else securityParts(v, path ? `${path}.${k}` : k, out);
  }
}

function securityChanges(before: Json, after: Json): string[] {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  securityParts(before, '', a);
  securityParts(after, '', b);
  const changed = new Set<string>();
  for (const [k, v] of a) if (b.get(k) !== v) changed.add(k);
  for (const k of b.keys()) if (!a.has(k)) changed.add(k);
  return [...changed].sort();
}

function cloneResources(r: PatchableResources): PatchableResources {
  return {
    listeners: [...r.listeners],
    routes: [...r.routes],
    clusters: [...r.clusters],
    endpoints: [...r.endpoints],
    secrets: [...r.secrets],
  };
}

function insertFilter(
  listener: JsonObject,
  op: NonNullable<PatchOperation['insertHttpFilter']>,
): { result: JsonObject; found: boolean } {
  let found = false;
  const anchor = op.before ?? op.after!;
  const patchHcm = (hcm: JsonObject): JsonObject => {
    const filters = Array.isArray(hcm.http_filters) ? (hcm.http_filters as JsonObject[]) : [];
    const at = filters.findIndex((f) => f.name === anchor);
    if (at < 0) return hcm;
    found = true;
    const copy = filters.slice();
    copy.splice(op.before !== undefined ? at : at + 1, 0, op.filter as JsonObject);
    return { ...hcm, http_filters: copy };
  };
  const result: JsonObject = { ...listener };
  const api = listener.api_listener;
  if (isObject(api) && isObject(api.api_listener) && api.api_listener['@type'] === HCM_TYPE) {
    result.api_listener = { ...api, api_listener: patchHcm(api.api_listener) };
  }
  if (Array.isArray(listener.filter_chains)) {
    result.filter_chains = (listener.filter_chains as JsonObject[]).map((fc) => ({
      ...fc,
      filters: Array.isArray(fc.filters)
        ? (fc.filters as JsonObject[]).map((f) =>
            isObject(f.typed_config) && f.typed_config['@type'] === HCM_TYPE
              ? { ...f, typed_config: patchHcm(f.typed_config) }
              : f,
          )
        : fc.filters,
    }));
  }
  return { result, found };
}

/** Applies one patch to a copy of `resources`; returns the new resources or why not. */
function applyOne(
  patch: EnvoyPatch,
  resources: PatchableResources,
  resolve: ServiceTargetResolver | undefined,
  validate: ResourceValidator | undefined,
  nativeRules: boolean,
): { resources: PatchableResources; notFound: string[]; errors: string[]; touched: string[] } {
  const out = cloneResources(resources);
  const notFound: string[] = [];
  const errors: string[] = [];
  const touched = new Set<string>();
  // Which operations changed each resource, so a validation failure names them.
  const touchedBy = new Map<string, number[]>();
  const touch = (label: string, i: number): void => {
    touched.add(label);
    touchedBy.set(label, [...(touchedBy.get(label) ?? []), i]);
  };
  patch.spec.patches.forEach((op, i) => {
    const where = `spec.patches[${i}]`;
    if (op.add) {
      const info = TYPE_INFO[op.add.type];
      const name = op.add.resource[info.nameField];
      if (typeof name !== 'string' || name === '') {
        errors.push(
          `${where}.add.resource.${info.nameField}: a new ${op.add.type} needs a ${info.nameField}`,
        );
        return;
      }
      if (out[info.key].some((r) => r[info.nameField] === name)) {
        errors.push(
          `${where}.add: a ${op.add.type} named "${name}" already exists; patch it with a target instead`,
        );
        return;
      }
      out[info.key] = [...out[info.key], op.add.resource].sort((a, b) =>
        String(a[info.nameField]) < String(b[info.nameField]) ? -1 : 1,
      );
      touch(`${op.add.type}/${name}`, i);
      return;
    }
    const target = op.target!;
    const info = TYPE_INFO[target.type];
    const names = target.name
      ? [target.name]
      : resolve
        ? resolve(
            target.type,
            {
              name: target.service!.name,
              namespace: target.service!.namespace ?? patch.metadata.namespace,
              port: target.service!.port,
            },
            out,
          )
        : [];
    const indexes = names
      .map((n) => out[info.key].findIndex((r) => r[info.nameField] === n))
      .filter((x) => x >= 0);
    if (indexes.length === 0) {
      const what = target.name
        ? `${target.type} "${target.name}"`
        : `${target.type} for service ${target.service!.namespace ?? patch.metadata.namespace}/${target.service!.name}${target.service!.port ? `:${target.service!.port}` : ''} (the proxy does not reach that service)`;
      notFound.push(`operation ${i}: no ${what} on this proxy`);
      return;
    }
    for (const idx of indexes) {
      const before = out[info.key][idx]!;
      const label = `${target.type}/${String(before[info.nameField])}`;
      try {
        let after: Json;
        if (op.jsonPatch) after = applyJsonPatch(before, op.jsonPatch as JsonPatchOp[]);
        else if (op.merge) after = protoMerge(info.message, before, op.merge);
        else {
          const r = insertFilter(before, op.insertHttpFilter!);
          if (!r.found) {
            errors.push(
              `${where}.insertHttpFilter: ${label} has no HTTP filter named "${op.insertHttpFilter!.before ?? op.insertHttpFilter!.after}"`,
            );
            continue;
          }
          after = r.result;
        }
        if (!isObject(after)) throw new Error('the result is not an object');
        if (after[info.nameField] !== before[info.nameField]) {
          errors.push(`${where}: ${label}: a patch may not rename a resource (use add for a new one)`);
          continue;
        }
        if (!patch.spec.allowSecurityOverride) {
          const changed = securityChanges(before, after);
          if (changed.length > 0) {
            errors.push(
              `${where}: ${label}: changes ${changed.join(', ')} (TLS or RBAC); set spec.allowSecurityOverride: true if that is intended`,
            );
            continue;
          }
        }
        const list = out[info.key].slice();
        list[idx] = after;
        out[info.key] = list;
        touch(label, i);
      } catch (err) {
        errors.push(`${where}: ${label}: ${(err as Error).message}`);
      }
    }
  });
  // Everything the patch changed must still be valid Envoy config, checked as Envoy would.
  for (const label of touched) {
    const [type, ...rest] = label.split('/');
    const name = rest.join('/');
    const info = TYPE_INFO[type as PatchResourceType];
    const res = out[info.key].find((r) => r[info.nameField] === name);
    const problems = [...checkJson(info.message, res), ...(validate?.(info.message, res) ?? [])];
    const ops = (touchedBy.get(label) ?? []).map((i) => `spec.patches[${i}]`).join(', ');
    for (const p of problems) errors.push(`${ops}: ${label}: ${p.path ? `${p.path}: ` : ''}${p.message}`);
  }
  // And the set must still hang together: a route to a cluster the proxy does not have is
  // accepted by Envoy over RDS, then answers 503 on every call. Only problems the patch brought
  // count, blamed on the operations that touched the resource (all of them when it touched none,
  // say a cluster removed under a route).
  // The same goes for what Envoy checks while building config (unique domains, the RE2 program
  // size, the router last, ...; see envoy-rules.ts): each of those NACKs on every proxy.
  if (touched.size > 0) {
    const setProblems = (r: PatchableResources): string[] => [
      ...checkReferences(r),
      ...(nativeRules ? checkEnvoyRules(r) : []),
    ];
    const existing = new Set(setProblems(resources));
    const typeOfKey = new Map(Object.entries(TYPE_INFO).map(([type, info]) => [info.key as string, type]));
    const all = patch.spec.patches.map((_, i) => `spec.patches[${i}]`).join(', ');
    for (const problem of setProblems(out)) {
      if (existing.has(problem)) continue;
      const colon = problem.indexOf(': ');
      const owner = problem.slice(0, colon);
      const slash = owner.indexOf('/');
      const label = `${typeOfKey.get(owner.slice(0, slash)) ?? owner.slice(0, slash)}/${owner.slice(slash + 1)}`;
      const ops = (touchedBy.get(label) ?? []).map((i) => `spec.patches[${i}]`).join(', ') || all;
      errors.push(`${ops}: ${label}: ${problem.slice(colon + 2)}`);
    }
  }
  return { resources: out, notFound, errors, touched: [...touched].sort() };
}

/** Applies every selected patch in order; a failing patch is skipped whole. */
export function applyPatches(
  resources: PatchableResources,
  subject: PatchSubject,
  patches: readonly EnvoyPatch[],
  opts: {
    meshNamespace: string;
    resolve?: ServiceTargetResolver;
    validate?: ResourceValidator;
    skip?: ReadonlySet<string>;
    /**
     * Check the rules Envoy enforces while building config natively (envoy-rules.ts; default
     * true). Off only to show Envoy itself refusing what those rules would have caught.
     */
    nativeRules?: boolean;
  },
): { resources: PatchableResources; results: PatchResult[] } {
  let current = resources;
  const results: PatchResult[] = [];
  for (const patch of orderPatches(patches)) {
    const id = `${patch.metadata.namespace}/${patch.metadata.name}`;
    if (!selects(patch, subject, opts.meshNamespace) || opts.skip?.has(id)) {
      results.push({ patch: id, selected: false, applied: false, notFound: [], errors: [], touched: [] });
      continue;
    }
    // Envoy's own validation rules unless the caller brings another validator.
    const r = applyOne(
      patch,
      current,
      opts.resolve,
      opts.validate ?? validateRules,
      opts.nativeRules ?? true,
    );
    const applied = r.errors.length === 0 && r.notFound.length === 0;
    if (applied) current = r.resources;
    results.push({
      patch: id,
      selected: true,
      applied,
      notFound: r.notFound,
      errors: r.errors,
      touched: r.touched,
    });
  }
  return { resources: current, results };
}
