/**
 * Traffic measurements kept by Weft itself: a bounded window of success and failure counts and a
 * latency histogram per series, where a series is one thing one proxy measured:
 *
 * - `out`: a client pod's calls to one destination Service (its outbound cluster), client side;
 * - `apex`: a client pod's calls to one Service as it dialed it (before a TrafficSplit chose a
 *   backend), client side;
 * - `in`: every request a pod's sidecar received, server side;
 * - `route`: the requests a pod's sidecar received that took one HTTPRouteGroup match's inbound
 *   route, server side (Envoy's route statistics; requests its RBAC refused take no route);
 * - `splitroute`: a client pod's calls to one Service that took one match route of its TrafficSplit
 *   (an A/B test's match), client side, whichever backend took them;
 * - `denied`: attempts a pod's sidecar refused by its access policy (RBAC), as `failure` counts:
 *   TrafficMetrics does not show them (an HTTP refusal is a 403, which it counts as a success), the
 *   dashboard does. They live here so that replicas share them like the rest.
 *
 * Time is cut into slots of {@link StoreOptions.slotMs}; only slots that saw traffic exist, and slots
 * older than the retention are dropped, so an idle series costs a few hundred bytes. The number of
 * series is capped too: past {@link StoreOptions.maxSeries} the series updated longest ago goes.
 * Memory is therefore bounded by `maxSeries × (retention / slot)` slots, whatever the proxies send.
 *
 * Each sidecar streams to one Weft replica, so a store holds part of the mesh: {@link
 * MetricsStore.export} writes what it holds over a window as plain JSON, and {@link
 * MetricsStore.merge} adds such an export into another store (a fresh one per request, own window
 * plus the peers'), which then answers as if it had received every stream.
 */
import { z } from 'zod';
import { logger } from '../log';

const log = logger('metrics');

/** What a series measures: see the module comment. */
export type SeriesKind = 'out' | 'apex' | 'in' | 'route' | 'splitroute' | 'denied';

/** Every {@link SeriesKind}, for reading a peer's export (it skips kinds it does not know). */
const SERIES_KINDS: readonly string[] = ['out', 'apex', 'in', 'route', 'splitroute', 'denied'];

/** One series: who measured (a pod, `<ns>/<name>`), what and toward which Service (`<ns>/<name>`). */
export interface SeriesKey {
  readonly kind: SeriesKind;
  /** The reporting pod, `<namespace>/<name>`. */
  readonly pod: string;
  /** `out`, `apex` and `splitroute`: the destination Service, `<namespace>/<name>`; the others: `''`. */
  readonly service: string;
  /** `route` and `splitroute`: the route's stat prefix, `<group>__<match>` escaped (names.routeStatPrefix). */
  readonly route?: string;
}

/** Counts and a histogram over some time. */
export interface Sample {
  /** Responses that were not 5xx. */
  success: number;
  /** 5xx responses (Envoy's own 503s for refused or failed connections included). */
  failure: number;
  /** Latency histogram: counts per bucket of {@link Sample.bounds} (not cumulative), plus overflow. */
  buckets: number[];
  /** Upper bounds of the buckets, in milliseconds, ascending (Envoy's histogram bounds). */
  bounds: readonly number[];
}

/** Options of {@link MetricsStore}. */
export interface StoreOptions {
  /** Width of one time slot (default 10 s). */
  slotMs?: number;
  /** How far back queries can look (default 10 min). */
  retentionMs?: number;
  /** At most this many series (default 50,000). */
  maxSeries?: number;
}

interface Slot {
  success: number;
  failure: number;
  buckets: number[];
}

interface Series {
  key: SeriesKey;
  bounds: readonly number[];
  /** Slots by index (time / slotMs). */
  slots: Map<number, Slot>;
  touched: number;
}

/** Parses a Kubernetes-style duration (`30s`, `1m`, `1m30s`, `500ms`) into milliseconds. */
export function parseWindow(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let ms = 0;
  let used = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
    ms += Number(m[1]) * unit;
    used = re.lastIndex;
  }
  return used === text.length && used > 0 ? ms : undefined;
}

