/**
 * `weft diff` and the JSON diff under it: a diff applied with Weft's own JSON Patch gives the new
 * document back, and the command shows exactly what an EnvoyPatch changes on which proxy.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { ResourceDiff } from '../../src/cli/diff';
import { diffJson, unifiedDiff } from '../../src/patch/diff';
import { applyJsonPatch } from '../../src/patch/json-patch';
import { HOSTILE, patchManifest } from '../patch/hostile-fixture';

const ROOT = join(__dirname, '..', '..', '..');

/** Runs the real CLI (a child process, so its output cannot mix with the test reporter's). */
function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'weft.js'), 'diff', ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

describe('diffJson', () => {
  it('gives a JSON Patch that turns the old document into the new one', () => {
    const before = {
      name: 'c',
      lb_policy: 'ROUND_ROBIN',
      hosts: [{ a: 1 }, { a: 2 }, { a: 3 }],
      meta: { 'x/y': 1, gone: true },
    };
    const after = {
      name: 'c',
      hosts: [{ a: 1 }, { a: 5 }],
      meta: { 'x/y': 2, added: 'z' },
      connect_timeout: '2s',
    };
    const ops = diffJson(before, after);
    assert.deepEqual(applyJsonPatch(before, ops), after);
    assert.ok(
      ops.some((o) => o.path === '/meta/x~1y'),
      'pointer tokens are escaped',
    );
    assert.deepEqual(diffJson(after, after), []);
  });
});

describe('unifiedDiff', () => {
  it('shows changed lines with context in hunks, and nothing for equal texts', () => {
    const a = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'].join('\n');
    const b = ['a', 'B', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l'].join('\n');
    assert.deepEqual(unifiedDiff(a, b, 1), [
      '@@ -1,3 +1,3 @@',
      ' a',
      '-b',
      '+B',
      ' c',
      '@@ -11,1 +11,2 @@',
      ' k',
      '+l',
    ]);
    assert.deepEqual(unifiedDiff(a, a), []);
    assert.deepEqual(unifiedDiff('', 'x\n'), ['@@ -0,0 +1,1 @@', '+x']);
  });
});

describe('weft diff', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-diff-'));
  const patch = join(dir, 'patch.yaml');
  writeFileSync(
    patch,
    `apiVersion: weft.dev/v1alpha1
kind: EnvoyPatch
metadata: { name: faster-connect, namespace: bookbuyer }
spec:
  patches:
    - target: { type: Cluster, service: { name: bookstore-v1, namespace: bookstore, port: 14001 } }
      merge: { connect_timeout: 2s }
`,
  );

  it('shows what an EnvoyPatch changes, on the proxies it selects only', async () => {
    const r = await run([
      '-f',
      join(ROOT, 'examples', 'bookstore'),
      '--patch',
      patch,
      '--flavor',
      'grpc',
      '-o',
      'json',
    ]);
    assert.equal(r.code, 1, 'changes: exit 1');
    const diffs = JSON.parse(r.out) as ResourceDiff[];
    assert.deepEqual(diffs, [
      {
        proxy: 'bookbuyer/bookbuyer',
        flavor: 'grpc',
        type: 'clusters',
        name: 'outbound|14001|bookstore/bookstore-v1',
        change: 'changed',
        ops: [{ op: 'add', path: '/connect_timeout', value: '2s' }],
      },
    ]);
    const text = await run(['-f', join(ROOT, 'examples', 'bookstore'), '--patch', patch, '--flavor', 'grpc']);
    assert.match(
      text.out,
      /=== grpc proxy bookbuyer\/bookbuyer\n~ clusters outbound\|14001\|bookstore\/bookstore-v1\n {2}@@ -\d+,\d+ \+\d+,\d+ @@\n/,
    );
    assert.match(text.out, /\n {2}\+connect_timeout: 2s\n/, 'the added line, as YAML');
    assert.doesNotMatch(text.out, /^ {2}-/m, 'nothing was removed');
  });

  it('exits 2 and says why when the patch is refused, even though no proxy changes', async () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      `apiVersion: weft.dev/v1alpha1
kind: EnvoyPatch
metadata: { name: typo, namespace: bookbuyer }
spec:
  patches:
    - target: { type: Cluster, service: { name: bookstore-v1, namespace: bookstore, port: 14001 } }
      merge: { connect_timout: 2s }
`,
    );
    const r = await run(['-f', join(ROOT, 'examples', 'bookstore'), '--patch', bad, '--flavor', 'grpc']);
    assert.equal(r.code, 2);
    assert.match(r.out, /No proxy config changes/);
    assert.match(
      r.err,
      /bookbuyer\/typo is applied nowhere: .*spec\.patches\[0\].*unknown field "connect_timout"/,
    );
  });

  it('exits 2 on a patch Envoy would refuse, with Envoy checking it or without', async () => {
    const h = HOSTILE.find((x) => x.name === 'router-not-last')!;
    const hostile = join(dir, 'hostile.yaml');
    writeFileSync(hostile, patchManifest(h.name, h.patches).text);
    for (const envoy of [[], ['--no-envoy']]) {
      const r = await run(['-f', join(ROOT, 'examples', 'bookstore'), '--patch', hostile, ...envoy]);
      assert.equal(r.code, 2, r.err);
      assert.ok(r.err.includes(`bookbuyer/${h.name} is applied nowhere`), r.err);
      assert.ok(r.err.includes(h.native), r.err);
    }
  });

  it('exits 0 when nothing changes and 2 on unusable arguments', async () => {
    const same = await run([
      '-f',
      join(ROOT, 'examples', 'bookstore'),
      '-f',
      join(ROOT, 'examples', 'bookstore'),
    ]);
    assert.equal(same.code, 0);
    assert.match(same.out, /No proxy config changes/);
    assert.equal((await run(['-f', join(ROOT, 'examples', 'bookstore')])).code, 2);
    rmSync(dir, { recursive: true, force: true });
  });
});
