/**
 * `ModelBuilder`: building one input set after another gives exactly what `buildModel` gives from
 * scratch, and model objects whose inputs did not change keep their identity.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { compileInputs } from '../../bench/compile';
import { buildModel, ModelBuilder, parseYamlObjects } from '../../src/smi';
import { edit, type Json, stringsOf } from './edits';
import { lcg, pod, sa, service, target, tcpRoute } from './helpers';

const GOLDEN = join(__dirname, '..', '..', '..', 'test', 'golden', 'cases');

describe('ModelBuilder', () => {
  const cases = readdirSync(GOLDEN)
    .filter((f) => f.endsWith('.in.yaml'))
    .sort();

  for (const file of cases) {
    it(`gives buildModel's bytes after every change: ${file}`, () => {
      let objects = parseYamlObjects(readFileSync(join(GOLDEN, file), 'utf8'), file).objects as Json[];
      const strings = stringsOf(objects);
      const builder = new ModelBuilder();
      const removed: Json[] = [];
      const next = lcg(file.length * 7919);
      for (let step = 0; step < 80; step++) {
        const incremental = builder.build(objects);
        // From scratch on copies, so nothing is shared with the incremental build, not even caches.
        const scratch = buildModel(structuredClone(objects));
        assert.equal(JSON.stringify(incremental), JSON.stringify(scratch), `${file}, step ${step}`);
        objects = edit(objects, removed, strings, next);
      }
    });
  }

  it('keeps every model object whose inputs did not change, and the model itself when nothing did', () => {
    const builder = new ModelBuilder();
    const base = compileInputs(40) as Json[];
    const first = builder.build(base).model;
    assert.equal(builder.build([...base]).model, first, 'the same inputs give the same model object');

    // One TrafficSplit weight changes: only that split is new.
    const isSplit20 = (o: Json): boolean => JSON.stringify(o).includes('"name":"split-20"');
    const changed = compileInputs(40, 70) as Json[];
    const splitChange = base.map((o, i) => (isSplit20(o) ? changed[i]! : o));
    const second = builder.build(splitChange).model;
    assert.notEqual(second, first);
    for (const part of [
      'settings',
      'namespaces',
      'services',
      'workloads',
      'access',
      'httpRouteGroups',
    ] as const)
      assert.equal(second[part], first[part], `${part} are the same objects`);
    assert.deepEqual(
      second.splits.filter((s, i) => s !== first.splits[i]).map((s) => s.name),
      ['split-20'],
    );

    // One EndpointSlice loses an endpoint: only its service is new; workloads and access, computed
    // again because services changed, come out equal and are the previous objects.
    const sliceIndex = splitChange.findIndex((o) => JSON.stringify(o).includes('"name":"svc-25-x"'));
    const slice = splitChange[sliceIndex] as { endpoints: Json[] };
    const sliceChange = [...splitChange];
    sliceChange[sliceIndex] = { ...slice, endpoints: slice.endpoints.slice(1) };
    const third = builder.build(sliceChange).model;
    assert.deepEqual(
      third.services.filter((s, i) => s !== second.services[i]).map((s) => s.name),
      ['svc-25'],
    );
    assert.equal(third.workloads, second.workloads);
    assert.equal(third.access, second.access);
    assert.equal(third.splits, second.splits);
    assert.equal(JSON.stringify(third), JSON.stringify(buildModel(structuredClone(sliceChange)).model));
  });

  it('sees a workload change ServiceAccount though no service changes with it', () => {
    // TrafficTargets read the ports each identity serves: when db-0 moves from ServiceAccount old
    // to new, the target port behind 5432 becomes part of what the target to new allows.
    const db = service('db', { ports: [{ name: 'tcp', port: 5432, targetPort: 15432 }] });
    const common = [
      db,
      tcpRoute('pg', [5432]),
      target('to-db', sa('new'), [sa('app')], [{ kind: 'TCPRoute', name: 'pg' }]),
    ];
    const builder = new ModelBuilder();
    const first = builder.build([
      ...common,
      pod('db-0', { labels: { app: 'db' }, sa: 'old', ip: '10.0.0.5' }),
    ]);
    const moved = [...common, pod('db-0', { labels: { app: 'db' }, sa: 'new', ip: '10.0.0.5' })];
    const second = builder.build(moved);
    assert.equal(second.model.services, first.model.services, 'no service changed');
    const inbound = (r: typeof first): unknown =>
      r.model.access[0]!.rules.map((rule) => ('inboundPorts' in rule ? rule.inboundPorts : null));
    assert.deepEqual(inbound(first), [[5432]]);
    assert.deepEqual(inbound(second), [[5432, 15432]]);
    assert.equal(JSON.stringify(second), JSON.stringify(buildModel(moved)));
  });
});
