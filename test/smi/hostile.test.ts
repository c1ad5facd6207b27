/**
 * Hostile and careless input, generated: one SMI object of a working mesh is edited in a random
 * way (a field set to a hostile value, a field deleted, its apiVersion or name changed), and the
 * mesh is compiled through the same stages `weft serve` uses (last good object, model, every
 * proxy of both flavors). Whatever the edit:
 * - nothing throws;
 * - a refused edit is a condition on that object that names it, and its last good version keeps
 *   serving: every proxy's snapshot is byte for byte what it was before the edit;
 * - an edit that is taken changes nothing but what depends on that object, and undoing it gives
 *   back exactly the snapshots of the working mesh.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { LastGoodObjects } from '../../src/inputs/last-good';
import { MeshCompiler } from '../../src/mesh/compiler';
import type { Condition } from '../../src/smi/model';
import { SMI_KINDS } from '../../src/smi/normalize';
import { SnapshotCache } from '../../src/xds/cache/cache';
import { envoyResourceEncoder } from '../../src/xds/encoder';

const ROOT = join(__dirname, '..', '..', '..');
type Raw = Record<string, unknown>;

/** A working mesh with every SMI kind: an A/B split, access with HTTP and TCP rules, UDP. */
const BASE: Raw[] = [
  ...parseAllDocuments(
    readFileSync(join(ROOT, 'test', 'golden', 'cases', 'split-v1alpha4-ab-matches.in.yaml'), 'utf8'),
  ).map((d) => d.toJSON() as Raw),
  ...parseAllDocuments(`apiVersion: specs.smi-spec.io/v1alpha4
kind: TCPRoute
metadata: { name: tcp-any, namespace: app }
spec: { matches: { ports: [8080] } }
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: UDPRoute
metadata: { name: udp-any, namespace: app }
spec: { matches: { ports: [5353] } }
---
apiVersion: access.smi-spec.io/v1alpha2
kind: TrafficTarget
metadata: { name: tcp-target, namespace: app }
spec:
  destination: { kind: ServiceAccount, name: server, namespace: app }
  rules: [{ kind: TCPRoute, name: tcp-any }]
  sources: [{ kind: ServiceAccount, name: client, namespace: app }]
---
apiVersion: access.smi-spec.io/v1alpha4
kind: IdentityBinding
metadata: { name: clients, namespace: app }
spec:
  schemes:
    podLabelSelectors: [{ matchLabels: { app: client } }]
    spiffeIdentities: [cluster.local/ns/app/sa/client]
---
apiVersion: access.smi-spec.io/v1alpha4
kind: TrafficTarget
metadata: { name: bound-target, namespace: app }
spec:
  destination: { kind: ServiceAccount, name: server, namespace: app }
  rules: [{ kind: TCPRoute, name: tcp-any }]
  sources: [{ kind: IdentityBinding, group: access.smi-spec.io, name: clients, namespace: app }]
`).map((d) => d.toJSON() as Raw),
];

const TARGETS = BASE.map((o, i) => [o, i] as const)
  .filter(([o]) => SMI_KINDS.has(String(o.kind)))
  .map(([, i]) => i);

/** The versions of each SMI group, and some that are not. */
const VERSIONS = [
  'split.smi-spec.io/v1alpha1',
  'split.smi-spec.io/v1alpha2',
  'split.smi-spec.io/v1alpha3',
  'split.smi-spec.io/v1alpha4',
  'access.smi-spec.io/v1alpha1',
  'access.smi-spec.io/v1alpha2',
  'access.smi-spec.io/v1alpha3',
  'access.smi-spec.io/v1alpha4',
  'specs.smi-spec.io/v1alpha1',
  'specs.smi-spec.io/v1alpha4',
  'split.smi-spec.io/v9',
  '',
];

/** Values users and attackers write: wrong types, huge and negative numbers, hostile strings. */
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    'ninety',
    '-1',
    '',
    '\u0000',
    'a\u202eb',
    'x'.repeat(70_000),
    '/x(abcdefghij){40}',
    '(',
    '*',
    '..',
    'None',
    -1,
    0,
    2 ** 60,
    Number.MAX_SAFE_INTEGER,
    1.5,
    true,
    null,
  ),
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.array(fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), { maxLength: 4 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.oneof(fc.string({ maxLength: 8 }), fc.integer()), {
    maxKeys: 3,
  }),
);

/** Every path to a value inside `o` (keys and array indexes), up to a depth. */
function paths(o: unknown, depth = 5, at: (string | number)[] = []): (string | number)[][] {
  if (depth === 0 || typeof o !== 'object' || o === null) return [at];
  const keys: (string | number)[] = Array.isArray(o) ? o.map((_, i) => i) : Object.keys(o);
  return [
    at,
    ...keys.flatMap((k) => paths((o as Record<string | number, unknown>)[k], depth - 1, [...at, k])),
  ];
}

