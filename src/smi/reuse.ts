/**
 * Reuse between builds: a stage that runs only when its inputs changed, and model objects that keep
 * their identity when they come out equal.
 */

import type { Condition } from './model';

/**
 * One stage of a build: its result, the conditions it reported, and the values it was computed
 * from. A stage reads nothing but its `deps` (and constants), so when every dep is the same value
 * (`===`) as in the previous build, the previous result is the result.
 */
export interface Stage<T> {
  readonly deps: readonly unknown[];
  readonly value: T;
  readonly conditions: readonly Condition[];
}

/** `prev` when every dep is the same value as `prev`'s, else a fresh run of `compute`. */
export function stage<T>(
  prev: Stage<T> | undefined,
  deps: readonly unknown[],
  compute: (conditions: Condition[]) => T,
): Stage<T> {
  if (prev && prev.deps.length === deps.length && prev.deps.every((d, i) => d === deps[i])) return prev;
  const conditions: Condition[] = [];
  const value = compute(conditions);
  return { deps, value, conditions };
}

/**
 * Deep equality of plain model data, key order included (two objects that differ only in key order
 * serialize differently, and fingerprints and golden files see the serialization), and of the Maps
 * and Sets stages pass on.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (a instanceof Map || a instanceof Set) {
    // Build-time indexes, compared in iteration order (a difference in order only costs a rebuild).
    if (a.constructor !== b.constructor || a.size !== (b as typeof a).size) return false;
    const ea = [...a.entries()];
    const eb = [...(b as typeof a).entries()];
    return ea.every((e, i) => sameData(e[0], eb[i]![0]) && sameData(e[1], eb[i]![1]));
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Readonly<Record<string, unknown>>;
  const rb = b as Readonly<Record<string, unknown>>;
  for (let i = 0; i < ka.length; i++) {
    const k = ka[i]!;
    if (k !== kb[i] || !sameData(ra[k], rb[k])) return false;
  }
  return true;
}

/** Whether two lists hold the same items, by identity, in the same order. */
export function sameList<T>(a: readonly T[] | undefined, b: readonly T[]): a is readonly T[] {
  return a !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);
}

/** `prev` when it is equal to `fresh`, so that later stages see an unchanged value as the same value. */
export function kept<T>(prev: T | undefined, fresh: T): T {
  return prev !== undefined && sameData(prev, fresh) ? prev : fresh;
}

/**
 * Swaps each freshly built item for the previous build's item of the same key when the two are
 * equal, and returns `prev` itself when nothing differs. Unchanged model objects thus keep their
 * identity across builds, which is what lets translation cache per object.
 */
export function reuse<T>(
  fresh: readonly T[],
  prev: readonly T[] | undefined,
  keyOf: (item: T) => string,
): readonly T[] {
  if (!prev) return fresh;
  const before = new Map(prev.map((p) => [keyOf(p), p]));
  let same = fresh.length === prev.length;
  const out = fresh.map((item, i) => {
    const old = before.get(keyOf(item));
    const kept = old !== undefined && sameData(old, item) ? old : item;
    if (kept !== prev[i]) same = false;
    return kept;
  });
  return same ? prev : out;
}
