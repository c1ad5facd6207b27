/**
 * Status conditions on Weft's own kinds (MeshConfig, EnvoyPatch): the conditions the compiler
 * reports about such an object become its `status.conditions`, in the Kubernetes style, with
 * `observedGeneration`. SMI objects have no status of their own in the SMI CRDs, so their
 * conditions go out as Events instead (see `events.ts`).
 *
 * A status is written only when it changes (ignoring transition times), and an unchanged
 * condition keeps its `lastTransitionTime`, so steady state costs no API writes.
 */
import { type Logger, logger } from '../log';
import type { Condition } from '../smi/model';
import type { KubeClient, KubeObject } from './client';

const log: Logger = logger('status');

/** Weft's kinds that carry a status subresource, with their REST names. */
export const STATUS_KINDS: Readonly<Record<string, { group: string; version: string; plural: string }>> = {
  MeshConfig: { group: 'weft.dev', version: 'v1alpha1', plural: 'meshconfigs' },
  EnvoyPatch: { group: 'weft.dev', version: 'v1alpha1', plural: 'envoypatches' },
};

/** One Kubernetes-style status condition. */
export interface StatusCondition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

/** The status Weft writes. */
export interface WeftStatus {
  observedGeneration?: number;
  conditions: StatusCondition[];
}

/**
 * Computes an object's status from the compiler's conditions about it. Several conditions of one
 * type (say two failing operations of a patch) merge into one, with their messages joined, since
 * Kubernetes keeps one condition per type. No condition at all means the object was read and used:
 * `Accepted=True`.
 */
export function statusFor(obj: KubeObject, conditions: readonly Condition[], now: Date): WeftStatus {
  const generation = obj.metadata?.generation;
  const previous = (obj as { status?: Partial<WeftStatus> }).status?.conditions ?? [];
  const byType = new Map<string, Condition[]>();
  for (const c of conditions) {
    const list = byType.get(c.type) ?? [];
    list.push(c);
    byType.set(c.type, list);
  }
  if (!byType.has('Accepted')) {
    byType.set('Accepted', [
      {
        object: '',
        type: 'Accepted',
        status: 'True',
        severity: 'Warning',
        reason: 'Accepted',
        message: 'Weft read this object and uses it',
      },
    ]);
  }
  const out: StatusCondition[] = [];
  for (const type of [...byType.keys()].sort()) {
    const list = byType.get(type)!;
    // A False among several decides the condition: something about this aspect failed.
    const status = list.some((c) => c.status === 'False') ? 'False' : 'True';
    const decisive = list.filter((c) => c.status === status);
    const reason = decisive[0]!.reason;
    const message = [...new Set(decisive.map((c) => c.message))].join('; ');
    const before = previous.find((p) => p.type === type);
    const unchanged = before && before.status === status && before.reason === reason;
    out.push({
      type,
      status,
      reason,
      message,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
      lastTransitionTime:
        unchanged && before.lastTransitionTime ? before.lastTransitionTime : now.toISOString(),
    });
  }
  return { ...(generation !== undefined ? { observedGeneration: generation } : {}), conditions: out };
}

/** JSON with object keys in sorted order, so equal values give equal text whatever their key order. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * Whether the stored status `a` already says what `b` says. The API server hands objects back with
 * their keys in its own (sorted) order, not the order Weft wrote them in, so the comparison is on
 * canonical JSON; conditions are compared by type, and `lastTransitionTime` is left out, since
 * {@link statusFor} keeps it for a condition that did not change and a new time alone is no news.
 */
export function sameStatus(a: Partial<WeftStatus> | undefined, b: WeftStatus): boolean {
  const strip = (s: Partial<WeftStatus> | undefined): string =>
    canonical({
      observedGeneration: s?.observedGeneration,
      conditions: [...(s?.conditions ?? [])]
        .map(({ lastTransitionTime: _t, ...rest }) => rest)
        .sort((x, y) => (x.type < y.type ? -1 : x.type > y.type ? 1 : 0)),
    });
  return strip(a) === strip(b);
}

/** Writes status to Weft's own objects, only when it changed. */
export class StatusWriter {
  /** Status writes so far (for metrics and tests). */
  writes = 0;

  constructor(private readonly client: KubeClient) {}

  /**
   * Brings the status of every given object of a {@link STATUS_KINDS} kind up to date with the
   * conditions. `objects` are the live objects (as the informers hold them).
   */
  async publish(
    objects: readonly KubeObject[],
    conditions: readonly Condition[],
    now = new Date(),
  ): Promise<void> {
    const byObject = new Map<string, Condition[]>();
    for (const c of conditions) {
      const list = byObject.get(c.object) ?? [];
      list.push(c);
      byObject.set(c.object, list);
    }
    for (const obj of objects) {
      const kind = obj.kind ?? '';
      const rest = STATUS_KINDS[kind];
      const ns = obj.metadata?.namespace;
      const name = obj.metadata?.name;
      if (!rest || !ns || !name) continue;
      const status = statusFor(obj, byObject.get(`${kind}/${ns}/${name}`) ?? [], now);
      if (sameStatus((obj as { status?: Partial<WeftStatus> }).status, status)) continue;
      const path = `/apis/${rest.group}/${rest.version}/namespaces/${ns}/${rest.plural}/${name}/status`;
      try {
        await this.client.request('PATCH', path, { status }, 'application/merge-patch+json');
        this.writes++;
      } catch (err) {
        log.warn('could not write status', {
          object: `${kind}/${ns}/${name}`,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
  }
}
