/**
 * Turns conditions into Kubernetes Events on the objects they are about (and status conditions on
 * Weft's own kinds). A condition is reported once while it holds, not on every recompute: the
 * writer remembers what it reported and reports again only if the condition goes away and comes
 * back, or its message changes.
 */
import { type Logger, logger } from '../log';
import type { Condition } from '../smi/model';
import type { KubeClient, KubeObject } from './client';

const log: Logger = logger('events');

/** Finds the live object a condition names (for its uid and apiVersion). */
export type ObjectLookup = (kind: string, namespace: string, name: string) => KubeObject | undefined;

function fingerprint(c: Condition): string {
  return `${c.object}\0${c.type}\0${c.reason}\0${c.field ?? ''}\0${c.message}`;
}

/** Writes Events for conditions, once each. */
export class EventWriter {
  private reported = new Set<string>();
  /** Events created so far (for metrics and tests). */
  created = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly component = 'weft',
  ) {}

  /**
   * Reports the conditions that are new since the last call. Conditions with status `True` for a
   * positive type (`Accepted`, `ResolvedRefs`) are not problems and are not reported, except with
   * severity `Error` (the object is used with a part, or its newest version, refused).
   */
  async publish(conditions: readonly Condition[], lookup: ObjectLookup): Promise<void> {
    const current = new Set<string>();
    for (const c of conditions) {
      // A positive condition holding (Accepted=True, Applied=True) is not a problem to report,
      // unless part of the object is refused (LastGoodKept, a port not served): severity Error.
      const problem = !(c.status === 'True' && c.type !== 'Conflicted') || c.severity === 'Error';
      if (!problem) continue;
      const fp = fingerprint(c);
      current.add(fp);
      if (this.reported.has(fp)) continue;
      const [kind = '', namespace = '', name = ''] = c.object.split('/');
      const obj = lookup(kind, namespace, name);
      if (!obj) continue;
      try {
        await this.createEvent(obj, c);
        this.reported.add(fp);
        this.created++;
      } catch (err) {
        log.warn('could not write event', {
          object: c.object,
          error: err instanceof Error ? err.message : String(err),
        });
      }
    }
    // Forget conditions that no longer hold, so a recurrence is reported again.
    this.reported = new Set([...this.reported].filter((fp) => current.has(fp)));
  }

  private async createEvent(obj: KubeObject, c: Condition): Promise<void> {
    const ns = obj.metadata?.namespace || 'default';
    const now = new Date().toISOString();
    const base = `${obj.metadata?.name ?? 'object'}.weft`;
    await this.client.request('POST', `/api/v1/namespaces/${ns}/events`, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { generateName: `${base}.`, namespace: ns },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata?.name,
        namespace: obj.metadata?.namespace,
        uid: obj.metadata?.uid,
        resourceVersion: obj.metadata?.resourceVersion,
        ...(c.field ? { fieldPath: c.field } : {}),
      },
      reason: c.reason,
      message: c.message,
      type: c.severity === 'Error' || c.severity === 'Warning' ? 'Warning' : 'Normal',
      source: { component: this.component },
      reportingComponent: this.component,
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    });
  }
}
