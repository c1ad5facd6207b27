/**
 * Exporting a store's window and merging it into another, as replicas do to answer for the whole
 * mesh: a merge must give exactly what one store fed with every input gives (counts, buckets,
 * percentiles), cut the same window, and treat other bucket bounds the way `sum` does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MetricsStore, parseStoreExport, quantile, type SeriesKey } from '../../src/metrics/store';

const BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000];

function hist(bounds: readonly number[], latencies: number[]): number[] {
  const b = new Array(bounds.length + 1).fill(0);
  for (const l of latencies) {
    const i = bounds.findIndex((x) => l <= x);
    b[i < 0 ? bounds.length : i]++;
  }
  return b;
}

const buyerToStore: SeriesKey = { kind: 'out', pod: 'shop/buyer', service: 'shop/store' };
const buyerToCart: SeriesKey = { kind: 'out', pod: 'shop/buyer', service: 'shop/cart' };
const storeIn: SeriesKey = { kind: 'in', pod: 'shop/store-0', service: '' };
const otherToStore: SeriesKey = { kind: 'out', pod: 'shop/other', service: 'shop/store' };

type Input = [SeriesKey, number, { success?: number; failure?: number; latencies?: number[] }];

function feed(s: MetricsStore, inputs: Input[]): void {
  for (const [key, at, d] of inputs)
    s.add(key, at, {
      ...(d.success !== undefined ? { success: d.success } : {}),
      ...(d.failure !== undefined ? { failure: d.failure } : {}),
      ...(d.latencies ? { buckets: hist(BOUNDS, d.latencies), bounds: BOUNDS } : {}),
    });
}

/** Every figure the API reads, for a few matchers. */
function figures(s: MetricsStore, windowMs: number, now: number): unknown {
  const matchers: Record<string, (k: SeriesKey) => boolean> = {
    all: () => true,
    toStore: (k) => k.kind === 'out' && k.service === 'shop/store',
    buyer: (k) => k.pod === 'shop/buyer',
    in: (k) => k.kind === 'in',
  };
  return Object.fromEntries(
    Object.entries(matchers).map(([name, m]) => {
      const x = s.sum(m, windowMs, now);
      return [name, { ...x, p50: quantile(x, 0.5), p90: quantile(x, 0.9), p99: quantile(x, 0.99) }];
    }),
  );
}

