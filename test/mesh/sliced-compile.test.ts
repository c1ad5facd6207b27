/**
 * `updateInSlices` (what `weft serve --config-dir` compiles with) gives every group the snapshot
 * `update` gives, and lets the event loop turn between groups, so xDS and admin answer during a
 * big compile. Checked by counting pauses and turns, never by timing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bigGroupInputs } from '../../bench/big-group';
import { MeshCompiler, type MeshCompilerOptions } from '../../src/mesh/compiler';
import { HelperThread } from '../../src/worker/helper-thread';
import { SnapshotCache } from '../../src/xds/cache/cache';
import { envoyResourceEncoder } from '../../src/xds/encoder';
import type { ResourceTypeUrl } from '../../src/xds/resource-types';
import { turnsWhile } from './loop-turns';

/** A compiler with every workload's proxy of both flavors connected, and its cache. */
function connected(
  objects: readonly unknown[],
  opts: MeshCompilerOptions = {},
): { compiler: MeshCompiler; cache: SnapshotCache } {
  const cache = new SnapshotCache();
  const compiler = new MeshCompiler(cache, envoyResourceEncoder(), { mtls: true, ...opts });
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
    const first = c.compiler.updateInSlices(changed(200));
    const second = c.compiler.updateInSlices(bigGroupInputs(200));
    const { turns: afterFirst } = await turnsWhile(first);
    await second;
    assert.ok(afterFirst > 0, 'the loop turned during the compile');
    const fresh = connected(bigGroupInputs(200));
    assert.deepEqual(versions(c), versions(fresh), 'the later call is what is served');
  });

  it('encodes big resources on the helper thread, to the same bytes', async () => {
    // A threshold of 0 sends every resource to the thread, so the small mesh exercises it.
    const thread = new HelperThread(0);
    try {
      const sync = connected(bigGroupInputs(200));
      const sliced = connected(bigGroupInputs(200), {
        encodeElsewhere: (typeUrl, text) => thread.encode(typeUrl, text),
      });
      const a = sync.compiler.update(changed(200));
      const b = await sliced.compiler.updateInSlices(changed(200));
      assert.ok(thread.doneOffThread > 0, 'the thread encoded resources');
      assert.deepEqual(versions(sliced), versions(sync));
      assert.equal(b.changed, a.changed);
      for (const g of sync.compiler.groups()) {
        const [x, y] = [sync.cache.get(g), sliced.cache.get(g)];
        assert.ok(x && y, g);
        for (const typeUrl of Object.keys(x.types) as ResourceTypeUrl[])
          for (const [name, r] of x.types[typeUrl].resources)
            assert.deepEqual(y.types[typeUrl].resources.get(name)?.any, r.any, `${g} ${typeUrl} ${name}`);
      }
    } finally {
      thread.stop();
    }
  });
});
