/** `weft serve --resources FILE` as a user runs it: a real process, a real ADS client. */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdsClient } from '../../src/xds/client';
import { CLUSTER } from '../../src/xds/resource-types';

const WEFT = join(__dirname, '..', '..', '..', 'bin', 'weft.js');

function resources(clusters: string[], extra = ''): string {
  return [
    'groups:',
    '  default:',
    '    clusters:',
    ...clusters.map(
      (c) => `      - { name: ${c}, type: EDS, eds_cluster_config: { eds_config: { ads: {} } }${extra} }`,
    ),
  ].join('\n');
}

describe('weft serve --resources', () => {
  let dir: string;
  let file: string;
  let proc: ChildProcess;
  let stderr = '';
  let client: AdsClient;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'weft-serve-'));
    file = join(dir, 'resources.yaml');
    writeFileSync(file, resources(['a', 'b']));
    proc = spawn(
      process.execPath,
      [
        WEFT,
        'serve',
        '--insecure-xds',
        '--resources',
        file,
        '--xds-address',
        '127.0.0.1:0',
        '--admin-address',
        '127.0.0.1:0',
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    proc.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no port in output: ${stderr}`)), 20_000);
      const check = (): void => {
        const m = /msg="xDS server listening".* port=(\d+)/.exec(stderr);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        } else setTimeout(check, 20);
      };
      check();
    });
    client = new AdsClient({ target: `127.0.0.1:${port}`, nodeId: 'p', mode: 'delta' });
    client.subscribe(CLUSTER, []);
  });
  after(() => {
    client.close();
    proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the file', async () => {
    await client.waitFor(() => client.resources(CLUSTER).size === 2);
    assert.deepEqual([...client.resources(CLUSTER).keys()].sort(), ['a', 'b']);
  });

  it('rejects a file with an error whole, names the field, and keeps serving the last good one', async () => {
    writeFileSync(file, resources(['a', 'b', 'c'], ', lb_policy: FASTEST'));
    await waitFor(() => stderr.includes('resources file rejected'));
    assert.match(stderr, /groups\.default\.clusters\[0\]\.lb_policy: unknown LbPolicy value \\"FASTEST\\"/);
    assert.deepEqual([...client.resources(CLUSTER).keys()].sort(), ['a', 'b']);
  });

  it('reloads a fixed file', async () => {
    writeFileSync(file, resources(['a', 'c']));
    await client.waitFor(() => client.resources(CLUSTER).has('c') && !client.resources(CLUSTER).has('b'));
  });

  it('stops gracefully on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0);
  });
});

async function waitFor(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('examples/static/resources.yaml', () => {
  it('passes the strict check', async () => {
    const { readFileSync } = await import('node:fs');
    const { readResourcesFile } = await import('../../src/static/resources-file');
    const path = join(__dirname, '..', '..', '..', 'examples', 'static', 'resources.yaml');
    const r = readResourcesFile(readFileSync(path, 'utf8'), 'resources.yaml');
    assert.deepEqual(r.ok ? [] : r.errors, []);
  });
});