type Edit =
  | { op: 'set'; path: number; value: unknown }
  | { op: 'delete'; path: number }
  | { op: 'apiVersion'; value: string }
  | { op: 'name'; value: unknown };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set' as const), path: fc.nat(), value: hostile }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete' as const), path: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant('apiVersion' as const), value: fc.constantFrom(...VERSIONS) }),
  },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('name' as const), value: hostile }) },
);

function applyEdit(original: Raw, e: Edit): Raw {
  const o = structuredClone(original);
  if (e.op === 'apiVersion') o.apiVersion = e.value;
  else if (e.op === 'name') (o.metadata as Raw).name = e.value;
  else {
    // Paths inside the spec (and the top level of v1alpha1 access objects), never the root.
    const all = paths(o).filter(
      (p) => p.length > 0 && p[0] !== 'apiVersion' && p[0] !== 'kind' && p[0] !== 'metadata',
    );
    const path = all[e.path % all.length]!;
    let parent = o as Record<string | number, unknown>;
    for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
    const last = path.at(-1)!;
    if (e.op === 'delete') {
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete parent[last];
    } else parent[last] = e.value;
  }
  return o;
}

/** The mesh as `weft serve` compiles it: last good objects, then the compiler, every proxy active. */
class Mesh {
  private readonly lastGood = new LastGoodObjects();
  private readonly cache = new SnapshotCache();
  readonly compiler = new MeshCompiler(this.cache, envoyResourceEncoder(), { mtls: true });
  private groups: string[] = [];

  update(objects: readonly unknown[]): readonly Condition[] {
    const r = this.lastGood.apply(objects);
    return this.compiler.update(r.objects, r.conditions).conditions;
  }

  activateAll(): void {
    for (const w of this.compiler.currentModel.workloads) {
      for (const flavor of ['envoy', 'grpc'] as const) {
        this.groups.push(this.compiler.activate({ workload: w, flavor }));
      }
    }
    this.groups = [...new Set(this.groups)].sort();
    assert.ok(this.groups.length >= 4, `proxies of both flavors: ${this.groups}`);
  }

  versions(): Record<string, string | undefined> {
    return Object.fromEntries(this.groups.map((g) => [g, this.cache.get(g)?.version]));
  }
}

describe('hostile input, generated', () => {
  it('an edit of one SMI object never throws, is refused with a condition naming it or taken, and undoing it restores every snapshot', (t) => {
    const mesh = new Mesh();
    const baseConditions = mesh.update(BASE);
    assert.deepEqual(
      baseConditions.filter(
        (c) => c.severity === 'Error' && !(c.status === 'True' && c.type === 'Conflicted'),
      ),
      [],
      'the working mesh compiles clean',
    );
    mesh.activateAll();
    const good = mesh.versions();
    for (const v of Object.values(good)) assert.ok(v, 'every proxy has a snapshot');
    let refused = 0;
    let taken = 0;
    fc.assert(
      fc.property(fc.constantFrom(...TARGETS), edit, (index, e) => {
        const original = BASE[index]!;
        const edited = applyEdit(original, e);
        const objects = BASE.map((o, i) => (i === index ? edited : o));
        const meta = original.metadata as Raw;
        const label = `${String(original.kind)}/${String(meta.namespace ?? 'default')}/${String(meta.name)}`;
        const conditions = mesh.update(objects);
        const kept = conditions.find((c) => c.reason === 'LastGoodKept' && c.object === label);
        if (kept) {
          refused++;
          // The last good version serves: not one proxy's config moved.
          assert.deepEqual(mesh.versions(), good, `${label} refused (${kept.message}) yet snapshots changed`);
          assert.match(kept.message, new RegExp(`^${String(original.kind)} `));
        } else {
          taken++;
        }
        for (const c of conditions) {
          assert.equal(typeof c.object, 'string');
          assert.ok(c.object.length < 1_000, `a condition's object stays short: ${c.object.slice(0, 80)}...`);
          assert.ok(c.message.length < 20_000, `a condition's message stays short (${c.object})`);
        }
        // Undo: exactly the working mesh again.
        mesh.update(BASE);
        assert.deepEqual(mesh.versions(), good, `undoing the edit of ${label} restores every snapshot`);
      }),
      { numRuns: 150, seed: 20261203 },
    );
    assert.ok(
      refused > 10 && taken > 10,
      `both kinds of edit were generated: ${refused} refused, ${taken} taken`,
    );
    t.diagnostic(`150 edits: ${refused} refused with the last good version kept, ${taken} taken`);
  });
});
