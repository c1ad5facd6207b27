/**
 * Random but reproducible edits of an input set, for checking that incremental builds match
 * builds from scratch.
 */
import { shuffled } from './helpers';

/** Plain JSON, as parsed from YAML. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every leaf of a JSON value, as the path to it. */
export function leaves(
  value: Json,
  path: (string | number)[] = [],
  out: (string | number)[][] = [],
): (string | number)[][] {
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) leaves(v, [...path, i], out);
  } else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) leaves(v, [...path, k], out);
  else out.push(path);
  return out;
}

/** A copy of `o` with the leaf at `path` replaced by `to`. */
function withLeaf(o: Json, path: readonly (string | number)[], to: Json): Json {
  const copy = structuredClone(o);
  let at: Json = copy;
  for (const step of path.slice(0, -1)) at = (at as Record<string | number, Json>)[step]!;
  (at as Record<string | number, Json>)[path.at(-1)!] = to;
  return copy;
}

/** Every distinct string in `objects`, to change values into names used elsewhere. */
export function stringsOf(objects: readonly Json[]): string[] {
  return [
    ...new Set(
      objects.flatMap((o) =>
        leaves(o)
          .map((p) => p.reduce<Json>((v, step) => (v as Record<string | number, Json>)[step]!, o))
          .filter((v): v is string => typeof v === 'string'),
      ),
    ),
  ];
}

/**
 * Edits an input set the way a cluster does, one object at a time: removes an object, brings a
 * removed one back (the very same object), replaces one by a copy with one value changed (often to
 * a name used elsewhere, so references come and go) or by a copy its schema rejects, adds a second
 * copy of one, or reorders.
 */
export function edit(
  objects: Json[],
  removed: Json[],
  strings: readonly string[],
  next: () => number,
): Json[] {
  const out = [...objects];
  const i = out.length > 0 ? next() % out.length : 0;
  switch (next() % 7) {
    case 0:
      if (out.length > 0) removed.push(...out.splice(i, 1));
      break;
    case 1:
      if (removed.length > 0) out.push(...removed.splice(next() % removed.length, 1));
      break;
    case 2:
    case 3: {
      const paths = out.length > 0 ? leaves(out[i]!) : [];
      if (paths.length === 0) break;
      const path = paths[next() % paths.length]!;
      const old = path.reduce<Json>((v, step) => (v as Record<string | number, Json>)[step]!, out[i]!);
      const to: Json =
        typeof old === 'number'
          ? [0, old + 1, old * 2][next() % 3]!
          : typeof old === 'boolean'
            ? !old
            : strings[next() % strings.length]!;
      out[i] = withLeaf(out[i]!, path, to);
      break;
    }
    case 4:
      if (out.length > 0) out.push(structuredClone(out[i]!));
      break;
    case 5:
      if (out.length > 0) out[i] = { ...(out[i] as Record<string, Json>), spec: 'not a mapping' };
      break;
    default:
      return shuffled(out, next());
  }
  return out;
}
