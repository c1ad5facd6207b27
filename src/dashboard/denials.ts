/**
 * Attempts the sidecars' access policy refused, per destination pod, from the stats each sidecar
 * streams to Weft: Envoy's RBAC filters count every refusal as `<prefix>.rbac.denied` (the HTTP
 * filter under `http.<inbound prefix>.`, the network filter under its own prefix). TrafficMetrics
 * cannot show these: an HTTP refusal is a 403, which it counts as a success, and a refused
 * connection is no request at all. RBAC stats do not name the caller, so a denial belongs to the
 * destination pod only.
 */
import type { StreamMetricsMessage } from '../metrics/sink';

/** A refusal counter (shadow-mode `rbac.shadow_denied` is not one: nothing was refused). */
const DENIED = /(?:^|\.)rbac\.denied$/;
const COUNTER = 0;
/** Slot width and how far back counts are kept (the TrafficMetrics API's own maximum window). */
const SLOT_MS = 10_000;
const RETENTION_MS = 600_000;

const num = (v: number | { toNumber(): number } | undefined): number =>
  v === undefined ? 0 : typeof v === 'number' ? v : v.toNumber();

/** Refused attempts per pod over time. */
export class DeniedAttempts {
  /** Whether a metric family is one {@link record} reads (the sink decodes only those it is told). */
  static readonly reads = (family: string): boolean => DENIED.test(family);

  /** Pod (`<ns>/<name>`) → slot index → refusals. */
  private readonly slots = new Map<string, Map<number, number>>();

  /**
   * Adds what one message of `pod` counted. The bootstrap streams counters as deltas since the
   * last flush, so each value is new refusals.
   */
  readonly record = (pod: string, msg: StreamMetricsMessage, at: number): void => {
    let n = 0;
    for (const f of msg.envoy_metrics ?? [])
      if (f.type === COUNTER && f.name && DENIED.test(f.name))
        for (const m of f.metric ?? []) n += num(m.counter?.value);
    if (n === 0) return;
    const slot = Math.floor(at / SLOT_MS);
    const mine = this.slots.get(pod) ?? new Map<number, number>();
    mine.set(slot, (mine.get(slot) ?? 0) + n);
    this.slots.set(pod, mine);
    // Old slots go as new ones come, so memory stays bounded by pods times the retention.
    for (const s of mine.keys()) if (s < slot - RETENTION_MS / SLOT_MS) mine.delete(s);
  };

  /** Refusals per pod over the `windowMs` before `now`; pods without any are absent. */
  counts(now: number, windowMs: number): Map<string, number> {
    const from = Math.floor((now - windowMs) / SLOT_MS);
    const out = new Map<string, number>();
    for (const [pod, mine] of this.slots) {
      let n = 0;
      for (const [s, v] of mine) if (s >= from) n += v;
      if (n > 0) out.set(pod, n);
    }
    return out;
  }
}
