/**
 * `weft demo --flavor envoy` as a user runs it: the real CLI process, pods in network namespaces
 * with Weft's injected sidecars and real Envoy, live counts that follow an edit of the split file,
 * and bookthief (no TrafficTarget) never served. Skipped, with the reason, without root or Envoy.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { findEnvoy, NO_ENVOY } from '../../src/envoy/binary';
import { netnsUnavailable } from '../../src/netns/system';
import { demoSplit } from '../../src/workload/demo-mesh';

const ROOT = join(__dirname, '..', '..', '..');
const skip = [netnsUnavailable(), findEnvoy() ? undefined : NO_ENVOY]
  .filter((m) => m !== undefined)
  .join('; ');

describe('weft demo --flavor envoy', () => {
  it(
    'routes through real Envoy sidecars, follows a split edit, and bookthief stays denied',
    { skip: skip || false },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'weft-demo-envoy-test-'));
      try {
        const child = spawn(
          process.execPath,
          [
            join(ROOT, 'bin', 'weft.js'),
            'demo',
            '--flavor',
            'envoy',
            '--dir',
            dir,
            '--calls',
            '20',
            '--duration',
            '12',
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        const lines: string[] = [];
        let editedAt = -1;
        let buffered = '';
        child.stdout.on('data', (chunk: Buffer) => {
          buffered += chunk.toString();
          const parts = buffered.split('\n');
          buffered = parts.pop() ?? '';
          for (const l of parts) {
            lines.push(l);
            // After the second count line, move every call to v2.
            if (editedAt < 0 && lines.filter((x) => x.startsWith('bookbuyer ->')).length === 2) {
              editedAt = lines.length;
              writeFileSync(join(dir, 'mesh', '20-split.yaml'), demoSplit(0, 100));
            }
          }
        });
        let stderr = '';
        child.stderr.on('data', (c: Buffer) => {
          stderr += c.toString();
        });
        const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
        const counts = lines.filter((l) => l.startsWith('bookbuyer ->'));
        assert.ok(counts.length >= 6, `count lines:\n${lines.join('\n')}\n${stderr}`);
        const v1 = (l: string): number => Number(/bookstore-v1: +(\d+)/.exec(l)?.[1]);
        // 90/10 over 20 calls: v1 at most 10 has odds of about 1 in 100,000.
        assert.ok(v1(counts[0]!) > 10, `first second is mostly v1: ${counts[0]}`);
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
    },
  );

  it('says what is missing when it cannot run, and exits 1', async () => {
    // No Envoy and none of the network tools on this PATH, and an empty Envoy cache.
    const empty = mkdtempSync(join(tmpdir(), 'weft-demo-empty-'));
    try {
      const env: NodeJS.ProcessEnv = { ...process.env, PATH: empty, WEFT_ENVOY_CACHE: empty };
      delete env.WEFT_ENVOY_BIN;
      const child = spawn(
        process.execPath,
        [join(ROOT, 'bin', 'weft.js'), 'demo', '--flavor', 'envoy', '--dir', empty],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          env,
        },
      );
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
      });
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(code, 1, stderr);
      assert.match(
        stderr,
        /--flavor envoy cannot run here: .*no Envoy binary: run scripts\/setup-envoy\.sh.*or use --flavor grpc/,
      );
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
