/**
 * Attempts the sidecars' access policy refused, per destination pod. Envoy's RBAC filters count
 * every refusal as `<prefix>.rbac.denied` (the HTTP filter under `http.<inbound prefix>.`, the
 * network filter under its own prefix), the metrics sink keeps them as `denied` series of the
 * traffic store, and replicas share them with the rest of their window. TrafficMetrics cannot show
 * these: an HTTP refusal is a 403, which it counts as a success, and a refused connection is no
 * request at all. RBAC stats do not name the caller, so a denial belongs to the destination pod
 * only.
 */
import type { MetricsStore } from '../metrics/store';

/** Refusals per pod (`<ns>/<name>`) over the `windowMs` before `now`; pods without any are absent. */
export function deniedCounts(store: MetricsStore, now: number, windowMs: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of store.totals((k) => k.kind === 'denied', windowMs, now))
    if (t.failure > 0) out.set(t.key.pod, (out.get(t.key.pod) ?? 0) + t.failure);
  return out;
}