/** Formats milliseconds as the spec's windows are written (`30s`, `5m0s`). */
export function formatWindow(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

/**
 * The latency at quantile `q` (0..1) of a histogram, in milliseconds, or undefined without samples.
 * Within the bucket that holds the quantile, the value is interpolated linearly between its lower
 * and upper bound: the answer is off by at most that bucket's width (with Envoy's default bounds,
 * for example, anything between 100 and 250 ms). Samples past the last bound report the last bound.
 */
export function quantile(s: Sample, q: number): number | undefined {
  const total = s.buckets.reduce((a, b) => a + b, 0);
  if (total === 0) return undefined;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < s.buckets.length; i++) {
    const n = s.buckets[i]!;
    if (n > 0 && seen + n >= rank) {
      if (i >= s.bounds.length) return s.bounds[s.bounds.length - 1] ?? 0;
      const lower = i === 0 ? 0 : s.bounds[i - 1]!;
      const upper = s.bounds[i]!;
      return lower + ((upper - lower) * Math.max(0, rank - seen)) / n;
    }
    seen += n;
  }
  return s.bounds[s.bounds.length - 1] ?? 0;
}

/** One slot of a {@link StoreExport}: its index (time / slotMs) and what it counted. */
export interface ExportedSlot {
  index: number;
  success: number;
  failure: number;
  buckets: number[];
}

/** One series of a {@link StoreExport}. */
export interface ExportedSeries {
  key: SeriesKey;
  bounds: number[];
  slots: ExportedSlot[];
}

/** What a store holds over a window, as plain JSON (see {@link MetricsStore.export}). */
export interface StoreExport {
  /** Slot indexes are time / slotMs: only a store with the same width can merge them. */
  slotMs: number;
  series: ExportedSeries[];
}

const count = z.number().finite().nonnegative();
/**
 * The shape of a {@link StoreExport} read from a peer. Any kind is read, and
 * {@link MetricsStore.merge} skips the series of kinds this version does not know, so a newer
 * replica's export still counts during a rolling upgrade; key fields this version does not know
 * are dropped.
 */
const storeExportSchema = z.object({
  slotMs: z.number().positive(),
  series: z.array(
    z.object({
      key: z.object({
        kind: z.string(),
        pod: z.string(),
        service: z.string(),
        route: z.string().optional(),
      }),
      bounds: z.array(z.number().finite()),
      slots: z.array(
        z.object({ index: z.number().int(), success: count, failure: count, buckets: z.array(count) }),
      ),
    }),
  ),
});

