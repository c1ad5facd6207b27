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
});
