/**
 * `weft dashboard`: in folder mode it prints the dashboard's address once the dashboard answers
 * there; in a cluster its loopback proxy adds the token, only under its random path, only for
 * GETs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tokenProxy } from '../../src/cli/dashboard';
import { startTestAdmin, type TestAdmin } from '../dashboard/admin-fixture';

const ROOT = join(__dirname, '..', '..', '..');

function weft(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'weft.js'), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

describe('weft dashboard', () => {
  let admin: TestAdmin;
  let url: string;
  before(async () => {
    admin = await startTestAdmin({
      dashboard: { model: () => undefined, patches: () => [], groupsPatchedBy: () => [] },
    });
    url = admin.url;
  });
  after(() => admin.stop());

  it("prints the dashboard's address on a running Weft's admin server", async () => {
    const r = await weft(['dashboard', '--admin-url', url]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${url}/dashboard/\n`);
  });

  it('says what is wrong when nothing answers', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const a = probe.address();
    const port = typeof a === 'object' && a ? a.port : 0;
    await new Promise((r) => probe.close(r));
    const r = await weft(['dashboard', '--admin-url', `http://127.0.0.1:${port}`]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`nothing listens at http://127\\.0\\.0\\.1:${port}/dashboard/api/state`));
  });

  it("the cluster mode's proxy adds the token under its secret path, for GETs only", async () => {
    let seen: IncomingHttpHeaders | undefined;
    let path = '';
    const upstream: Server = createServer((req, res) => {
      seen = req.headers;
      path = req.url ?? '';
      if (req.url === '/dashboard') res.writeHead(302, { location: '/dashboard/' }).end();
      else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    const a = upstream.address();
    const port = typeof a === 'object' && a ? a.port : 0;
    const p = await tokenProxy({ host: '127.0.0.1', port }, 'Bearer t0ken', 0);
    try {
      const ok = await fetch(`${p.url}/dashboard/api/state`);
      assert.equal(ok.status, 200);
      assert.equal(seen?.authorization, 'Bearer t0ken');
      assert.equal(path, '/dashboard/api/state');
      const moved = await fetch(`${p.url}/dashboard`, { redirect: 'manual' });
      assert.equal(new URL(moved.headers.get('location')!, p.url).toString(), `${p.url}/dashboard/`);
      seen = undefined;
      const origin = new URL(p.url).origin;
      assert.equal((await fetch(`${origin}/dashboard/api/state`)).status, 404, 'no secret, no token');
      assert.equal((await fetch(`${p.url}/dashboard/api/state`, { method: 'POST' })).status, 405);
      assert.equal(seen, undefined, 'neither reached Weft');
    } finally {
      await p.stop();
      await new Promise((r) => upstream.close(r));
    }
  });
});
