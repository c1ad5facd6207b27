/**
 * A taken port stops `weft serve`: the xDS, admin and certificate endpoint addresses each fail the
 * start with a message naming the flag and the fix, close what already started, and the command
 * exits 1 instead of running on without serving.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listenError } from '../../src/net';
import { startServe } from '../../src/serve';
import { tempDir } from '../identity/util';
import { addresses, ConfigDir, workloads } from '../mesh/mesh-fixture';

const WEFT = join(__dirname, '..', '..', '..', 'bin', 'weft.js');

/** Holds a loopback port the way another program would. */
function occupy(): Promise<{ server: Server; address: string }> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const a = server.address();
      resolve({ server, address: `127.0.0.1:${typeof a === 'object' && a ? a.port : 0}` });
    });
  });
}

describe('weft serve on a taken port', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-ports-');
  let taken: { server: Server; address: string };
  before(async () => {
    cfg.write('workloads.yaml', workloads(addresses(61, 30611, 30612)));
    taken = await occupy();
  });
  after(() => {
    taken.server.close();
    cfg.remove();
    tmp.cleanup();
  });

  const inUse =
    (flag: string) =>
    (e: Error): boolean => {
      assert.equal(
        e.message,
        `${flag} ${taken.address} is in use (EADDRINUSE); stop what listens there or choose another address`,
      );
      return true;
    };

  it('names --xds-address', async () => {
    await assert.rejects(
      startServe({ configDir: cfg.path, xdsAddress: taken.address, insecureXds: true }),
      inUse('--xds-address'),
    );
  });

  it('names --admin-address, after closing the xDS server it had started', async () => {
    await assert.rejects(
      startServe({
        configDir: cfg.path,
        xdsAddress: '127.0.0.1:0',
        adminAddress: taken.address,
        insecureXds: true,
      }),
      inUse('--admin-address'),
    );
  });

  it('names --ca-address', async () => {
    const tokens = join(tmp.dir, 'tokens.json');
    writeFileSync(
      tokens,
      'tokens:\n  - token: buyer-token-0123456789abcdef0123456789\n    identity: shop/buyer\n',
      {
        mode: 0o600,
      },
    );
    await assert.rejects(
      startServe({
        configDir: cfg.path,
        xdsAddress: '127.0.0.1:0',
        caDir: join(tmp.dir, 'ca'),
        caAddress: taken.address,
        bootstrapTokens: tokens,
      }),
      inUse('--ca-address'),
    );
  });

  it('reads the code from a gRPC bind error, which carries it only in its message', () => {
    const err = new Error(
      'No address added out of total 1 resolved errors: [listen EACCES: permission denied 0.0.0.0:80]',
    );
    assert.equal(
      listenError('--xds-address', '0.0.0.0:80', err).message,
      '--xds-address 0.0.0.0:80 may not be bound by this user (EACCES); choose another address',
    );
  });

  it('exits 1 from the command line, printing the message', async () => {
    const proc = spawn(
      process.execPath,
      [
        WEFT,
        'serve',
        '--config-dir',
        cfg.path,
        '--insecure-xds',
        '--xds-address',
        '127.0.0.1:0',
        '--admin-address',
        taken.address,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    proc.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    assert.equal(code, 1, stderr);
    assert.match(
      stderr,
      new RegExp(`weft serve: --admin-address ${taken.address} is in use \\(EADDRINUSE\\)`),
    );
  });
});
