/**
 * A file of `weft serve --config-dir` that stops parsing: its last good version keeps serving, the
 * condition says so, and the failure is logged once (file, line, column, reason) until it changes.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { FolderSource } from '../../src/inputs/folder-source';
import { captureLogs } from '../../src/log';
import { ConfigDir } from './mesh-fixture';

const GOOD = 'apiVersion: v1\nkind: Namespace\nmetadata: { name: app }\n';
const UNCLOSED = 'apiVersion: v1\nkind: Namespace\nmetadata: { name: app\n';
const QUOTE = 'apiVersion: v1\nkind: "Namespace\nmetadata: { name: app }\n';

describe('FolderSource parse failures', () => {
  const dir = new ConfigDir();
  const source = new FolderSource(dir.path, 60_000, 60_000);
  const lines: string[] = [];
  const release = captureLogs((l) => lines.push(l));
  after(() => {
    release();
    source.stop();
    dir.remove();
  });
  const folderLines = (): string[] => lines.splice(0).filter((l) => l.includes('component=folder'));

  it('logs a new failure once, with file, line, column and reason, and keeps the last good version', async () => {
    dir.write('ns.yaml', GOOD);
    await source.reload();
    assert.deepEqual(folderLines(), []);

    dir.write('ns.yaml', UNCLOSED);
    await source.reload();
    const logged = folderLines();
    assert.equal(logged.length, 1, logged.join('\n'));
    assert.match(
      logged[0]!,
      /^level=error component=folder msg="file does not parse; keeping its last good version/,
    );
    assert.match(
      logged[0]!,
      / file=ns\.yaml document=1 line=4 column=1 reason="Flow map in block collection/,
    );
    const snap = source.snapshot();
    assert.equal(snap.objects.length, 1, 'the last good Namespace still serves');
    const cond = snap.conditions.find((c) => c.reason === 'YamlParseError');
    assert.match(
      cond?.message ?? '',
      /^File ns\.yaml: document 1 is not valid YAML at line 4, column 1: .*the file's last good version keeps serving;/,
    );

    await source.reload();
    assert.deepEqual(folderLines(), [], 'the same failure is not logged again');

    dir.write('ns.yaml', QUOTE);
    await source.reload();
    const again = folderLines();
    assert.equal(again.length, 1, again.join('\n'));
    assert.match(again[0]!, /reason="Missing closing \\"quote"/);

    dir.write('ns.yaml', GOOD);
    await source.reload();
    assert.deepEqual(folderLines(), ['level=info component=folder msg="file parses again" file=ns.yaml']);
  });

  it('logs a file broken from the start, whose documents are left out', async () => {
    dir.write('new.yaml', UNCLOSED);
    await source.reload();
    const logged = folderLines();
    assert.equal(logged.length, 1, logged.join('\n'));
    assert.match(
      logged[0]!,
      /msg="file does not parse; its broken documents are left out; fix the YAML there" file=new\.yaml/,
    );
  });

  it('keeps the last good version of an object edited to an invalid one, with a condition', async () => {
    const splitYaml = (weight: string): string =>
      `apiVersion: split.smi-spec.io/v1alpha4\nkind: TrafficSplit\nmetadata: { name: ab, namespace: app }\nspec:\n  service: api\n  backends:\n    - { service: api-v1, weight: ${weight} }\n    - { service: api-v2, weight: 10 }\n`;
    const splitOf = (): { spec: { backends: { weight: unknown }[] } } | undefined =>
      source.snapshot().objects.find((o) => (o as { kind?: string }).kind === 'TrafficSplit') as
        | { spec: { backends: { weight: unknown }[] } }
        | undefined;
    // Another object in the same file parses and changes: only the broken object is held back.
    dir.write('split.yaml', splitYaml('90'));
    await source.reload();
    assert.equal(splitOf()?.spec.backends[0]?.weight, 90);

    dir.write('split.yaml', splitYaml('ninety'));
    await source.reload();
    assert.equal(splitOf()?.spec.backends[0]?.weight, 90, 'the last good split keeps serving');
    const cond = source.snapshot().conditions.find((c) => c.reason === 'LastGoodKept');
    assert.equal(cond?.object, 'TrafficSplit/app/ab');
    assert.match(
      cond?.message ?? '',
      /^TrafficSplit app\/ab: the new version is refused: spec\.backends\[0\]\.weight .*; the last good version keeps serving/,
    );

    dir.write('split.yaml', splitYaml('50'));
    await source.reload();
    assert.equal(splitOf()?.spec.backends[0]?.weight, 50, 'a good edit replaces it');
    assert.equal(
      source.snapshot().conditions.find((c) => c.reason === 'LastGoodKept'),
      undefined,
    );

    // Deleted, then re-created broken: nothing is kept from before the delete.
    dir.drop('split.yaml');
    await source.reload();
    dir.write('split.yaml', splitYaml('ninety'));
    await source.reload();
    assert.equal(splitOf()?.spec.backends[0]?.weight, 'ninety', 'left for the model to refuse (InvalidSpec)');
    assert.equal(
      source.snapshot().conditions.find((c) => c.reason === 'LastGoodKept'),
      undefined,
    );
    dir.drop('split.yaml');
    folderLines();
  });
});
