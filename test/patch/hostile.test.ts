/**
 * The hostile-patch suite without Envoy: every patch that Envoy 1.40 refuses is refused by Weft's
 * native rules (src/patch/envoy-rules.ts), applies nowhere, and names its operation and reason;
 * valid patches still apply.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderMesh } from '../../src/mesh/render';
import { bookstore, HOSTILE, patchManifest, VALID } from './hostile-fixture';

function applied(name: string, patches: readonly Record<string, unknown>[]) {
  const out = renderMesh([...bookstore(), patchManifest(name, patches)]);
  const c = out.conditions.find((x) => x.object === `EnvoyPatch/bookbuyer/${name}` && x.type === 'Applied');
  assert.ok(c, `no Applied condition for ${name}`);
  return { out, c };
}

describe('hostile patches, native rules', () => {
  for (const h of HOSTILE) {
    it(`refuses ${h.name}`, () => {
      const { out, c } = applied(h.name, h.patches);
      assert.equal(c.status, 'False', c.message);
      assert.equal(c.reason, 'Invalid');
      assert.ok(c.message.includes(h.native), `${c.message}\n  should say: ${h.native}`);
      assert.equal(c.field, `spec.patches[${h.operation}]`);
      // The unpatched config keeps serving: the proxy is exactly as without the patch.
      const clean = renderMesh(bookstore());
      assert.deepEqual(out.proxies, clean.proxies);
    });
  }
  for (const v of VALID) {
    it(`applies ${v.name}`, () => {
      const { c } = applied(v.name, v.patches);
      assert.equal(c.status, 'True', c.message);
    });
  }
});
