/**
 * The hostile-patch suite with Envoy as the judge (src/patch/envoy-judge.ts): with Weft's native
 * build rules turned off, real Envoy refuses each hostile patch in its own words, the refusal is
 * blamed on the patch and operation that caused it, and the patch applies nowhere; valid patches
 * are accepted. The compiler serves a patched group's unpatched config until Envoy has judged,
 * then swaps (or withdraws the patch), and judges nothing when nothing is patched. The RE2 program
 * size estimate is compared with Envoy's exact figure. Skipped when no Envoy binary is found.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { findEnvoy, NO_ENVOY } from '../../src/envoy/binary';
import { re2ProgramSize } from '../../src/envoy/re2-size';
import { EnvoyChecker, percentile } from '../../src/envoy/validate-mode';
import { MeshCompiler } from '../../src/mesh/compiler';
import { serviceTargetResolver } from '../../src/mesh/patch-targets';
import { resolveProxy } from '../../src/mesh/proxies';
import { parseManifests, renderMesh, renderMeshJudged } from '../../src/mesh/render';
import type { PatchableResources } from '../../src/patch/apply';
import { PatchJudge, patchMeshJudged } from '../../src/patch/envoy-judge';
import { extractPatches, type MeshProxy } from '../../src/patch/mesh';
import { SnapshotCache } from '../../src/xds/cache/cache';
import { envoyResourceEncoder } from '../../src/xds/encoder';
import { bookstore, HOSTILE, patchManifest, VALID } from '../patch/hostile-fixture';

const envoy = findEnvoy();
const skip = envoy ? false : NO_ENVOY;

/** The bookbuyer proxy, unpatched, as the patch engine sees it. */
function buyer(): MeshProxy {
  const out = renderMesh(bookstore(), { proxy: 'bookbuyer/bookbuyer' });
  const p = out.proxies[0]!;
  return {
    id: 'envoy/bookbuyer/bookbuyer',
    subject: {
      namespace: 'bookbuyer',
      labels: { app: 'bookbuyer' },
      serviceAccount: 'bookbuyer',
      flavor: 'envoy',
    },
    resources: p.resources as unknown as PatchableResources,
  };
}

function patchesOf(...manifests: ReturnType<typeof patchManifest>[]) {
  return extractPatches(parseManifests(manifests).objects).patches;
}

