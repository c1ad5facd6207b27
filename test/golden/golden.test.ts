/**
 * Golden files: every `cases/<name>.in.yaml` is rendered through the production path (model,
 * conditions, per-proxy resources of both flavors) and compared with `cases/<name>.out.yaml`.
 * `UPDATE_GOLDEN=1 npm test` rewrites the outputs and removes orphans; review their diffs like code.
 *
 * A case may start with a line `# golden: {"proxy": "ns/name", "flavors": ["grpc"], "mtls": false}`
 * to narrow what is rendered. Every rendered proxy must also pass the consistency checks.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { type RenderOptions, renderMesh } from '../../src/mesh/render';
import { checkConsistency } from '../../src/translate';

const DIR = join(__dirname, '..', '..', '..', 'test', 'golden', 'cases');
const update = process.env.UPDATE_GOLDEN === '1';

function optionsOf(text: string): RenderOptions {
  const m = /^# golden: (.*)$/m.exec(text);
  const o = m ? (JSON.parse(m[1]!) as RenderOptions) : {};
  return { flavors: ['envoy', 'grpc'], ...o, includeModel: true };
}

const inputs = readdirSync(DIR).filter((f) => f.endsWith('.in.yaml')).sort();

describe('golden files', () => {
  for (const input of inputs) {
    const name = input.replace(/\.in\.yaml$/, '');
    it(name, () => {
      const text = readFileSync(join(DIR, input), 'utf8');
      const out = renderMesh([{ source: input, text }], optionsOf(text));
      for (const p of out.proxies) assert.deepEqual(checkConsistency(p.resources), [], `${p.flavor} ${p.name} is consistent`);
      const rendered = stringify(out, { lineWidth: 0 });
      const file = join(DIR, `${name}.out.yaml`);
      if (update) writeFileSync(file, rendered);
      assert.ok(existsSync(file), `${name}.out.yaml is missing: run UPDATE_GOLDEN=1 npm test`);
      assert.equal(rendered, readFileSync(file, 'utf8'), `${name}: output differs from the golden file (UPDATE_GOLDEN=1 rewrites it)`);
    });
  }
  it('has no orphan outputs', () => {
    const wanted = new Set(inputs.map((f) => f.replace(/\.in\.yaml$/, '.out.yaml')));
    for (const f of readdirSync(DIR).filter((x) => x.endsWith('.out.yaml'))) {
      if (wanted.has(f)) continue;
      if (update) unlinkSync(join(DIR, f));
      else assert.fail(`${f} has no ${f.replace('.out.yaml', '.in.yaml')}: remove it (UPDATE_GOLDEN=1 does)`);
    }
  });
});
