/**
 * Real Envoy accepts what Weft compiles: every golden case (`cases/*.in.yaml`) and
 * `examples/bookstore` is compiled for the Envoy flavor through the production path, as `weft
 * render` does, and every distinct proxy config is loaded into the pinned Envoy with
 * `--mode validate` after its RDS, EDS and SDS references were made static
 * (src/envoy/static-bootstrap.ts). Each proxy must be accepted; a failure lists every refused
 * proxy with Envoy's own message.
 *
 * Every workload of a case is rendered, not only the proxy a case's `# golden:` line narrows its
 * golden file to (that line's `mtls` is honoured). Skipped, with the reason, when no Envoy binary
 * is found; CI always installs one (scripts/setup-envoy.sh).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ENVOY_VERSION, findEnvoy, NO_ENVOY } from '../../src/envoy/binary';
import { EnvoyChecker, percentile } from '../../src/envoy/validate-mode';
import { type ManifestFile, readManifests } from '../../src/inputs/folder';
import { renderMesh } from '../../src/mesh/render';

const ROOT = join(__dirname, '..', '..', '..');
const DIR = join(ROOT, 'test', 'golden', 'cases');

interface Case {
  readonly name: string;
  readonly files: () => Promise<ManifestFile[]>;
  readonly mtls?: boolean;
}

function mtlsOf(text: string): boolean | undefined {
  const m = /^# golden: (.*)$/m.exec(text);
  return m ? (JSON.parse(m[1]!) as { mtls?: boolean }).mtls : undefined;
}

const cases: Case[] = [
  ...readdirSync(DIR)
    .filter((f) => f.endsWith('.in.yaml'))
    .sort()
    .map((f): Case => {
      const text = readFileSync(join(DIR, f), 'utf8');
      return {
        name: f.replace(/\.in\.yaml$/, ''),
        files: async () => [{ source: f, text }],
        mtls: mtlsOf(text),
      };
    }),
  { name: 'examples/bookstore', files: () => readManifests([join(ROOT, 'examples', 'bookstore')]) },
];

const envoy = findEnvoy();
// One checker for the file: at most two Envoy processes at once, and a config shared by several
// proxies (or cases) is loaded once.
const checker = new EnvoyChecker({ envoy });

describe(`real Envoy ${ENVOY_VERSION} accepts every golden proxy (--mode validate)`, () => {
  for (const c of cases) {
    it(c.name, { skip: envoy ? false : NO_ENVOY }, async (t) => {
      const out = renderMesh(await c.files(), { flavors: ['envoy'], mtls: c.mtls ?? true });
      assert.ok(out.proxies.length > 0, `${c.name}: no Envoy proxy was rendered`);
      const verdicts = await checker.checkAll(out.proxies.map((p) => p.resources));
      const refused = verdicts.flatMap((v, i) =>
        v.accepted ? [] : [`${c.name}: proxy ${out.proxies[i]!.name}: ${v.message.replace(/\n/g, '\n    ')}`],
      );
      const s = checker.stats();
      t.diagnostic(
        `${out.proxies.length} proxies, ${new Set(verdicts.map((v) => v.hash)).size} distinct configs; ` +
          `Envoy runs so far ${s.runs}, p50 ${percentile(s.durationsMs, 50).toFixed(0)} ms, ` +
          `p99 ${percentile(s.durationsMs, 99).toFixed(0)} ms`,
      );
      assert.deepEqual(
        refused,
        [],
        `Envoy refused ${refused.length} of ${out.proxies.length} proxies:\n  ${refused.join('\n  ')}`,
      );
    });
  }
});
