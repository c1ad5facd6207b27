/**
 * Big manifest files are parsed on a worker thread in `weft serve --config-dir`, so the event loop
 * (xDS, admin) keeps turning meanwhile. Checked without timing: the loop must run callbacks while
 * a parse is outstanding, which an inline parse (finished before the call returns) never allows,
 * and the result must be exactly what the main thread's parse gives, errors and positions included.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { FolderSource } from '../../src/inputs/folder-source';
import { captureLogs } from '../../src/log';
import { parseYamlObjects } from '../../src/smi/load';
import { HelperThread } from '../../src/worker/helper-thread';
import { turnsWhile } from './loop-turns';
import { ConfigDir } from './mesh-fixture';

const GROUP = `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: routes, namespace: app }
spec:
  matches:
${Array.from({ length: 2_000 }, (_, i) => `  - name: m${i}\n    pathRegex: /api/${i}(/.*)?\n    methods: [GET]\n`).join('')}`;
const BROKEN = 'apiVersion: v1\nkind: Namespace\nmetadata: { name: app\n';
const ALIASES = `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [${'*a, '.repeat(10)}*a]\nc: [${'*b, '.repeat(10)}*b]\n`;

describe('HelperThread: parsing', () => {
  const parser = new HelperThread(0);
  after(() => parser.stop());

  it('parses off the main thread: the loop turns while a big file is parsed', async () => {
    const text = `${GROUP}---\n${BROKEN}---\n${ALIASES}`;
    const { value, turns } = await turnsWhile(parser.parse(text, 'big.yaml'));
    assert.ok(turns > 0, 'the event loop ran while the file was parsed');
    assert.equal(parser.doneOffThread, 1);
    assert.deepEqual(value, parseYamlObjects(text, 'big.yaml'));
    assert.equal(value.objects.length, 1);
    assert.deepEqual(
      value.parseErrors.map((e) => e.document),
      [2, 3],
      'the unclosed mapping and the alias expansion beyond the limit are both refused, as inline',
    );
  });

  it('parses small files inline, with the same result', async () => {
    const inline = new HelperThread();
    const { value, turns } = await turnsWhile(inline.parse(BROKEN, 'small.yaml'));
    inline.stop();
    assert.equal(turns, 0);
    assert.equal(inline.doneOffThread, 0);
    assert.deepEqual(value, parseYamlObjects(BROKEN, 'small.yaml'));
  });

  it('parses on the main thread after it is stopped', async () => {
    const stopped = new HelperThread(0);
    stopped.stop();
    assert.deepEqual(await stopped.parse(GROUP, 'g.yaml'), parseYamlObjects(GROUP, 'g.yaml'));
    assert.equal(stopped.doneOffThread, 0);
  });
});

describe('FolderSource with the parsing thread', () => {
  const dir = new ConfigDir();
  const thread = new HelperThread(0);
  const source = new FolderSource(dir.path, 60_000, 60_000, 0, thread);
  // The broken file's one log line is checked elsewhere (folder-source.test.ts); keep it quiet.
  const release = captureLogs(() => undefined);
  after(() => {
    release();
    source.stop();
    thread.stop();
    dir.remove();
  });

  it('serves what the file holds, parsed on the thread, and keeps the last good version of a broken file', async () => {
    dir.write('routes.yaml', GROUP);
    await source.reload();
    assert.ok(thread.doneOffThread > 0);
    assert.deepEqual(source.snapshot().objects, parseYamlObjects(GROUP, 'routes.yaml').objects);
    dir.write('routes.yaml', `${GROUP.slice(0, 200)}\n  - { broken`);
    await Promise.all([source.reload(), source.reload()]);
    assert.deepEqual(source.snapshot().objects, parseYamlObjects(GROUP, 'routes.yaml').objects);
    assert.ok(source.snapshot().conditions.some((c) => c.reason === 'YamlParseError'));
  });
});
