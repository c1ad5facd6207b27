/**
 * The difference between two JSON documents as an RFC 6902 JSON Patch: applying the result to
 * `before` with {@link applyJsonPatch} gives `after` (a test checks that round trip). Objects are
 * compared key by key; arrays element by element, with additions and removals at the tail, which
 * is how Envoy config lists (filter chains, routes, virtual hosts) usually change.
 */
import type { JsonPatchOp } from './json-patch';

const escapeToken = (token: string): string => token.replace(/~/g, '~0').replace(/\//g, '~1');

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Operations turning `before` into `after`, rooted at `path`. */
export function diffJson(before: unknown, after: unknown, path = ''): JsonPatchOp[] {
  if (same(before, after)) return [];
  if (isObject(before) && isObject(after)) {
    const ops: JsonPatchOp[] = [];
    for (const k of Object.keys(before).sort()) {
      if (!(k in after)) ops.push({ op: 'remove', path: `${path}/${escapeToken(k)}` });
    }
    for (const k of Object.keys(after).sort()) {
      const p = `${path}/${escapeToken(k)}`;
      if (!(k in before)) ops.push({ op: 'add', path: p, value: after[k] });
      else ops.push(...diffJson(before[k], after[k], p));
    }
    return ops;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const ops: JsonPatchOp[] = [];
    const common = Math.min(before.length, after.length);
    for (let i = 0; i < common; i++) ops.push(...diffJson(before[i], after[i], `${path}/${i}`));
    // Remove from the end first so earlier indices stay valid.
    for (let i = before.length - 1; i >= common; i--) ops.push({ op: 'remove', path: `${path}/${i}` });
    for (let i = common; i < after.length; i++)
      ops.push({ op: 'add', path: `${path}/${i}`, value: after[i] });
    return ops;
  }
  return [{ op: 'replace', path, value: after }];
}
