/**
 * Interning of subscription name sets. Proxies of one group usually subscribe to the same names
 * (every Envoy of a group asks for the same endpoints), so streams share one frozen set per
 * distinct subscription instead of each holding its own copy of thousands of strings.
 */
import { contentHash, type EncodedResource, subsetVersion, type TypeSnapshot } from '../cache/snapshot';

const interned = new Map<string, WeakRef<ReadonlySet<string>>>();
const registry = new FinalizationRegistry<string>((key) => {
  if (interned.get(key)?.deref() === undefined) interned.delete(key);
});

/** Returns a shared read-only set equal to `names` (order and duplicates ignored). */
export function internNames(names: Iterable<string>): ReadonlySet<string> {
  const sorted = [...new Set(names)].sort();
  if (sorted.length === 0) return EMPTY;
  const key = contentHash(...sorted);
  const hit = interned.get(key)?.deref();
  if (hit) return hit;
  const set: ReadonlySet<string> = new Set(sorted);
  interned.set(key, new WeakRef(set));
  registry.register(set, key);
  return set;
}

const EMPTY: ReadonlySet<string> = new Set();

/** Does `names` contain every key of `resources`? (Then the whole shared map can be sent.) */
export function coversAll(names: ReadonlySet<string>, resources: ReadonlyMap<string, unknown>): boolean {
  if (names.size < resources.size) return false;
  for (const k of resources.keys()) if (!names.has(k)) return false;
  return true;
}

const coverMemo = new WeakMap<ReadonlyMap<string, unknown>, WeakMap<ReadonlySet<string>, boolean>>();

/** {@link coversAll}, memoized per (interned set, immutable map) pair: streams share the answer. */
export function coversAllMemo(names: ReadonlySet<string>, resources: ReadonlyMap<string, unknown>): boolean {
  let inner = coverMemo.get(resources);
  if (!inner) {
    inner = new WeakMap();
    coverMemo.set(resources, inner);
  }
  let v = inner.get(names);
  if (v === undefined) {
    v = coversAll(names, resources);
    inner.set(names, v);
  }
  return v;
}

const subsetMemo = new WeakMap<TypeSnapshot, WeakMap<ReadonlySet<string>, string>>();

/** {@link subsetVersion}, memoized per (type snapshot, interned set). */
export function subsetVersionMemo(type: TypeSnapshot, names: ReadonlySet<string>): string {
  let inner = subsetMemo.get(type);
  if (!inner) {
    inner = new WeakMap();
    subsetMemo.set(type, inner);
  }
  let v = inner.get(names);
  if (v === undefined) {
    v = coversAllMemo(names, type.resources) ? type.version : subsetVersion(type, names);
    inner.set(names, v);
  }
  return v;
}

/** What changed between two snapshots of one type. */
export interface TypeDiff {
  /** Resources new or different in `next`, by name. */
  readonly changed: readonly EncodedResource[];
  /** Names in `prev` missing from `next`. */
  readonly removed: readonly string[];
}

const diffMemo = new WeakMap<TypeSnapshot, WeakMap<TypeSnapshot, TypeDiff>>();

/** The diff from `prev` to `next`, computed once and shared by every stream that needs it. */
export function diffTypes(prev: TypeSnapshot, next: TypeSnapshot): TypeDiff {
  let inner = diffMemo.get(prev);
  if (!inner) {
    inner = new WeakMap();
    diffMemo.set(prev, inner);
  }
  let d = inner.get(next);
  if (!d) {
    const changed: EncodedResource[] = [];
    const removed: string[] = [];
    for (const [name, r] of next.resources)
      if (prev.resources.get(name)?.version !== r.version) changed.push(r);
    for (const name of prev.resources.keys()) if (!next.resources.has(name)) removed.push(name);
    d = { changed, removed };
    inner.set(next, d);
  }
  return d;
}
