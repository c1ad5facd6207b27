/**
 * `weft demo` as a user runs it: the real CLI process, its live counts, and an edit of the split
 * file moving bookbuyer's traffic while bookthief stays denied.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { demoSplit } from '../../src/workload/demo-mesh';

const ROOT = join(__dirname, '..', '..', '..');

describe('weft demo', () => {
  it('prints live counts that follow an edit of the split file, and bookthief stays denied', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-demo-test-'));
    try {
      const child = spawn(
        process.execPath,
        [join(ROOT, 'bin', 'weft.js'), 'demo', '--dir', dir, '--calls', '20', '--duration', '8'],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const lines: string[] = [];
      let edited = false;
      let buffered = '';
      child.stdout.on('data', (chunk: Buffer) => {
        buffered += chunk.toString();
        const parts = buffered.split('\n');
        buffered = parts.pop() ?? '';
        for (const l of parts) {
          lines.push(l);
          // After the first count line, move every call to v2.
          if (!edited && l.startsWith('bookbuyer ->')) {
            edited = true;
            writeFileSync(join(dir, '20-split.yaml'), demoSplit(0, 100));
          }
        }
      });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      const counts = lines.filter((l) => l.startsWith('bookbuyer ->'));
      assert.ok(counts.length >= 4, `count lines:\n${lines.join('\n')}\n${stderr}`);
      const first = /bookstore-v1: +(\d+) +bookstore-v2: +(\d+)/.exec(counts[0]!);
      // 90/10 over 20 calls: v1 at most 10 has odds of about 1 in 100,000.
      assert.ok(first && Number(first[1]) > 10, `first second is mostly v1: ${counts[0]}`);
      assert.match(
        counts.at(-1)!,
        /bookstore-v1: +0 +bookstore-v2: +20 +failed: 0/,
        'after the edit: all v2',
      );
      for (const l of counts) assert.match(l, /bookthief: denied/);
      assert.equal(code, 0, stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
