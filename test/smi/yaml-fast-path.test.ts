/**
 * The YAML fast path (js-yaml with a core schema of Weft's own) must read every text it takes
 * exactly as the `yaml` library does, and hand everything else to that library: the library's
 * reading is what users were promised (YAML 1.2 core scalars, alias limit, error positions).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { parseAllDocuments } from 'yaml';
import { bigGroupYaml } from '../../bench/big-group';
import { fastYamlObjects, parseYamlObjects } from '../../src/smi/load';

/** The `yaml` library's objects for `text`, or null when any document has an error. */
function reference(text: string): unknown[] | null {
  const docs = parseAllDocuments(text, { logLevel: 'silent' });
  if (!Array.isArray(docs)) return [];
  if (docs.some((d) => d.errors.length > 0)) return null;
  try {
    return docs.map((d) => d.toJS()).filter((v) => v !== null && v !== undefined);
  } catch {
    return null;
  }
}

/** Plain scalars whose type YAML 1.2's core schema and other readings (1.1, js-yaml's) disagree on. */
const TRICKY = [
  '1_000',
  '0b101',
  '0o17',
  '017',
  '0x1F',
  '0x1f',
  '+12',
  '-0',
  '1e3',
  '1E3',
  '.5',
  '5.',
  '.inf',
  '-.Inf',
  '+.INF',
  '.NaN',
  '~',
  'null',
  'Null',
  'NULL',
  'nUll',
  'true',
  'True',
  'TRUE',
  'tRue',
  'yes',
  'no',
  'on',
  'off',
  'y',
  'n',
  '2024-01-01',
  '2024-01-01T00:00:00Z',
  '12:30:00',
  '9007199254740993',
  '-.5e-3',
  '1.0e+3',
  '0.',
  '+0x1',
  '-0x1',
  '-0o7',
  '0B1',
  '00',
  '08',
  '1e400',
  '""',
  "''",
  '"\\x41"',
  '"\\u00e9"',
  '__proto__',
  'constructor',
  "'it''s'",
  '"a\\tb"',
  'a b',
  '-',
  '--',
  '0',
  '-1',
  '+1.5e-7',
];

describe('YAML fast path', () => {
  it('reads each tricky plain scalar as the yaml library does, or declines', () => {
    for (const v of TRICKY) {
      const text = `k: ${v}\nlist: [${v}, x]\n`;
      const fast = fastYamlObjects(text);
      if (fast !== null) assert.deepEqual(fast, reference(text), `k: ${v}`);
      assert.deepEqual(parseYamlObjects(text, 't.yaml').objects, reference(text) ?? [], `k: ${v}`);
    }
  });

  it('hands aliases, tags, directives, explicit and collection keys, errors and non-mappings to the yaml library', () => {
    const texts = [
      'a: &x 1\nb: *x\n',
      'a: !!binary aGk=\n',
      'a: !foo bar\n',
      '%YAML 1.1\n---\na: yes\n',
      '? a\n: 1\n',
      '[a, b]: 1\n',
      '{[a]: 1}\n',
      'x: {a: 1}: 2\n',
      'a: 1\na: 2\n',
      'a: b: c\n',
      '- 1\n- 2\n',
      'just text\n',
      `${'['.repeat(5000)}${']'.repeat(5000)}\n`,
    ];
    for (const t of texts) assert.equal(fastYamlObjects(t), null, JSON.stringify(t.slice(0, 40)));
    // What the library makes of them is unchanged: for example, YAML 1.1's `yes` under its directive.
    assert.deepEqual(parseYamlObjects('%YAML 1.1\n---\na: yes\n', 't.yaml').objects, [{ a: true }]);
    assert.equal(parseYamlObjects('a: 1\na: 2\n', 't.yaml').conditions[0]?.reason, 'YamlParseError');
  });

  it('agrees with the yaml library on generated documents', () => {
    const token = fc.oneof(
      fc.constantFrom(...TRICKY),
      fc
        .string({ maxLength: 12 })
        .filter((s) => /^[A-Za-z0-9_./+-][A-Za-z0-9_ ./+-]*$/.test(s) && !/\s$/.test(s)),
    );
    const key = fc.constantFrom('a', 'b', 'name', 'weight', '1', 'true', 'null', '0x1');
    type Node =
      | { kind: 'scalar'; v: string }
      | { kind: 'map'; entries: [string, Node][] }
      | { kind: 'list'; items: Node[] };
    const { node } = fc.letrec<{ node: Node }>((tie) => ({
      node: fc.oneof(
        { depthSize: 'small', withCrossShrink: true },
        token.map((v) => ({ kind: 'scalar' as const, v })),
        fc
          .array(fc.tuple(key, tie('node')), { maxLength: 4 })
          .map((entries) => ({ kind: 'map' as const, entries })),
        fc.array(tie('node'), { maxLength: 4 }).map((items) => ({ kind: 'list' as const, items })),
      ),
    }));
    /** Block style for maps and lists at top, flow style inside lists, so both grammars are used. */
    const flow = (n: Node): string =>
      n.kind === 'scalar'
        ? n.v
        : n.kind === 'list'
          ? `[${n.items.map(flow).join(', ')}]`
          : `{${n.entries.map(([k, v]) => `${k}: ${flow(v)}`).join(', ')}}`;
    const block = (n: Node, indent: string): string =>
      n.kind === 'map' && n.entries.length > 0
        ? n.entries
            .map(([k, v]) =>
              v.kind === 'map' && v.entries.length > 0
                ? `${indent}${k}:\n${block(v, `${indent}  `)}`
                : `${indent}${k}: ${flow(v)}\n`,
            )
            .join('')
        : `${indent}x: ${flow(n)}\n`;
    let taken = 0;
    fc.assert(
      fc.property(fc.array(node, { minLength: 1, maxLength: 3 }), (docs) => {
        const text = docs.map((d) => block(d, '')).join('---\n');
        const fast = fastYamlObjects(text);
        if (fast === null) return;
        taken++;
        const ref = reference(text);
        assert.ok(
          isDeepStrictEqual(fast, ref),
          `${text}\nfast: ${JSON.stringify(fast)}\nyaml: ${JSON.stringify(ref)}`,
        );
      }),
      // A fixed seed keeps the share of fast-path documents, asserted below, the same on every run.
      { numRuns: 400, seed: 20261203 },
    );
    // Keys such as `null:` and `0x1:` send a document to the yaml library; the rest is compared.
    assert.ok(taken > 100, `only ${taken} of 400 documents took the fast path`);
  });

  it('takes the 10,000-match route group and reads it as the yaml library does', () => {
    const text = bigGroupYaml(10_000);
    const fast = fastYamlObjects(text);
    assert.ok(fast, 'the big group takes the fast path');
    assert.deepEqual(fast, reference(text));
  });
});
