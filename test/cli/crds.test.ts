import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { allCrds } from '../../src/crds/definitions';
import { CRD_FOLDERS, crdFileName, crdYaml } from '../../src/crds/render';

const ROOT = join(__dirname, '..', '..', '..');

describe('crds/', () => {
  for (const folder of CRD_FOLDERS) {
    it(`${folder}/ holds exactly the generated CRDs (run \`npm run gen:crds\` after changing them)`, () => {
      const dir = join(ROOT, folder);
      const files = readdirSync(dir)
        .filter((f) => f.endsWith('.yaml'))
        .sort();
      assert.deepEqual(files, allCrds().map(crdFileName).sort());
      for (const crd of allCrds())
        assert.equal(
          readFileSync(join(dir, crdFileName(crd)), 'utf8'),
          crdYaml(crd),
          `${folder}/${crdFileName(crd)}`,
        );
    });
  }
  it('serves every SMI version Weft reads and stores one per kind', () => {
    const served = Object.fromEntries(
      allCrds().map((c) => {
        const spec = c.spec as {
          names: { kind: string };
          versions: { name: string; served: boolean; storage: boolean }[];
        };
        assert.equal(
          spec.versions.filter((v) => v.storage).length,
          1,
          `${spec.names.kind}: one storage version`,
        );
        return [spec.names.kind, spec.versions.filter((v) => v.served).map((v) => v.name)];
      }),
    );
    assert.deepEqual(served, {
      TrafficSplit: ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'],
      TrafficTarget: ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'],
      IdentityBinding: ['v1alpha4'],
      HTTPRouteGroup: ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'],
      TCPRoute: ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'],
      UDPRoute: ['v1alpha4'],
      MeshConfig: ['v1alpha1'],
      EnvoyPatch: ['v1alpha1'],
    });
  });
});
