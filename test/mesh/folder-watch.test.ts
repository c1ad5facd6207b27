/**
 * `weft serve --config-dir` follows the folder however a file is saved: written in place, replaced
 * by rename (`sed -i`, an editor's atomic save), or a whole folder moved in and out. Filesystem
 * trouble made while it runs (a symbolic link loop) is a condition and a log line, never the end of
 * the process. The backstop poll is off here, so each case shows the change events themselves.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FolderSource } from '../../src/inputs/folder-source';
import { captureLogs } from '../../src/log';
import { ConfigDir } from './mesh-fixture';

const ns = (name: string): string => `apiVersion: v1\nkind: Namespace\nmetadata: { name: ${name} }\n`;

describe('FolderSource follows every way of saving a file', () => {
  const dir = new ConfigDir();
  const outside = mkdtempSync(join(tmpdir(), 'weft-outside-'));
  const source = new FolderSource(dir.path, 20, 200, 0);
  const lines: string[] = [];
  const release = captureLogs((l) => lines.push(l));
  after(() => {
    release();
    source.stop();
    dir.remove();
    rmSync(outside, { recursive: true, force: true });
  });

  const names = (): string[] =>
    source
      .snapshot()
      .objects.map((o) => (o as { metadata: { name: string } }).metadata.name)
      .sort();

  /** Waits for the folder's objects to satisfy `check`, up to a generous deadline. */
  const until = async (what: string, check: () => boolean): Promise<void> => {
    const end = Date.now() + 10_000;
    while (!check()) {
      if (Date.now() > end) throw new Error(`never happened: ${what} (objects: ${names().join(', ')})`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  it('sees a write in place', async () => {
    dir.write('ns.yaml', ns('one'));
    await source.start();
    assert.deepEqual(names(), ['one']);
    dir.write('ns.yaml', ns('two'));
    await until('two', () => names().join() === 'two');
  });

  it('sees sed -i, which replaces the file by rename, and the writes after it', async () => {
    execFileSync('sed', ['-i', 's/two/three/', join(dir.path, 'ns.yaml')]);
    await until('three', () => names().join() === 'three');
    dir.write('ns.yaml', ns('four'));
    await until('four after the rename', () => names().join() === 'four');
  });

  it('sees an atomic save (write a temporary file, rename it over the old one)', async () => {
    writeFileSync(join(dir.path, '.ns.yaml.swp'), ns('five'));
    renameSync(join(dir.path, '.ns.yaml.swp'), join(dir.path, 'ns.yaml'));
    await until('five', () => names().join() === 'five');
    writeFileSync(join(outside, 'ns.yaml'), ns('six'));
    renameSync(join(outside, 'ns.yaml'), join(dir.path, 'ns.yaml'));
    await until('six, moved in from another folder', () => names().join() === 'six');
    dir.write('ns.yaml', ns('seven'));
    await until('seven', () => names().join() === 'seven');
  });

  it('sees a folder moved in, edits inside it, and the folder moved out', async () => {
    mkdirSync(join(outside, 'team'));
    writeFileSync(join(outside, 'team', 'a.yaml'), ns('team-a'));
    renameSync(join(outside, 'team'), join(dir.path, 'team'));
    await until('team-a', () => names().includes('team-a'));
    writeFileSync(join(dir.path, 'team', 'b.yaml'), ns('team-b'));
    await until('team-b, added inside the moved-in folder', () => names().includes('team-b'));
    execFileSync('sed', ['-i', 's/team-a/team-c/', join(dir.path, 'team', 'a.yaml')]);
    await until('team-c', () => names().includes('team-c') && !names().includes('team-a'));
    renameSync(join(dir.path, 'team'), join(outside, 'team'));
    await until('the team folder gone', () => names().join() === 'seven');
    // Edits in the folder now outside are not the config folder's business.
    writeFileSync(join(outside, 'team', 'd.yaml'), ns('team-d'));
    dir.write('ns.yaml', ns('eight'));
    await until('eight', () => names().join() === 'eight');
  });

  it('reports a symbolic link loop made while it runs, keeps serving, and recovers', async () => {
    lines.length = 0;
    symlinkSync('loop.yaml', join(dir.path, 'loop.yaml'));
    mkdirSync(join(dir.path, 'sub'));
    symlinkSync('..', join(dir.path, 'sub', 'up'));
    writeFileSync(join(dir.path, 'sub', 'x.yaml'), ns('x'));
    await until('x', () => names().includes('x'));
    const cond = source.snapshot().conditions.find((c) => c.reason === 'FileUnreadable');
    assert.equal(cond?.object, 'File//loop.yaml');
    assert.equal(cond?.field, 'file');
    assert.match(cond?.message ?? '', /^File loop\.yaml: cannot be read \(ELOOP: a symbolic link loop\)/);
    assert.deepEqual(
      names(),
      ['eight', 'x'],
      'the rest keeps serving; the linked-back folder is not read twice',
    );
    const logged = lines.filter((l) => l.includes('code=ELOOP'));
    assert.equal(logged.length, 1, lines.join('\n'));
    assert.match(logged[0]!, /level=error component=folder msg="cannot read part of the config folder/);
    rmSync(join(dir.path, 'loop.yaml'));
    dir.write('ns.yaml', ns('nine'));
    await until('nine', () => names().includes('nine'));
    assert.equal(
      source.snapshot().conditions.find((c) => c.reason === 'FileUnreadable'),
      undefined,
    );
  });

  it('keeps what a file held when it turns into a link loop', async () => {
    dir.write('keep.yaml', ns('kept'));
    await until('kept', () => names().includes('kept'));
    // Swapped in by rename, so no reload sees the file missing in between.
    symlinkSync('keep.yaml', join(dir.path, '.keep.link'));
    renameSync(join(dir.path, '.keep.link'), join(dir.path, 'keep.yaml'));
    await until('the condition', () =>
      source.snapshot().conditions.some((c) => c.object === 'File//keep.yaml'),
    );
    assert.ok(names().includes('kept'));
    assert.match(
      source.snapshot().conditions.find((c) => c.object === 'File//keep.yaml')?.message ?? '',
      /the file's last good version keeps serving/,
    );
  });
});
