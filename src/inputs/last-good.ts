/**
 * The last good version of each object. An edit that breaks an object's schema (a TrafficSplit
 * with `weight: ninety`) must not take that object out of the mesh: its previous version keeps
 * serving, and a `LastGoodKept` condition says the new one was refused and why. An object that was
 * never good is left out as before (`InvalidSpec`), and one that is gone from the inputs is
 * forgotten, so deleting it still deletes it.
 */
import { condition } from '../smi/conditions';
import type { Condition } from '../smi/model';
import { CLUSTER_SCOPED_KINDS, isProblem, normalizeObject } from '../smi/normalize';

type Raw = Readonly<Record<string, unknown>>;

function isRecord(x: unknown): x is Raw {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Kind, namespace (as the model defaults it) and name of a raw object; null without them. */
function identityOf(raw: Raw): { kind: string; namespace: string; name: string } | null {
  const metadata = isRecord(raw.metadata) ? raw.metadata : {};
  const kind = raw.kind;
  const name = metadata.name;
  if (typeof kind !== 'string' || kind === '' || typeof name !== 'string' || name === '') return null;
  const ns =
    typeof metadata.namespace === 'string' && metadata.namespace !== '' ? metadata.namespace : 'default';
  return { kind, namespace: CLUSTER_SCOPED_KINDS.has(kind) ? '' : ns, name };
}

/** Remembers each object's last version that matched its schema, from one set of inputs to the next. */
export class LastGoodObjects {
  private good = new Map<string, Raw>();

  /**
   * Returns `objects` with each one that does not match its schema replaced by its last good
   * version, when there is one, and a condition for each replacement.
   */
  apply(objects: readonly unknown[]): { objects: unknown[]; conditions: Condition[] } {
    const next = new Map<string, Raw>();
    const out: unknown[] = [];
    const conditions: Condition[] = [];
    for (const raw of objects) {
      const id = isRecord(raw) && typeof raw.apiVersion === 'string' ? identityOf(raw) : null;
      // Not an object, an unknown kind or an unserved version: the model reports those as before.
      const result = id && isRecord(raw) ? normalizeObject(raw, raw.apiVersion as string, id.kind) : null;
      if (!id || !isRecord(raw) || result === null) {
        out.push(raw);
        continue;
      }
      const key = `${id.kind}/${id.namespace}/${id.name}`;
      if (!isProblem(result)) {
        next.set(key, raw);
        out.push(raw);
        continue;
      }
      const previous = this.good.get(key);
      if (!previous) {
        out.push(raw);
        continue;
      }
      next.set(key, previous);
      out.push(previous);
      const where = result.field === '' ? 'the object' : result.field;
      const more =
        result.more > 0 ? ` (and ${result.more} more ${result.more === 1 ? 'problem' : 'problems'})` : '';
      conditions.push(
        condition(
          id,
          'LastGoodKept',
          `the new version is refused: ${where} ${result.problem}${more}; the last good version keeps serving; fix it to match ${String(raw.apiVersion)} ${id.kind}`,
          result.field === '' ? undefined : result.field,
        ),
      );
    }
    this.good = next;
    return { objects: out, conditions };
  }
}
