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

/**
 * A unified-style diff of two texts, line by line: hunks headed `@@ -a,n +b,m @@` with `context`
 * unchanged lines around each change, removed lines prefixed `-`, added `+`, unchanged ` `.
 * Empty when the texts are equal. Envoy resources are at most a few hundred lines of YAML, so the
 * quadratic longest-common-subsequence table is cheap and gives the smallest diff.
 */
export function unifiedDiff(before: string, after: string, context = 3): string[] {
  const a = before.split('\n');
  const b = after.split('\n');
  if (a[a.length - 1] === '') a.pop();
  if (b[b.length - 1] === '') b.pop();
  // lcs[i][j]: length of the longest common subsequence of a[i..] and b[j..].
  const lcs: number[][] = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    for (let j = b.length - 1; j >= 0; j--) {
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
    }
  }
  type Line = { mark: ' ' | '-' | '+'; text: string; ai: number; bi: number };
  const lines: Line[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      lines.push({ mark: ' ', text: a[i]!, ai: i++, bi: j++ });
    } else if (i < a.length && (j >= b.length || lcs[i + 1]![j]! >= lcs[i]![j + 1]!)) {
      // Removals first on a tie, as diff(1) prints them.
      lines.push({ mark: '-', text: a[i]!, ai: i++, bi: j });
    } else {
      lines.push({ mark: '+', text: b[j]!, ai: i, bi: j++ });
    }
  }
  const changed = lines.map((l, k) => (l.mark === ' ' ? -1 : k)).filter((k) => k >= 0);
  if (changed.length === 0) return [];
  // Group changes whose context windows touch into one hunk.
  const hunks: [number, number][] = [];
  for (const k of changed) {
    const from = Math.max(0, k - context);
    const to = Math.min(lines.length - 1, k + context);
    const last = hunks[hunks.length - 1];
    if (last && from <= last[1] + 1) last[1] = to;
    else hunks.push([from, to]);
  }
  const out: string[] = [];
  for (const [from, to] of hunks) {
    const slice = lines.slice(from, to + 1);
    const olds = slice.filter((l) => l.mark !== '+').length;
    const news = slice.filter((l) => l.mark !== '-').length;
    const first = slice[0]!;
    out.push(`@@ -${first.ai + (olds > 0 ? 1 : 0)},${olds} +${first.bi + (news > 0 ? 1 : 0)},${news} @@`);
    for (const l of slice) out.push(`${l.mark}${l.text}`);
  }
  return out;
}
