/**
 * RFC 6902 JSON Patch over plain JSON, with RFC 6901 pointers. Pure: the input is never mutated;
 * the result shares untouched subtrees with it. An operation that cannot apply throws a
 * {@link PatchError} naming the operation's index, its op and path, and why.
 */

/** One JSON Patch operation. */
export type JsonPatchOp =
  | { op: 'add'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'replace'; path: string; value: unknown }
  | { op: 'move'; from: string; path: string }
  | { op: 'copy'; from: string; path: string }
  | { op: 'test'; path: string; value: unknown };

/** Why an operation failed, with where. */
export class PatchError extends Error {
  constructor(
    /** Index of the failing operation in its list. */
    readonly index: number,
    /** The pointer that failed. */
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'PatchError';
  }
}

type Json = unknown;

/** Splits a JSON pointer into unescaped tokens. */
export function parsePointer(pointer: string): string[] {
  if (pointer === '') return [];
  if (!pointer.startsWith('/'))
    throw new Error(`"${pointer}" is not a JSON pointer (it must start with "/")`);
  return pointer
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arrayIndex(token: string, length: number, forAdd: boolean): number {
  if (forAdd && token === '-') return length;
  if (!/^(0|[1-9]\d*)$/.test(token)) throw new Error(`"${token}" is not an array index`);
  const i = Number(token);
  if (i > length || (!forAdd && i === length))
    throw new Error(`index ${i} is out of bounds (length ${length})`);
  return i;
}

/** Reads the value at a pointer; throws when absent. */
export function getAt(doc: Json, pointer: string): Json {
  let cur = doc;
  for (const t of parsePointer(pointer)) {
    if (Array.isArray(cur)) cur = cur[arrayIndex(t, cur.length, false)];
    else if (isObject(cur) && Object.hasOwn(cur, t)) cur = cur[t];
    else throw new Error(`no value at "${pointer}" (missing "${t}")`);
  }
  return cur;
}

/** Returns a copy of `doc` with `fn` applied to the parent container of `tokens`' last element. */
function updateAt(doc: Json, tokens: string[], fn: (parent: Json, last: string) => Json): Json {
  if (tokens.length === 0) throw new Error('the whole document cannot be the parent');
  const [head, ...rest] = tokens as [string, ...string[]];
  if (rest.length === 0) return fn(doc, head);
  if (Array.isArray(doc)) {
    const i = arrayIndex(head, doc.length, false);
    const copy = doc.slice();
    copy[i] = updateAt(doc[i], rest, fn);
    return copy;
  }
  if (isObject(doc)) {
    if (!Object.hasOwn(doc, head)) throw new Error(`missing "${head}"`);
    return { ...doc, [head]: updateAt(doc[head], rest, fn) };
  }
  throw new Error(`cannot descend into a ${doc === null ? 'null' : typeof doc} at "${head}"`);
}

function add(doc: Json, pointer: string, value: Json): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) return value;
  return updateAt(doc, tokens, (parent, last) => {
    if (Array.isArray(parent)) {
      const i = arrayIndex(last, parent.length, true);
      const copy = parent.slice();
      copy.splice(i, 0, value);
      return copy;
    }
    if (isObject(parent)) return { ...parent, [last]: value };
    throw new Error(`cannot add "${last}" to a ${parent === null ? 'null' : typeof parent}`);
  });
}

function remove(doc: Json, pointer: string): Json {
  const tokens = parsePointer(pointer);
  if (tokens.length === 0) throw new Error('cannot remove the whole document');
  return updateAt(doc, tokens, (parent, last) => {
    if (Array.isArray(parent)) {
      const i = arrayIndex(last, parent.length, false);
      const copy = parent.slice();
      copy.splice(i, 1);
      return copy;
    }
    if (isObject(parent) && Object.hasOwn(parent, last)) {
      const { [last]: _, ...rest } = parent;
      return rest;
    }
    throw new Error(`no value at "${pointer}" to remove`);
  });
}

function deepEqual(a: Json, b: Json): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b))
    return a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isObject(a) && isObject(b)) {
    const ka = Object.keys(a);
    return (
      ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]))
    );
  }
  return false;
}

/** Applies a list of operations in order; all or nothing. */
export function applyJsonPatch(doc: Json, ops: readonly JsonPatchOp[]): Json {
  let cur = doc;
  ops.forEach((op, index) => {
    try {
      switch (op.op) {
        case 'add':
          cur = add(cur, op.path, op.value);
          break;
        case 'remove':
          cur = remove(cur, op.path);
          break;
        case 'replace':
          getAt(cur, op.path);
          cur = add(remove(cur, op.path), op.path, op.value);
          break;
        case 'move': {
          if (op.path.startsWith(`${op.from}/`)) throw new Error('cannot move a value into its own child');
          const v = getAt(cur, op.from);
          cur = add(remove(cur, op.from), op.path, v);
          break;
        }
        case 'copy':
          cur = add(cur, op.path, structuredClone(getAt(cur, op.from)));
          break;
        case 'test':
          if (!deepEqual(getAt(cur, op.path), op.value)) throw new Error('test failed: the value differs');
          break;
        default:
          throw new Error(`unknown op "${(op as { op: string }).op}"`);
      }
    } catch (err) {
      if (err instanceof PatchError) throw err;
      throw new PatchError(
        index,
        op.path,
        `operation ${index} (${op.op} ${op.path}): ${(err as Error).message}`,
      );
    }
  });
  return cur;
}
