/**
 * `weft proxy status` and `weft proxy config` against a running `weft serve --config-dir` with its
 * CA (mTLS xDS): a proxy with a workload certificate connects, the CLI (a child process) lists it
 * with its identity, flavor and version, and reads its config over CSDS with a certificate of
 * Weft's own identity, and through the admin server. Also: the connect and disconnect log lines,
 * the admin index page, and what a dead admin port says.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ProxyStatusRow } from '../../src/cli/proxy';
import { controlPlaneChannelCredentials, controlPlaneIdentity } from '../../src/identity/tls';
import { captureLogs, setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningServe, startServe } from '../../src/serve';
import { AdsClient } from '../../src/xds/client';
import { CLUSTER, LISTENER, SECRET } from '../../src/xds/resource-types';
import { tempDir, waitUntil } from '../identity/util';
import { addresses, BUYER_MAY_CALL, ConfigDir, workloads } from '../mesh/mesh-fixture';

const ROOT = join(__dirname, '..', '..', '..');

function weft(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'weft.js'), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

describe('weft proxy status and config', () => {
  const dir = new ConfigDir();
  const ca = tempDir('weft-proxy-ca-');
  const certs = tempDir('weft-proxy-certs-');
  let serve: RunningServe;
  let client: AdsClient;
  const logs: string[] = [];
  let stopLogs: () => void;

  before(async () => {
    setLogLevel('info');
    stopLogs = captureLogs((l) => logs.push(l));
    dir.write('workloads.yaml', workloads(addresses(43, await freePort(), await freePort())));
    dir.write('access.yaml', BUYER_MAY_CALL);
    serve = await startServe({
      configDir: dir.path,
      caDir: ca.dir,
      xdsAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
    });
    const authority = serve.identity.running.ca!;
    const issued = await authority.issueWithNewKey('shop/buyer');
    client = new AdsClient({
      target: `127.0.0.1:${serve.port}`,
      nodeId: 'shop/buyer',
      metadata: { FLAVOR: 'envoy' },
      mode: 'delta',
      ownConnection: true,
      userAgent: { name: 'envoy', version: '1.40.0' },
      credentials: controlPlaneChannelCredentials({
        bundlePem: authority.bundlePem(),
        serverIdentity: controlPlaneIdentity(authority.trustDomain),
        certPem: issued.chainPem,
        keyPem: issued.keyPem,
      }),
    });
    client.on('error', () => undefined);
    client.subscribe(CLUSTER, ['*']);
    client.subscribe(LISTENER, ['*']);
    client.subscribe(SECRET, ['weft-identity', 'weft-ca']);
    await waitUntil(
      () => client.resources(SECRET).size === 2 && client.resources(LISTENER).size > 0,
      10_000,
      'config',
    );
    const issue = await weft([
      'ca',
      'issue',
      '--ca-dir',
      ca.dir,
      '--identity',
      'weft-system/weft',
      '--out',
      certs.dir,
    ]);
    assert.equal(issue.code, 0, issue.err);
  });

  after(async () => {
    client.close();
    await serve.stop();
    stopLogs();
    setLogLevel('silent');
    dir.remove();
    ca.cleanup();
    certs.cleanup();
  });

  it('logs one line when a proxy connects, with node id, identity and flavor', () => {
    const line = logs.find((l) => l.includes('proxy connected'));
    assert.ok(line, logs.join('\n'));
    assert.match(line, /node=shop\/buyer/);
    assert.match(line, /identity=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/buyer/);
    assert.match(line, /flavor=envoy/);
  });

  it('lists the proxy with identity, flavor, version and per-type versions', async () => {
    await waitUntil(
      () => serve.server.registry.proxies().every((p) => Object.values(p.types).every((t) => !t.awaiting)),
      5000,
      'ACKs',
    );
    const r = await weft(['proxy', 'status', '--admin-url', serve.adminUrl!, '-o', 'json']);
    assert.equal(r.code, 0, r.err + r.out);
    const rows = JSON.parse(r.out) as ProxyStatusRow[];
    assert.equal(rows.length, 1);
    const row = rows[0]!;
    assert.equal(row.proxy, 'shop/buyer');
    assert.equal(row.identity, 'spiffe://cluster.local/ns/shop/sa/buyer');
    assert.equal(row.flavor, 'envoy');
    assert.equal(row.userAgent, 'envoy');
    assert.equal(row.version, '1.40.0');
    assert.ok(row.types.cds && row.types.cds.sent !== '' && row.types.cds.sent === row.types.cds.acked);
    assert.equal(row.inSync, true);
    const table = await weft(['proxy', 'status', '--admin-url', serve.adminUrl!]);
    assert.match(table.out, /^PROXY\s+IDENTITY\s+FLAVOR\s+VERSION/m);
    assert.match(table.out, /shop\/buyer\s+shop\/buyer\s+envoy\s+envoy 1\.40\.0/);
  });

  it('reads a proxy config over CSDS with a certificate of Weft, and through the admin server', async () => {
    const csds = await weft([
      'proxy',
      'config',
      'shop/buyer',
      '--xds-address',
      `127.0.0.1:${serve.port}`,
      '--cert-dir',
      certs.dir,
      '-o',
      'json',
    ]);
    assert.equal(csds.code, 0, csds.err);
    const view = JSON.parse(csds.out) as Record<string, { name: string; status: string; config?: unknown }[]>;
    assert.ok(view.listeners?.some((l) => l.name === 'inbound' && l.status === 'ACKED' && l.config));
    assert.ok(
      view.secrets?.every((s) => s.config === undefined),
      'no key over CSDS',
    );
    const admin = await weft([
      'proxy',
      'config',
      'shop/buyer',
      '--admin-url',
      serve.adminUrl!,
      '--type',
      'clusters',
    ]);
    assert.equal(admin.code, 0, admin.err);
    assert.match(admin.out, /^proxy: shop\/buyer\nclusters:/);
    assert.doesNotMatch(admin.out, /listeners:/);
    const none = await weft(['proxy', 'config', 'shop/nobody', '--admin-url', serve.adminUrl!]);
    assert.equal(none.code, 1);
    assert.match(none.err, /no proxy with node id shop\/nobody/);
    const noCert = await weft(['proxy', 'config', 'shop/buyer', '--xds-address', `127.0.0.1:${serve.port}`]);
    assert.equal(noCert.code, 2);
    assert.match(noCert.err, /--cert-dir/);
  });

  it('lists the admin endpoints on its index page', async () => {
    const text = await (await fetch(serve.adminUrl!)).text();
    for (const p of ['/healthz', '/readyz', '/metrics', '/debug/proxies', '/debug/config'])
      assert.ok(text.includes(p), p);
  });

  it('says which URL is dead and that nothing listens there', async () => {
    const port = await freePort();
    const r = await weft(['proxy', 'status', '--admin-url', `http://127.0.0.1:${port}`]);
    assert.equal(r.code, 2);
    assert.match(r.err, new RegExp(`nothing listens at http://127\\.0\\.0\\.1:${port}/debug/proxies`));
    const bad = await weft(['proxy', 'status']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--admin-url/);
  });

  it('logs one line when the proxy disconnects', async () => {
    client.close();
    await waitUntil(() => logs.some((l) => l.includes('proxy disconnected')), 5000, 'disconnect log');
    const line = logs.find((l) => l.includes('proxy disconnected'))!;
    assert.match(line, /node=shop\/buyer .*flavor=envoy/);
  });
});