/** Reads a {@link StoreExport} from untrusted JSON; throws naming what is wrong. */
export function parseStoreExport(json: unknown): StoreExport {
  const r = storeExportSchema.safeParse(json);
  if (!r.success)
    throw new Error(
      `not a metrics export: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  return r.data as StoreExport;
}

function keyText(k: SeriesKey): string {
  return `${k.kind}\u0000${k.pod}\u0000${k.service}\u0000${k.route ?? ''}`;
}

/** See the module comment. */
export class MetricsStore {
  readonly slotMs: number;
  readonly retentionMs: number;
  readonly maxSeries: number;
  private readonly series = new Map<string, Series>();

  constructor(o: StoreOptions = {}) {
    this.slotMs = o.slotMs ?? 10_000;
    this.retentionMs = o.retentionMs ?? 600_000;
    this.maxSeries = o.maxSeries ?? 50_000;
  }

  /** Number of series held. */
  get size(): number {
    return this.series.size;
  }

  /**
   * Adds what one flush of one proxy measured: `buckets` are per-bucket counts (not cumulative)
   * for `bounds`, with one more entry for samples past the last bound.
   */
  add(
    key: SeriesKey,
    at: number,
    delta: { success?: number; failure?: number; buckets?: readonly number[]; bounds?: readonly number[] },
  ): void {
    const k = keyText(key);
    let s = this.series.get(k);
    if (!s) {
      if (this.series.size >= this.maxSeries) this.evictOldest();
      s = { key, bounds: delta.bounds ?? [], slots: new Map(), touched: at };
      this.series.set(k, s);
    }
    // Map order is insertion order: re-inserting keeps the least recently updated first.
    this.series.delete(k);
    this.series.set(k, s);
    s.touched = at;
    if (delta.bounds && delta.bounds.length > 0 && !sameBounds(s.bounds, delta.bounds)) {
      const counted = s.bounds.length === 0;
      s.bounds = delta.bounds;
      if (counted) {
        // Counts came before any latency (Envoy merges histograms only at its flush): keep them.
        for (const slot of s.slots.values()) slot.buckets = new Array(s.bounds.length + 1).fill(0);
      } else {
        // Bounds changed (a restarted proxy with other settings): older slots cannot be merged.
        s.slots.clear();
      }
    }
    const index = Math.floor(at / this.slotMs);
    let slot = s.slots.get(index);
    if (!slot) {
      slot = { success: 0, failure: 0, buckets: new Array(s.bounds.length + 1).fill(0) };
      s.slots.set(index, slot);
      this.prune(s, at);
    }
    slot.success += delta.success ?? 0;
    slot.failure += delta.failure ?? 0;
    if (delta.buckets)
      for (let i = 0; i < slot.buckets.length; i++) slot.buckets[i]! += delta.buckets[i] ?? 0;
  }

  /**
   * Sums the series `match` admits over the last `windowMs` before `now` (whole slots: the window is
   * rounded up to the slot width). Series with other bucket bounds than the first are re-bucketed
   * at their upper bounds, which can only widen the error to their own bucket width.
   */
  sum(match: (k: SeriesKey) => boolean, windowMs: number, now: number): Sample & { series: number } {
    const { from, to } = this.windowSlots(windowMs, now);
    const hits: { bounds: readonly number[]; slot: Slot }[] = [];
    let series = 0;
    for (const s of this.series.values()) {
      if (!match(s.key)) continue;
      let hit = false;
      for (const [i, slot] of s.slots)
        if (i >= from && i <= to) {
          hits.push({ bounds: s.bounds, slot });
          hit = true;
        }
      if (hit) series++;
    }
    // Series that only ever counted (Envoy records no latency for its own local replies) have no
    // bounds: they add to the counts, and the histogram takes the first bounds there are.
    const bounds = hits.find((h) => h.bounds.length > 0)?.bounds ?? [];
    const out: Sample & { series: number } = {
      success: 0,
      failure: 0,
      buckets: new Array(bounds.length + 1).fill(0),
      bounds,
      series,
    };
    for (const h of hits) {
      out.success += h.slot.success;
      out.failure += h.slot.failure;
      if (h.bounds.length > 0) addBuckets(out, h.bounds, h.slot.buckets);
    }
    return out;
  }

  /** The keys of every series with traffic in the last `windowMs` before `now`. */
  keys(windowMs: number, now: number): SeriesKey[] {
    const { from } = this.windowSlots(windowMs, now);
    const out: SeriesKey[] = [];
    for (const s of this.series.values())
      for (const i of s.slots.keys())
        if (i >= from) {
          out.push(s.key);
          break;
        }
    return out;
  }

  /**
   * What the store holds over the last `windowMs` before `now` (the slots {@link MetricsStore.sum}
   * would read), as plain JSON for a peer to {@link MetricsStore.merge}: per series, the window's
   * sum as one slot, the window's last. A peer asks for exactly the window it answers for, so one
   * slot per series is all it needs, and a tenth to a sixtieth of the bytes of every slot. Series
   * without traffic in the window are left out.
   */
  export(windowMs: number, now: number): StoreExport {
    const { from, to } = this.windowSlots(windowMs, now);
    const series: ExportedSeries[] = [];
    for (const s of this.series.values()) {
      let sum: ExportedSlot | undefined;
      for (const [index, slot] of s.slots) {
        if (index < from || index > to) continue;
        sum ??= { index: to, success: 0, failure: 0, buckets: new Array(slot.buckets.length).fill(0) };
        sum.success += slot.success;
        sum.failure += slot.failure;
        for (let i = 0; i < slot.buckets.length; i++) sum.buckets[i]! += slot.buckets[i];
      }
      if (sum) series.push({ key: { ...s.key }, bounds: [...s.bounds], slots: [sum] });
    }
    return { slotMs: this.slotMs, series };
  }

  /**
   * Success and failure counts of each series `match` admits over the last `windowMs` before
   * `now`, without histograms and without copying (for readers that count, such as the
   * dashboard's refusals).
   */
  totals(
    match: (k: SeriesKey) => boolean,
    windowMs: number,
    now: number,
  ): { key: SeriesKey; success: number; failure: number }[] {
    const { from, to } = this.windowSlots(windowMs, now);
    const out: { key: SeriesKey; success: number; failure: number }[] = [];
    for (const s of this.series.values()) {
      if (!match(s.key)) continue;
      let success = 0;
      let failure = 0;
      let hit = false;
      for (const [index, slot] of s.slots)
        if (index >= from && index <= to) {
          success += slot.success;
          failure += slot.failure;
          hit = true;
        }
      if (hit) out.push({ key: s.key, success, failure });
    }
    return out;
  }

  /**
   * Adds an export into this store, slot by slot; returns false (and logs why) when it was cut
   * with another slot width, whose indexes name other times. A series both hold (a sidecar that
   * reconnected to another replica) is summed; when its bounds differ, the incoming buckets are
   * placed by their upper bounds into the bounds held, as {@link MetricsStore.sum} does.
   */
  merge(exp: StoreExport, from = 'a peer'): boolean {
    if (exp.slotMs !== this.slotMs) {
      log.warn('metrics export skipped: its slots have another width', {
        from,
        slotMs: exp.slotMs,
        expected: this.slotMs,
      });
      return false;
    }
    let unknown = 0;
    for (const e of exp.series) {
      if (!SERIES_KINDS.includes(e.key.kind)) {
        unknown++;
        continue;
      }
      const k = keyText(e.key);
      let s = this.series.get(k);
      if (!s) {
        if (this.series.size >= this.maxSeries) this.evictOldest();
        s = { key: e.key, bounds: e.bounds, slots: new Map(), touched: 0 };
        this.series.set(k, s);
      } else if (s.bounds.length === 0 && e.bounds.length > 0) {
        // Counts without latency so far: keep them under the bounds that came (as add does).
        s.bounds = e.bounds;
        for (const slot of s.slots.values()) slot.buckets = new Array(s.bounds.length + 1).fill(0);
      }
      for (const x of e.slots) {
        s.touched = Math.max(s.touched, x.index * this.slotMs);
        let slot = s.slots.get(x.index);
        if (!slot) {
          slot = { success: 0, failure: 0, buckets: new Array(s.bounds.length + 1).fill(0) };
          s.slots.set(x.index, slot);
        }
        slot.success += x.success;
        slot.failure += x.failure;
        if (e.bounds.length > 0) {
          const into: Sample = { success: 0, failure: 0, buckets: slot.buckets, bounds: s.bounds };
          // A peer's export is input: extra entries past its own bounds would not land anywhere.
          addBuckets(into, e.bounds, x.buckets.slice(0, e.bounds.length + 1));
        }
      }
    }
    if (unknown > 0)
      log.info('metrics export: series of kinds this version does not know were skipped', {
        from,
        series: unknown,
      });
    return true;
  }

  /** The indexes of the first and last slot of the `windowMs` before `now` (whole slots). */
  private windowSlots(windowMs: number, now: number): { from: number; to: number } {
    return { from: Math.floor((now - windowMs) / this.slotMs) + 1, to: Math.floor(now / this.slotMs) };
  }

  /** Drops slots past the retention, and series left without slots. */
  expire(now: number): void {
    for (const [k, s] of this.series) {
      this.prune(s, now);
      if (s.slots.size === 0) this.series.delete(k);
    }
  }

  private prune(s: Series, now: number): void {
    const oldest = Math.floor((now - this.retentionMs) / this.slotMs);
    for (const i of s.slots.keys()) if (i <= oldest) s.slots.delete(i);
  }

  private evictOldest(): void {
    const first = this.series.keys().next();
    if (!first.done) this.series.delete(first.value);
  }
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Adds `buckets` (for `bounds`) into `out`, placing each bucket by its upper bound. */
function addBuckets(out: Sample, bounds: readonly number[], buckets: readonly number[]): void {
  if (sameBounds(out.bounds, bounds)) {
    for (let i = 0; i < buckets.length; i++) out.buckets[i]! += buckets[i] ?? 0;
    return;
  }
  for (let i = 0; i < buckets.length; i++) {
    const upper = i < bounds.length ? bounds[i]! : Number.POSITIVE_INFINITY;
    let j = out.bounds.findIndex((b) => b >= upper);
    if (j < 0) j = out.bounds.length;
    out.buckets[j]! += buckets[i] ?? 0;
  }
}
