/**
 * The compiler after a change: model objects that did not change keep their identity, only the
 * groups whose view reads something that changed get a new key, only groups whose key changed are
 * translated, and every group ends up with the snapshot a compiler starting from scratch gives.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileInputs } from '../../bench/compile';
import { MeshCompiler } from '../../src/mesh/compiler';
import type { WorkloadModel } from '../../src/smi/model';
import { SnapshotCache } from '../../src/xds/cache/cache';
import { envoyResourceEncoder } from '../../src/xds/encoder';
import { edit, type Json, stringsOf } from '../smi/edits';
import { lcg } from '../smi/helpers';

/** A compiler with a group per workload and flavor, and the cache it fills. */
function compiled(
  objects: readonly unknown[],
  workloads?: readonly WorkloadModel[],
): { compiler: MeshCompiler; cache: SnapshotCache } {
  const cache = new SnapshotCache();
  const compiler = new MeshCompiler(cache, envoyResourceEncoder(), { mtls: true });
  compiler.update(objects);
  for (const workload of workloads ?? compiler.currentModel.workloads) {
    compiler.activate({ workload, flavor: 'envoy' });
    compiler.activate({ workload, flavor: 'grpc' });
  }
  return { compiler, cache };
}

/** Each group's snapshot version. */
function versions(c: { compiler: MeshCompiler; cache: SnapshotCache }): Record<string, string | undefined> {
  return Object.fromEntries(c.compiler.groups().map((g) => [g, c.cache.get(g)?.version]));
}

/** `objects` with the object named `name` (in its JSON) replaced by `change(object)`. */
function replaced(objects: readonly Json[], name: string, change: (o: Json) => Json): Json[] {
  const i = objects.findIndex((o) => JSON.stringify(o).includes(`"name":"${name}"`));
  assert.ok(i >= 0, `${name} is in the inputs`);
  return objects.map((o, j) => (j === i ? change(o) : o));
}

describe('incremental compile', () => {
  // 40 services in 10 namespaces; svc-N may be called by svc-(N-10) and svc-(N-20); split-20
  // splits svc-20 between itself and svc-30.
  const base = compileInputs(40) as Json[];

  it('recompiles only what a split, an endpoint or an access change touches', () => {
    const c = compiled(base);
    const before = c.compiler.currentModel;
    assert.equal(c.compiler.groups().length, 80);

    // split-20's weight: its callers svc-10 and svc-0, in both flavors, see a new split.
    const split = replaced(
      base,
      'split-20',
      () => (compileInputs(40, 70) as Json[]).find((o) => JSON.stringify(o).includes('"name":"split-20"'))!,
    );
    let r = c.compiler.update(split);
    const after = c.compiler.currentModel;
    assert.equal(after.services, before.services, 'services are the same objects');
    assert.ok(after.services.every((s, i) => s === before.services[i]));
    assert.equal(after.workloads, before.workloads);
    assert.equal(after.access, before.access);
    assert.deepEqual([r.rekeyed, r.translated, r.changed, r.groups], [4, 4, 4, 80]);
    assert.deepEqual(versions(c), versions(compiled(split, before.workloads)));

    // svc-25 loses an endpoint: its callers svc-15 and svc-5 and its own workload are affected.
    const endpoint = replaced(split, 'svc-25-x', (o) => {
      const slice = o as { endpoints: Json[] };
      return { ...slice, endpoints: slice.endpoints.slice(1) };
    });
    r = c.compiler.update(endpoint);
    assert.deepEqual([r.rekeyed, r.translated, r.changed], [6, 6, 4]);
    assert.deepEqual(versions(c), versions(compiled(endpoint, before.workloads)));

    // svc-5 may no longer call svc-25: the caller's outbound and the callee's inbound change.
    const access = replaced(endpoint, 'to-svc-25', (o) => {
      const t = o as { spec: { sources: Json[] } };
      return { ...t, spec: { ...t.spec, sources: t.spec.sources.slice(0, 1) } };
    });
    r = c.compiler.update(access);
    assert.deepEqual([r.rekeyed, r.translated, r.changed], [4, 4, 4]);
    assert.deepEqual(versions(c), versions(compiled(access, before.workloads)));

    // Nothing changes: no key is computed, nothing is translated.
    r = c.compiler.update([...access]);
    assert.deepEqual([r.rekeyed, r.translated, r.changed], [0, 0, 0]);
  });

  it('gives every group the snapshot a fresh compiler gives, through random changes', () => {
    let objects = compileInputs(20) as Json[];
    const strings = stringsOf(objects);
    const c = compiled(objects);
    const workloads = c.compiler.currentModel.workloads;
    const removed: Json[] = [];
    const next = lcg(42);
    for (let step = 0; step < 25; step++) {
      objects = edit(objects, removed, strings, next);
      c.compiler.update(objects);
      assert.deepEqual(versions(c), versions(compiled(structuredClone(objects), workloads)), `step ${step}`);
    }
  });
});
