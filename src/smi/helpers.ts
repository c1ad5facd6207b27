/**
 * Small pure helpers the build stages share: ordering, keys, label selection and the wording of
 * "not found" conditions.
 */

import { type IdentityModel, identityOf, type WorkloadRef } from './model';
import type { Normalized } from './normalize';

/** Three-way comparison of two strings or two numbers, for sort callbacks. */
export function cmp(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** `<namespace>/<name>`, the key objects of one kind share within the build. */
export function key(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/** `<namespace>/<name>` of a model object. */
export function nsName(x: { readonly namespace: string; readonly name: string }): string {
  return key(x.namespace, x.name);
}

/** The object a condition about `o` names. */
export function subjectOf(o: Normalized): { kind: string; namespace: string; name: string } {
  return { kind: o.kind, namespace: o.meta.namespace, name: o.meta.name };
}

/** Whether `x` is a plain mapping (not null, not an array). */
export function isRecord(x: unknown): x is Readonly<Record<string, unknown>> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Whether every key of `selector` is in `labels` with the same value. */
export function selects(
  selector: Readonly<Record<string, string>>,
  labels: Readonly<Record<string, string>>,
): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Orders workload references by namespace, name, then kind. */
export function compareRefs(a: WorkloadRef, b: WorkloadRef): number {
  return cmp(a.namespace, b.namespace) || cmp(a.name, b.name) || cmp(a.kind, b.kind);
}

/** Workload references sorted by {@link compareRefs}, each once. */
export function uniqueRefs(refs: readonly WorkloadRef[]): WorkloadRef[] {
  const sorted = [...refs].sort(compareRefs);
  return sorted.filter((r, i) => i === 0 || compareRefs(r, sorted[i - 1]!) !== 0);
}

/**
 * Items of one namespace indexed by label, so a selector looks only at items that have at least
 * one of its labels instead of at every item.
 */
export interface LabelIndex<T> {
  readonly byLabel: ReadonlyMap<string, readonly T[]>;
  readonly labelsOf: (item: T) => Readonly<Record<string, string>>;
}

function labelIndex<T>(
  items: readonly T[],
  labelsOf: (item: T) => Readonly<Record<string, string>>,
): LabelIndex<T> {
  const byLabel = new Map<string, T[]>();
  for (const item of items) {
    for (const [k, v] of Object.entries(labelsOf(item))) {
      const key = `${k}=${v}`;
      const list = byLabel.get(key);
      if (list) list.push(item);
      else byLabel.set(key, [item]);
    }
  }
  return { byLabel, labelsOf };
}

/**
 * The items a non-empty selector selects, in index order: candidates come from the selector's
 * rarest label, then every label is checked.
 */
export function selectFrom<T>(
  index: LabelIndex<T> | undefined,
  selector: Readonly<Record<string, string>>,
): T[] {
  if (!index) return [];
  let candidates: readonly T[] | undefined;
  for (const [k, v] of Object.entries(selector)) {
    const list = index.byLabel.get(`${k}=${v}`) ?? [];
    if (candidates === undefined || list.length < candidates.length) candidates = list;
  }
  return (candidates ?? []).filter((item) => selects(selector, index.labelsOf(item)));
}

/** Per-namespace label indexes. */
export function labelIndexes<T>(
  items: readonly T[],
  namespaceOf: (item: T) => string,
  labelsOf: (item: T) => Readonly<Record<string, string>>,
): Map<string, LabelIndex<T>> {
  const out = new Map<string, LabelIndex<T>>();
  for (const [ns, list] of groupBy(items, namespaceOf)) out.set(ns, labelIndex(list, labelsOf));
  return out;
}

/** Groups items by a key, keeping their order within each group. */
export function groupBy<T>(items: readonly T[], keyOf: (item: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const item of items) {
    const k = keyOf(item);
    const list = out.get(k);
    if (list) list.push(item);
    else out.set(k, [item]);
  }
  return out;
}

/** `1 thing`, `2 things`: a count and an English noun. */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** Age order: older first; objects without a timestamp count as newest; ties broken by name. */
export function compareAge(a: Normalized, b: Normalized): number {
  const ta = a.meta.creationTimestamp ?? Number.POSITIVE_INFINITY;
  const tb = b.meta.creationTimestamp ?? Number.POSITIVE_INFINITY;
  return ta !== tb ? (ta < tb ? -1 : 1) : cmp(a.meta.name, b.meta.name);
}

/**
 * The end of a "not found" sentence: `is not a <Kind> in namespace <ns>`, or, when an object of that
 * name was given but rejected, a pointer to that object's own condition.
 */
export function notFound(
  rejected: ReadonlySet<string>,
  kind: string,
  namespace: string,
  name: string,
): string {
  return rejected.has(`${kind}/${namespace}/${name}`)
    ? `names ${kind} ${namespace}/${name}, which was rejected (see its own condition)`
    : `is not ${article(kind)} ${kind} in namespace ${namespace}`;
}

/** `a` or `an` before a kind name, by how it is read aloud (`an HTTPRouteGroup`, `a UDPRoute`). */
function article(kind: string): string {
  return /^(HTTP|[AEIO])/.test(kind) ? 'an' : 'a';
}

/** The fix that goes with {@link notFound}. */
export function createOrFix(
  rejected: ReadonlySet<string>,
  kind: string,
  namespace: string,
  name: string,
): string {
  return rejected.has(`${kind}/${namespace}/${name}`)
    ? `fix ${kind} ${namespace}/${name}`
    : `create the ${kind} or fix the name`;
}

/** Port numbers as a message lists them: `80, 443`. */
export function portList(ports: readonly number[]): string {
  return ports.join(', ');
}

/** The identity of ServiceAccount `<namespace>/<serviceAccount>` in `trustDomain`. */
export function identityModel(namespace: string, serviceAccount: string, trustDomain: string): IdentityModel {
  return { namespace, serviceAccount, identity: identityOf(namespace, serviceAccount, trustDomain) };
}
