/**
 * `updateInSlices` (what `weft serve --config-dir` compiles with) gives every group the snapshot
 * `update` gives, and lets the event loop turn between groups, so xDS and admin answer during a
 * big compile. Checked by counting pauses and turns, never by timing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bigGroupInputs } from '../../bench/big-group';
import { MeshCompiler } from '../../src/mesh/compiler';
import { SnapshotCache } from '../../src/xds/cache/cache';
import { envoyResourceEncoder } from '../../src/xds/encoder';

/** A compiler with every workload's proxy of both flavors connected, and its cache. */
function connected(objects: readonly unknown[]): { compiler: MeshCompiler; cache: SnapshotCache } {
  const cache = new SnapshotCache();
  const compiler = new MeshCompiler(cache, envoyResourceEncoder(), { mtls: true });
  compiler.update(objects);
  for (const workload of compiler.currentModel.workloads)
    for (const flavor of ['envoy', 'grpc'] as const) compiler.activate({ workload, flavor });
  return { compiler, cache };
}

function versions(c: { compiler: MeshCompiler; cache: SnapshotCache }): Record<string, string | undefined> {
  return Object.fromEntries(c.compiler.groups().map((g) => [g, c.cache.get(g)?.version]));
}

/** The big-group inputs with the split's weights changed, which changes every group. */
function changed(matches: number): unknown[] {
  return JSON.parse(JSON.stringify(bigGroupInputs(matches)).replace('"weight":90', '"weight":80'));
}

describe('MeshCompiler.updateInSlices', () => {
  it('gives the snapshots and conditions update gives, pausing between groups', async () => {
    const sync = connected(bigGroupInputs(200));
    const sliced = connected(bigGroupInputs(200));
    const a = sync.compiler.update(changed(200));
    let pauses = 0;
    const b = await sliced.compiler.updateInSlices(changed(200), [], () => {
      pauses++;
      return new Promise((r) => setImmediate(r));
    });
    assert.deepEqual(versions(sliced), versions(sync));
    assert.deepEqual(b.conditions, a.conditions);
    assert.equal(b.changed, a.changed);
    assert.ok(a.changed > 1, 'the change reaches several groups');
    // One pause after the model and one after each group translated ahead.
    assert.ok(pauses > a.changed, `${pauses} pauses for ${a.changed} changed groups`);
  });

  it('lets the event loop turn while it compiles, and runs calls one after another', async () => {
    const c = connected(bigGroupInputs(200));
    let turns = 0;
    let done = false;
    const spin = (): void => {
      if (done) return;
      turns++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const first = c.compiler.updateInSlices(changed(200));
    const second = c.compiler.updateInSlices(bigGroupInputs(200));
    await first;
    const afterFirst = turns;
    await second;
    done = true;
    assert.ok(afterFirst > 0, 'the loop turned during the compile');
    const fresh = connected(bigGroupInputs(200));
    assert.deepEqual(versions(c), versions(fresh), 'the later call is what is served');
  });
});