describe('EnvoyPatch judged by Envoy', { skip }, () => {
  const judge = new PatchJudge(new EnvoyChecker());
  const opts = { meshNamespace: 'weft-system', resolve: serviceTargetResolver, nativeRules: false };

  for (const h of HOSTILE) {
    it(`${h.envoy === null ? 'accepts (only Weft refuses)' : 'refuses'} ${h.name}`, async () => {
      const proxy = buyer();
      if (h.envoy === null) {
        // Weft's consistency checks refuse this one whatever the rules; show Envoy would serve it.
        const patched = patchesOf(patchManifest(h.name, h.patches));
        const route = proxy.resources.routes[0]!;
        const vhs = route.virtual_hosts as { routes: unknown[] }[];
        const broken = {
          ...route,
          virtual_hosts: [
            {
              ...vhs[0],
              routes: [{ match: { prefix: '/nope' }, route: { cluster: 'nope' } }, ...vhs[0]!.routes],
            },
          ],
        };
        const v = await judge.checker.check({
          ...proxy.resources,
          routes: [broken, ...proxy.resources.routes.slice(1)],
        });
        assert.equal(v.accepted, true, v.message);
        assert.equal(patched.length, 1);
        return;
      }
      const r = await patchMeshJudged([proxy], patchesOf(patchManifest(h.name, h.patches)), opts, judge);
      const c = r.conditions.find((x) => x.type === 'Applied');
      assert.equal(c?.status, 'False', c?.message);
      assert.equal(c?.reason, 'Invalid');
      assert.ok(c?.message.includes('Envoy refused the patched config'), c?.message);
      assert.ok(c?.message.includes(h.envoy), `${c?.message}\n  should say: ${h.envoy}`);
      assert.equal(c?.field, `spec.patches[${h.operation}]`);
      assert.deepEqual(r.resources.get(proxy.id), proxy.resources, 'the unpatched config keeps serving');
    });
  }

  for (const v of VALID) {
    it(`accepts ${v.name}`, async () => {
      const proxy = buyer();
      const r = await patchMeshJudged([proxy], patchesOf(patchManifest(v.name, v.patches)), opts, judge);
      const c = r.conditions.find((x) => x.type === 'Applied');
      assert.equal(c?.status, 'True', c?.message);
      assert.notDeepEqual(r.resources.get(proxy.id), proxy.resources);
    });
  }

  it('blames the patch and the operation: a valid patch before, a bad operation after a good one', async () => {
    const proxy = buyer();
    const dup = HOSTILE.find((h) => h.name === 'duplicate-domain')!;
    const retry = VALID.find((v) => v.name === 'retry-policy')!;
    const bad = patchManifest('mixed', [...retry.patches, ...dup.patches]);
    const good = patchManifest('a-retries', retry.patches);
    const r = await patchMeshJudged([proxy], patchesOf(good, bad), opts, judge);
    const mixed = r.conditions.find((x) => x.object === 'EnvoyPatch/bookbuyer/mixed' && x.type === 'Applied');
    const retries = r.conditions.find(
      (x) => x.object === 'EnvoyPatch/bookbuyer/a-retries' && x.type === 'Applied',
    );
    assert.equal(mixed?.status, 'False');
    assert.equal(mixed?.field, 'spec.patches[1]', mixed?.message);
    assert.equal(retries?.status, 'True', retries?.message);
  });

  it('render with Envoy refuses what native rules would, in Envoy’s words', async () => {
    const h = HOSTILE.find((x) => x.name === 'router-not-last')!;
    const out = await renderMeshJudged([...bookstore(), patchManifest(h.name, h.patches)], {}, judge);
    const c = out.conditions.find(
      (x) => x.object === `EnvoyPatch/bookbuyer/${h.name}` && x.type === 'Applied',
    );
    // Native rules run first and refuse it; Envoy never needed to run for it.
    assert.equal(c?.status, 'False');
    assert.ok(c?.message.includes(h.native));
  });

  it('the compiler serves the unpatched config until Envoy has judged, then swaps or withdraws', async () => {
    const cache = new SnapshotCache();
    const j = new PatchJudge(new EnvoyChecker());
    const compiler = new MeshCompiler(cache, envoyResourceEncoder(), { judge: j });
    const objects = (...m: ReturnType<typeof patchManifest>[]): unknown[] =>
      parseManifests([...bookstore(), ...m]).objects;
    compiler.update(objects());
    const r = resolveProxy(
      compiler.currentModel,
      { id: 'bookbuyer/bookbuyer', cluster: '', metadata: {}, userAgent: 'envoy' },
      undefined,
    );
    assert.ok(!('error' in r));
    const group = compiler.activate(r);
    const clean = cache.get(group)!.version;
    // Nothing patched: nothing judged, and no judgement pending.
    const none = compiler.update(objects());
    assert.equal(none.judging, 0);
    assert.equal(j.stats().judged, 0);

    const retry = VALID.find((v) => v.name === 'retry-policy')!;
    const pending = compiler.update(objects(patchManifest('retries', retry.patches)));
    assert.equal(pending.judging, 1);
    assert.equal(cache.get(group)!.version, clean, 'unpatched until judged');
    await compiler.whenJudged();
    assert.notEqual(cache.get(group)!.version, clean, 'patched once Envoy accepted');
    const patched = cache.get(group)!.version;
    assert.equal(j.stats().judged, 1);
    // The same set again: judged from the cache, served at once.
    assert.equal(compiler.update(objects(patchManifest('retries', retry.patches))).judging, 0);
    assert.equal(j.stats().judged, 1);

    // A hostile patch beside it is refused by the native rules without an Envoy run, and the
    // retries keep serving.
    const dup = HOSTILE.find((h) => h.name === 'duplicate-domain')!;
    compiler.update(objects(patchManifest('retries', retry.patches), patchManifest('dup', dup.patches)));
    await compiler.whenJudged();
    assert.equal(cache.get(group)!.version, patched);
    const c = compiler.currentConditions.find(
      (x) => x.object === 'EnvoyPatch/bookbuyer/dup' && x.type === 'Applied',
    );
    assert.equal(c?.status, 'False');
  });

  it('the compiler withdraws a patch Envoy refuses, with Envoy’s text, while the other patches serve', async () => {
    const cache = new SnapshotCache();
    const j = new PatchJudge(new EnvoyChecker());
    const compiler = new MeshCompiler(cache, envoyResourceEncoder(), { judge: j, nativeRules: false });
    const objects = (...m: ReturnType<typeof patchManifest>[]): unknown[] =>
      parseManifests([...bookstore(), ...m]).objects;
    compiler.update(objects());
    const r = resolveProxy(
      compiler.currentModel,
      { id: 'bookbuyer/bookbuyer', cluster: '', metadata: {}, userAgent: 'envoy' },
      undefined,
    );
    assert.ok(!('error' in r));
    const group = compiler.activate(r);
    const clean = cache.get(group)!.version;
    const dup = HOSTILE.find((h) => h.name === 'duplicate-domain')!;
    const retry = VALID.find((v) => v.name === 'retry-policy')!;
    const inputs = objects(patchManifest('retries', retry.patches), patchManifest('dup', dup.patches));
    const first = compiler.update(inputs);
    assert.equal(first.judging, 1);
    assert.equal(cache.get(group)!.version, clean, 'unpatched while Envoy judges');
    await compiler.whenJudged();
    const c = compiler.currentConditions.find(
      (x) => x.object === 'EnvoyPatch/bookbuyer/dup' && x.type === 'Applied',
    );
    assert.equal(c?.status, 'False', c?.message);
    assert.match(
      c?.message ?? '',
      /Envoy refused the patched config: .*Only unique values for domains are permitted/,
    );
    assert.equal(c?.field, 'spec.patches[0]');
    const ok = compiler.currentConditions.find(
      (x) => x.object === 'EnvoyPatch/bookbuyer/retries' && x.type === 'Applied',
    );
    assert.equal(ok?.status, 'True', ok?.message);
    // The set without the refused patch was judged too, and serves: retries on, duplicates off.
    assert.notEqual(cache.get(group)!.version, clean);
    assert.deepEqual(compiler.groupsPatchedBy('bookbuyer/retries'), [group]);
    assert.deepEqual(compiler.groupsPatchedBy('bookbuyer/dup'), []);
    // Nothing new to judge on the same inputs.
    const again = compiler.update(inputs);
    assert.equal(again.judging, 0);
  });

  it('estimates RE2 program sizes no lower than Envoy’s own figure', async () => {
    const checker = new EnvoyChecker();
    const patterns = [
      '/x(abcdefghij){40}',
      '/api/v[0-9]+/.*',
      '^/books/[^/]+/reviews$',
      '(?i)/static/.*\\.(css|js|png)',
      '/users/\\d{1,8}',
      '[a-zA-Z0-9_-]+',
      '\\w+@\\w+\\.com',
      '/a|/b|/c|/d',
      '\\pL+',
      'é+/日本',
    ];
    const rows: string[] = [];
    for (const p of patterns) {
      // Pad past the limit so Envoy prints the exact size; the padding is a literal of 100 bytes.
      const padded = `${p}(?:${'z'.repeat(100)})`;
      const route = {
        name: 'r',
        virtual_hosts: [
          {
            name: 'v',
            domains: ['*'],
            routes: [{ match: { safe_regex: { regex: padded } }, direct_response: { status: 200 } }],
          },
        ],
      };
      const listener = {
        name: 'l',
        address: { socket_address: { address: '127.0.0.1', port_value: 1 } },
        filter_chains: [
          {
            filters: [
              {
                name: 'h',
                typed_config: {
                  '@type':
                    'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                  stat_prefix: 's',
                  rds: { route_config_name: 'r', config_source: { ads: {}, resource_api_version: 'V3' } },
                  http_filters: [
                    {
                      name: 'envoy.filters.http.router',
                      typed_config: {
                        '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
                      },
                    },
                  ],
                },
              },
            ],
          },
        ],
      };
      const v = await checker.check({ listeners: [listener], routes: [route] });
      const m = /program size of (\d+)/.exec(v.message);
      assert.ok(m, v.message);
      const actual = Number(m[1]) - 100;
      const estimate = re2ProgramSize(p)!;
      rows.push(`${p}: Envoy ${actual}, estimate ${estimate}`);
      assert.ok(estimate >= actual, `${p}: estimate ${estimate} < Envoy's ${actual}`);
    }
    process.stdout.write(`# RE2 program sizes:\n${rows.map((r) => `#   ${r}`).join('\n')}\n`);
  });

  it('reports how long a judgement takes (diagnostic only)', () => {
    const d = judge.stats().durationsMs;
    process.stdout.write(
      `# judgements: ${d.length}, p50 ${percentile(d, 50).toFixed(0)} ms, p99 ${percentile(d, 99).toFixed(0)} ms (blame included)\n`,
    );
  });
});