describe('metrics store export and merge', () => {
  // Two replicas each got some streams; buyer's stream moved from one to the other mid-window, so
  // the series buyer -> store is in both, in the same slot too.
  const a: Input[] = [
    [buyerToStore, 101_000, { success: 5, failure: 1, latencies: [3, 7, 30, 300, 2000, 4] }],
    [buyerToStore, 112_000, { success: 2, latencies: [0.2, 60] }],
    [storeIn, 113_000, { success: 7, failure: 2, latencies: [1, 2, 3, 4, 5, 6, 7, 8, 9] }],
    [buyerToCart, 114_000, { failure: 3 }],
  ];
  const b: Input[] = [
    [buyerToStore, 115_000, { success: 4, latencies: [11, 12, 13, 700] }],
    [otherToStore, 116_000, { success: 9, failure: 1, latencies: [1, 1, 1, 1, 1, 20, 20, 20, 20, 200] }],
    [buyerToCart, 117_000, { success: 1, latencies: [40] }],
  ];

  it('merges two stores into exactly what one store fed with both inputs holds', () => {
    const storeA = new MetricsStore();
    const storeB = new MetricsStore();
    const both = new MetricsStore();
    feed(storeA, a);
    feed(storeB, b);
    feed(both, [...a, ...b]);
    const now = 119_000;
    const merged = new MetricsStore();
    // Through JSON, as a peer's export travels.
    assert.equal(
      merged.merge(parseStoreExport(JSON.parse(JSON.stringify(storeA.export(60_000, now))))),
      true,
    );
    assert.equal(
      merged.merge(parseStoreExport(JSON.parse(JSON.stringify(storeB.export(60_000, now))))),
      true,
    );
    for (const w of [10_000, 30_000, 60_000])
      assert.deepEqual(figures(merged, w, now), figures(both, w, now));
    assert.equal(merged.sum(() => true, 60_000, now).success, 28);
    assert.equal(merged.sum(() => true, 60_000, now).failure, 7);
    assert.equal(merged.size, 4);
    assert.deepEqual(
      new Set(merged.keys(60_000, now).map((k) => JSON.stringify(k))),
      new Set(both.keys(60_000, now).map((k) => JSON.stringify(k))),
    );
  });

  it('exports only the slots of the window, as sum reads them', () => {
    const s = new MetricsStore({ slotMs: 10_000 });
    s.add(buyerToStore, 5_000, { success: 1 }); // slot 0
    s.add(buyerToStore, 25_000, { success: 2 }); // slot 2
    s.add(storeIn, 8_000, { success: 4 }); // slot 0 only
    s.add(buyerToStore, 45_000, { success: 8 }); // slot 4, after `now`
    const exp = s.export(20_000, 39_000); // slots 2 and 3
    assert.deepEqual(exp, {
      slotMs: 10_000,
      series: [
        { key: buyerToStore, bounds: [], slots: [{ index: 2, success: 2, failure: 0, buckets: [0] }] },
      ],
    });
    const merged = new MetricsStore({ slotMs: 10_000 });
    merged.merge(exp);
    assert.equal(merged.sum(() => true, 600_000, 39_000).success, s.sum(() => true, 20_000, 39_000).success);
  });

  it('merges other bucket bounds by their upper bounds, as sum does for two series', () => {
    const other = [5, 500];
    const mine = new MetricsStore();
    mine.add(buyerToStore, 101_000, { success: 3, buckets: hist(BOUNDS, [0.3, 30, 3000]), bounds: BOUNDS });
    const peer = new MetricsStore();
    peer.add(buyerToStore, 102_000, {
      success: 4,
      failure: 1,
      buckets: hist(other, [2, 50, 600, 1]),
      bounds: other,
    });
    const merged = new MetricsStore();
    merged.merge(mine.export(60_000, 110_000));
    merged.merge(peer.export(60_000, 110_000));
    // The same samples as two series of one store: sum re-buckets the second into the first's bounds.
    const two = new MetricsStore();
    two.add(buyerToStore, 101_000, { success: 3, buckets: hist(BOUNDS, [0.3, 30, 3000]), bounds: BOUNDS });
    two.add(otherToStore, 102_000, {
      success: 4,
      failure: 1,
      buckets: hist(other, [2, 50, 600, 1]),
      bounds: other,
    });
    const m = merged.sum(() => true, 60_000, 110_000);
    const t = two.sum(() => true, 60_000, 110_000);
    assert.deepEqual(
      [m.success, m.failure, m.buckets, m.bounds],
      [t.success, t.failure, t.buckets, t.bounds],
    );
    // 2 and 1 ms land in (1, 5], 50 ms in (250, 500], 600 ms past the last bound.
    assert.deepEqual(m.buckets, [1, 0, 2, 0, 0, 1, 0, 0, 1, 0, 2]);
    // A series that only counted takes the bounds of the first export with latencies.
    const counted = new MetricsStore();
    counted.add(buyerToStore, 101_000, { failure: 2 });
    counted.merge(mine.export(60_000, 110_000));
    const c = counted.sum(() => true, 60_000, 110_000);
    assert.deepEqual(
      [c.success, c.failure, c.bounds, c.buckets],
      [3, 2, BOUNDS, hist(BOUNDS, [0.3, 30, 3000])],
    );
  });

  it('refuses an export cut with another slot width, and keeps what it held', () => {
    const mine = new MetricsStore({ slotMs: 10_000 });
    mine.add(buyerToStore, 101_000, { success: 1 });
    const peer = new MetricsStore({ slotMs: 5_000 });
    peer.add(buyerToStore, 101_000, { success: 100 });
    assert.equal(mine.merge(peer.export(60_000, 110_000), 'weft-1'), false);
    assert.equal(mine.sum(() => true, 60_000, 110_000).success, 1);
  });

  it('carries every field of a series key, also ones this version does not know', () => {
    const s = new MetricsStore();
    const key = { ...buyerToStore, zone: 'eu-1' } as SeriesKey;
    // A route series (server side, per HTTPRouteGroup match) travels with its route.
    const route: SeriesKey = { kind: 'route', pod: 'shop/store-v1', service: '', route: 'store-paths__open' };
    s.add(key, 101_000, { success: 1 });
    s.add(route, 101_000, { failure: 2 });
    const round = parseStoreExport(JSON.parse(JSON.stringify(s.export(60_000, 110_000))));
    const merged = new MetricsStore();
    merged.merge(round);
    assert.deepEqual(merged.keys(60_000, 110_000), [key, route]);
    assert.equal(merged.sum((k) => k.route === 'store-paths__open', 60_000, 110_000).failure, 2);
  });

  it('says what is wrong with something that is not an export', () => {
    assert.throws(
      () => parseStoreExport({ slotMs: 10_000, series: [{ key: { kind: 'sideways' } }] }),
      /not a metrics export: series\.0\.key\.kind/,
    );
    assert.throws(
      () =>
        parseStoreExport({
          slotMs: 10_000,
          series: [
            { key: buyerToStore, bounds: [], slots: [{ index: 1, success: -1, failure: 0, buckets: [] }] },
          ],
        }),
      /success/,
    );
  });
});
