/**
 * The compiler's EnvoyPatch conditions across updates and NACKs: `Accepted`, `Applied` with the
 * number of proxies, targets not found, and `Programmed=False RolledBack` carrying the proxy's own
 * error text until the patch changes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { MeshCompiler } from '../../src/mesh/compiler';
import { resolveProxy } from '../../src/mesh/proxies';
import { rejectedResources } from '../../src/mesh/wiring';
import type { Condition } from '../../src/smi/model';
import { outboundCluster } from '../../src/translate/names';
import { SnapshotCache } from '../../src/xds/cache/cache';
import { envoyResourceEncoder } from '../../src/xds/encoder';
import { addresses, BUYER_MAY_CALL, workloads } from '../mesh/mesh-fixture';

const A = addresses(47, 50001, 50002);

function objects(...texts: string[]): unknown[] {
  return texts.flatMap((t) => parseAllDocuments(t).map((d) => d.toJSON() as unknown));
}

function patch(name: string, body: string): string {
  return `apiVersion: weft.dev/v1alpha1
kind: EnvoyPatch
metadata: { name: ${name}, namespace: shop }
spec:
  selector: { matchLabels: { app: buyer } }
  patches:
${body}`;
}

const RING = patch(
  'ring',
  `    - target: { type: Cluster, service: { name: store-v1, port: ${A.port} } }
      merge: { lb_policy: RING_HASH }
`,
);

function cond(c: MeshCompiler, object: string, type: string): Condition | undefined {
  return c.currentConditions.find((x) => x.object === object && x.type === type);
}

function setup(...extra: string[]): { compiler: MeshCompiler; group: string } {
  const compiler = new MeshCompiler(new SnapshotCache(), envoyResourceEncoder(), { mtls: false });
  compiler.update(objects(workloads(A), BUYER_MAY_CALL, ...extra));
  const r = resolveProxy(compiler.currentModel, {
    id: 'shop/buyer',
    cluster: '',
    metadata: {},
    userAgent: 'grpc-node-js',
  });
  assert.ok(!('error' in r), 'the buyer resolves');
  return { compiler, group: compiler.activate(r) };
}

describe('compiler EnvoyPatch conditions', () => {
  it('reports Accepted and Applied with the number of proxies, and which resources the patch touched', () => {
    const { compiler, group } = setup(RING);
    assert.equal(cond(compiler, 'EnvoyPatch/shop/ring', 'Accepted')?.status, 'True');
    const applied = cond(compiler, 'EnvoyPatch/shop/ring', 'Applied');
    assert.equal(applied?.status, 'True');
    assert.match(applied?.message ?? '', /applied to 1 of 1 selected proxies/);
    assert.deepEqual(compiler.groupsPatchedBy('shop/ring'), [group]);
    // A NACK naming the patched cluster is traced back to the patch; one naming another is not.
    assert.deepEqual(compiler.patchesTouching(group, [outboundCluster('shop', 'store-v1', A.port)]), [
      'shop/ring',
    ]);
    assert.deepEqual(compiler.patchesTouching(group, [outboundCluster('shop', 'store-v2', A.port)]), []);
  });

  it('says which targets were not found when a patch matches nothing', () => {
    const { compiler } = setup(
      patch(
        'nowhere',
        `    - target: { type: Cluster, name: no-such-cluster }
      merge: { lb_policy: RING_HASH }
`,
      ),
    );
    const applied = cond(compiler, 'EnvoyPatch/shop/nowhere', 'Applied');
    assert.equal(applied?.status, 'False');
    assert.equal(applied?.reason, 'TargetNotFound');
    assert.match(applied?.message ?? '', /applied to 0 of 1/);
    assert.match(applied?.message ?? '', /operation 0: no Cluster "no-such-cluster"/);
  });

  it('names the failing operation and field of a malformed patch in Accepted', () => {
    const { compiler } = setup(
      patch(
        'bad',
        `    - target: { type: Cluster, name: x }
      jsonPatch: [{ op: replace, value: 1 }]
`,
      ),
    );
    const accepted = cond(compiler, 'EnvoyPatch/shop/bad', 'Accepted');
    assert.equal(accepted?.status, 'False');
    assert.equal(accepted?.field, 'spec.patches[0].jsonPatch[0].path');
  });

  it('a rolled-back patch reports the proxy and its own NACK text until the patch changes', () => {
    const { compiler, group } = setup(RING);
    const before = compiler.groupsPatchedBy('shop/ring');
    assert.deepEqual(before, [group]);
    compiler.rollBack(group, 'shop/ring', {
      proxy: 'shop/buyer',
      message: 'cluster store-v1: unsupported lb_policy RING_HASH',
    });
    const programmed = cond(compiler, 'EnvoyPatch/shop/ring', 'Programmed');
    assert.equal(programmed?.status, 'False');
    assert.equal(programmed?.reason, 'RolledBack');
    assert.match(programmed?.message ?? '', /proxy shop\/buyer/);
    assert.match(programmed?.message ?? '', /unsupported lb_policy RING_HASH/);
    assert.deepEqual(compiler.groupsPatchedBy('shop/ring'), [], 'the group no longer carries the patch');
    // Still selected by the patch: Applied says it was rolled back, not that it selects nothing.
    const applied = cond(compiler, 'EnvoyPatch/shop/ring', 'Applied');
    assert.equal(applied?.status, 'False');
    assert.equal(applied?.reason, 'RolledBack');
    assert.match(applied?.message ?? '', /rolled back on all 1 proxy groups it selects/);

    // The same inputs again: still rolled back (a NACKed version is never resent in a loop).
    compiler.update(objects(workloads(A), BUYER_MAY_CALL, RING));
    assert.equal(cond(compiler, 'EnvoyPatch/shop/ring', 'Programmed')?.reason, 'RolledBack');
    assert.deepEqual(compiler.groupsPatchedBy('shop/ring'), []);

    // A changed spec is a new attempt: applied again, no stale rollback condition.
    compiler.update(objects(workloads(A), BUYER_MAY_CALL, RING.replace('RING_HASH', 'RANDOM')));
    assert.equal(cond(compiler, 'EnvoyPatch/shop/ring', 'Programmed'), undefined);
    assert.deepEqual(compiler.groupsPatchedBy('shop/ring'), [group]);
  });
});

describe('which resources a NACK is about', () => {
  const sent = ['inbound', 'outbound', 'route|80|shop/api', 'inbound|8080'];
  it("blames only the resources Envoy's error text names", () => {
    assert.deepEqual(
      rejectedResources(
        "Error adding/updating listener(s) inbound: error adding listener '0.0.0.0:15003': no filter chains specified",
        sent,
      ),
      ['inbound'],
    );
    assert.deepEqual(
      rejectedResources(
        'Only unique values for domains are permitted. Duplicate entry of domain a in route route|80|shop/api',
        sent,
      ),
      ['route|80|shop/api'],
    );
  });
  it('does not take a name for part of a longer one', () => {
    assert.deepEqual(rejectedResources('Error adding/updating listener(s) inbound|8080: bad', sent), [
      'inbound|8080',
    ]);
  });
  it('blames every resource sent when the text names none of them', () => {
    assert.deepEqual(rejectedResources('cluster store-v1: unsupported lb_policy RING_HASH', sent), sent);
  });
});
