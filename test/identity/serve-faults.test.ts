/**
 * CA faults in `weft serve`: a corrupt CA file, a CA that cannot sign and a missing CA stop the
 * start with an error naming the file and the fix, and leave the xDS port closed (never a silent
 * plaintext server); a CA that breaks while running leaves the certificates already issued
 * serving, over TLS, until it recovers. While running, a key file removed or unreadable is
 * reported and counted while the loaded key keeps signing; a root too close to its end to sign
 * makes every renewal fail with the fix (counted), and nothing falls back to plaintext.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials, status } from '@grpc/grpc-js';
import { WorkloadAgent } from '../../src/identity/agent';
import { CaError, CertificateAuthority, type IssuedKeyPair } from '../../src/identity/ca';
import { CERT_FILE, IDENTITY_SECRET } from '../../src/identity/names';
import { FileCaStore } from '../../src/identity/store';
import { generateKey, privateKeyPem } from '../../src/identity/x509';
import { captureLogs, setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningServe, startServe } from '../../src/serve';
import { AdsClient } from '../../src/xds/client';
import { SECRET } from '../../src/xds/resource-types';
import { addresses, ConfigDir, workloads } from '../mesh/mesh-fixture';
import { listening, metricValue, newCa, secretsClient, sleep, tempDir } from './util';

const WEFT = join(__dirname, '..', '..', '..', 'bin', 'weft.js');
const BUYER = 'spiffe://cluster.local/ns/shop/sa/buyer';

/** The status a plaintext xDS stream to Weft's port ends with. */
function plaintextCode(port: number): Promise<number | undefined> {
  const plain = new AdsClient({
    target: `127.0.0.1:${port}`,
    nodeId: 'shop/buyer',
    mode: 'sotw',
    ownConnection: true,
    credentials: credentials.createInsecure(),
  });
  return new Promise<number | undefined>((resolve) => {
    plain.on('error', (e: { code?: number }) => resolve(e.code));
    plain.subscribe(SECRET, [IDENTITY_SECRET]);
  }).finally(() => plain.close());
}

describe('CA faults at the start of weft serve', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-faults-');
  before(() => cfg.write('workloads.yaml', workloads(addresses(49, 30491, 30492))));
  after(() => {
    cfg.remove();
    tmp.cleanup();
  });

  const refusedToStart = async (o: Parameters<typeof startServe>[0], message: RegExp): Promise<void> => {
    await assert.rejects(startServe(o), (e: Error) => {
      assert.ok(e instanceof CaError, `${e.name}: ${e.message}`);
      assert.match(e.message, message);
      return true;
    });
    const port = Number(o.xdsAddress.split(':')[1]);
    assert.equal(await listening(port), false, 'nothing listens on the xDS port after a failed start');
  };

  it('a corrupt CA certificate file: names the file and the fix', async () => {
    const dir = join(tmp.dir, 'corrupt');
    const made = await startServe({ configDir: cfg.path, xdsAddress: '127.0.0.1:0', caDir: dir });
    await made.stop();
    writeFileSync(
      join(dir, 'ca.pem'),
      '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n',
    );
    const xdsAddress = `127.0.0.1:${await freePort()}`;
    await refusedToStart(
      { configDir: cfg.path, xdsAddress, caDir: dir },
      new RegExp(`${join(dir, 'ca.pem').replace(/[/.]/g, '\\$&')}.*restore it from a backup`),
    );
  });

  it('a CA that cannot sign (a CA:FALSE certificate brought with --ca-cert)', async () => {
    const other = await newCa({ trustDomain: 'cluster.local' });
    try {
      const leaf = await other.ca.issueWithNewKey(BUYER);
      const cert = join(tmp.dir, 'leaf.pem');
      const key = join(tmp.dir, 'leaf-key.pem');
      writeFileSync(cert, leaf.chainPem);
      writeFileSync(key, leaf.keyPem, { mode: 0o600 });
      await refusedToStart(
        { configDir: cfg.path, xdsAddress: `127.0.0.1:${await freePort()}`, caCert: cert, caKey: key },
        new RegExp(
          `${cert.replace(/[/.]/g, '\\$&')}: basicConstraints has CA:FALSE.*give Weft a CA certificate`,
        ),
      );
    } finally {
      other.cleanup();
    }
  });

  it('no CA and no --insecure-xds: refuses to serve plaintext', async () => {
    await refusedToStart(
      { configDir: cfg.path, xdsAddress: `127.0.0.1:${await freePort()}` },
      /pass --ca-dir DIR.*--insecure-xds/,
    );
  });

  it('--no-mtls alone does not make the xDS port plaintext', async () => {
    await refusedToStart(
      { configDir: cfg.path, xdsAddress: `127.0.0.1:${await freePort()}`, mtls: false },
      /--no-mtls turns off TLS between proxies, not on the xDS port.*--insecure-xds as well/,
    );
  });

  it('the command prints the error naming the file and exits 1', async () => {
    const dir = join(tmp.dir, 'cli-ca');
    mkdirSync(dir);
    writeFileSync(join(dir, 'ca.pem'), 'garbage\n');
    writeFileSync(join(dir, 'ca-key.pem'), 'garbage\n');
    const proc = spawn(
      process.execPath,
      [
        WEFT,
        'serve',
        '--config-dir',
        cfg.path,
        '--ca-dir',
        dir,
        '--xds-address',
        '127.0.0.1:0',
        '--admin-address',
        '127.0.0.1:0',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    proc.stderr?.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
    assert.equal(code, 1, stderr);
    assert.match(stderr, new RegExp(`weft serve: .*${join(dir, 'ca.pem').replace(/[/.]/g, '\\$&')}`));
    assert.doesNotMatch(stderr, /xDS server listening/);
  });
});

describe('a CA that breaks while weft serve runs', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-faults-run-');
  let weft: RunningServe;
  let ca: CertificateAuthority;
  const clients: AdsClient[] = [];
  let logs: string[] = [];
  let stopCapture: () => void = () => undefined;

  const envoy = async (nodeId: string, given?: IssuedKeyPair): Promise<AdsClient> => {
    // Test clients' own certificates outlive the test, so only the served certificates are short-lived.
    const pair = given ?? (await ca.issueWithNewKey(BUYER, 10 * 60_000));
    const c = secretsClient({
      port: weft.port,
      nodeId,
      bundlePem: ca.bundlePem(),
      certPem: pair.chainPem,
      keyPem: pair.keyPem,
    });
    clients.push(c);
    return c;
  };
  const chainOf = (c: AdsClient): string =>
    (
      c.decoded(SECRET, IDENTITY_SECRET) as {
        tls_certificate: { certificate_chain: { inline_string: string } };
      }
    ).tls_certificate.certificate_chain.inline_string;

  before(async () => {
    cfg.write('workloads.yaml', workloads(addresses(49, 30493, 30494)));
    weft = await startServe({
      configDir: cfg.path,
      xdsAddress: '127.0.0.1:0',
      caDir: join(tmp.dir, 'ca'),
      // Short enough that workload certificates are renewed during the test (at two thirds).
      certTtl: '3s',
    });
    ca = weft.identity.running.ca!;
    setLogLevel('warn');
    stopCapture = captureLogs((l) => logs.push(l));
  });
  after(async () => {
    stopCapture();
    setLogLevel('silent');
    for (const c of clients) c.close();
    await weft?.stop();
    cfg.remove();
    tmp.cleanup();
  });

  it('keeps serving the issued certificate while the CA cannot sign, and renews once it can', async () => {
    const first = await envoy('shop/buyer');
    await first.waitFor(() => first.resources(SECRET).size === 2, 10_000, 'secrets');
    const issued = chainOf(first);
    // The client certificate of the proxy that reconnects below, made while the CA still signs.
    const reconnecting = await ca.issueWithNewKey(BUYER, 10 * 60_000);
    const sign = ca.issueWithNewKey.bind(ca);
    ca.issueWithNewKey = async () => {
      throw new Error('HSM unreachable');
    };
    try {
      logs = [];
      // The renewal at two thirds of 3 s fails; the proxy keeps what it has.
      const end = Date.now() + 10_000;
      while (!logs.some((l) => l.includes('cannot renew workload certificate')) && Date.now() < end)
        await sleep(50);
      assert.ok(
        logs.some((l) => /cannot renew workload certificate.*HSM unreachable/.test(l)),
        logs.join('\n'),
      );
      assert.equal(chainOf(first), issued);
      // A proxy (re)connecting now still gets the valid certificate, over TLS.
      const again = await envoy('shop/buyer', reconnecting);
      await again.waitFor(() => again.resources(SECRET).size === 2, 10_000, 'secrets on reconnect');
      assert.equal(chainOf(again), issued);
    } finally {
      ca.issueWithNewKey = sign;
    }
    await first.waitFor(() => chainOf(first) !== issued, 15_000, 'renewed certificate after recovery');
  });

  it('keeps the loaded CA when its files are damaged on disk, and still refuses plaintext', async () => {
    let failed: Error | undefined;
    ca.once('reloadFailed', (e: Error) => {
      failed = e;
    });
    writeFileSync(join(tmp.dir, 'ca', 'ca-key.pem'), privateKeyPem(await generateKey()), { mode: 0o600 });
    const end = Date.now() + 10_000;
    while (!failed && Date.now() < end) await sleep(50);
    assert.match(failed?.message ?? '', /ca-key\.pem does not belong to .*ca\.pem/);
    const c = await envoy('shop/buyer');
    await c.waitFor(() => c.resources(SECRET).size === 2, 10_000, 'secrets from the loaded CA');
    assert.ok(readFileSync(join(tmp.dir, 'ca', 'ca.pem'), 'utf8').includes('BEGIN CERTIFICATE'));
    assert.equal(await plaintextCode(weft.port), status.UNAVAILABLE);
  });
});

describe('a CA whose files go or whose root ends while weft serve runs', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-faults-sign-');
  const caDir = join(tmp.dir, 'ca');
  const agentDir = join(tmp.dir, 'agent');
  /** How far the CA's clock is moved ahead of this machine's. */
  let ahead = 0;
  let weft: RunningServe;
  let ca: CertificateAuthority;
  let agent: WorkloadAgent;
  let holder: IssuedKeyPair;
  let logs: string[] = [];
  let stopCapture: () => void = () => undefined;
  const metric = (name: string): Promise<number> => metricValue(weft.adminUrl!, name);
  const holderClient = () =>
    secretsClient({
      port: weft.port,
      nodeId: 'shop/buyer',
      bundlePem: ca.bundlePem(),
      certPem: holder.chainPem,
      keyPem: holder.keyPem,
    });
  /** The next reload failure; the CA polls its folder every 2 s. */
  const reloadFailure = (): Promise<Error> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no reload failure within 15 s')), 15_000);
      ca.once('reloadFailed', (e: Error) => {
        clearTimeout(t);
        resolve(e);
      });
    });

  before(async () => {
    cfg.write('workloads.yaml', workloads(addresses(49, 30495, 30496)));
    // A root that ends in five minutes: workload certificates (ten minutes) are cut at its end.
    const made = await CertificateAuthority.open(new FileCaStore(caDir), { rootTtlMs: 5 * 60_000 });
    made.close();
    const tokens = join(tmp.dir, 'tokens.yaml');
    writeFileSync(tokens, 'tokens:\n  - token: token-of-buyer-0123456789\n    identity: shop/buyer\n', {
      mode: 0o600,
    });
    weft = await startServe({
      configDir: cfg.path,
      xdsAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
      caDir,
      caAddress: '127.0.0.1:0',
      bootstrapTokens: tokens,
      certTtl: '10m',
      caClock: () => Date.now() + ahead,
    });
    ca = weft.identity.running.ca!;
    agent = new WorkloadAgent({
      server: `127.0.0.1:${weft.identity.certificatePort}`,
      token: async () => 'token-of-buyer-0123456789',
      outDir: agentDir,
      bootstrapBundlePem: ca.bundlePem(),
      retryMs: 60_000,
    });
    await agent.start();
    holder = await ca.issueWithNewKey(BUYER);
    // An Envoy proxy of buyer gets its SDS certificate while the CA still signs.
    const c = holderClient();
    await c.waitFor(() => c.resources(SECRET).size === 2, 10_000, 'secrets').finally(() => c.close());
    setLogLevel('warn');
    stopCapture = captureLogs((l) => logs.push(l));
  });
  after(async () => {
    stopCapture();
    setLogLevel('silent');
    agent?.stop();
    await weft?.stop();
    cfg.remove();
    tmp.cleanup();
  });

  it('a key file removed or unreadable: said with the file and the fix, counted, and the loaded key keeps signing', async () => {
    const key = readFileSync(join(caDir, 'ca-key.pem'), 'utf8');
    let failed = reloadFailure();
    rmSync(join(caDir, 'ca-key.pem'));
    assert.match((await failed).message, /ca-key\.pem does not: restore ca-key\.pem from a backup/);
    // Unreadable: a folder where the key file was (tests run as root, so a file mode would not do).
    failed = reloadFailure();
    mkdirSync(join(caDir, 'ca-key.pem'));
    assert.match(
      (await failed).message,
      /cannot read .*ca-key\.pem: EISDIR.*check the file's owner and mode/,
    );
    assert.equal(await metric('weft_ca_reload_failures_total'), 2);
    const before = readFileSync(join(agentDir, CERT_FILE), 'utf8');
    await agent.renewNow();
    assert.notEqual(readFileSync(join(agentDir, CERT_FILE), 'utf8'), before, 'renewed with the loaded key');
    assert.equal(agent.state.failures, 0);
    rmSync(join(caDir, 'ca-key.pem'), { recursive: true });
    writeFileSync(join(caDir, 'ca-key.pem'), key, { mode: 0o600 });
  });

  it('the root too close to its end to sign: renewals fail clearly and are counted, issued certificates keep serving over mTLS only', async () => {
    const held = readFileSync(join(agentDir, CERT_FILE), 'utf8');
    const failuresBefore = await metric('weft_ca_sign_failures_total');
    // Thirty seconds before the root's end: no certificate worth issuing fits any more.
    ahead = new Date(ca.signer().certificate.validTo).getTime() - 30_000 - Date.now();
    logs = [];
    await agent.renewNow();
    assert.equal(agent.state.failures, 1, 'counted by the agent');
    assert.equal(readFileSync(join(agentDir, CERT_FILE), 'utf8'), held, 'the agent keeps its certificate');
    assert.ok(
      logs.some((l) =>
        /cannot renew the workload certificate; the current one serves until it expires.*the CA cannot sign now: .*too soon to issue certificates; run weft ca rotate/.test(
          l,
        ),
      ),
      logs.join('\n'),
    );
    assert.ok(
      logs.some((l) => /cannot sign a workload certificate.*run weft ca rotate/.test(l)),
      'and by Weft',
    );
    assert.equal(await metric('weft_ca_sign_failures_total'), failuresBefore + 1);
    assert.equal(weft.identity.running.certificateServer!.service.stats.failed, 1);
    // The proxy connects anew with its certificate from before and is served what it had, over mTLS.
    const c = holderClient();
    try {
      await c.waitFor(() => c.resources(SECRET).size === 2, 10_000, 'secrets with a certificate from before');
    } finally {
      c.close();
    }
    assert.equal(await plaintextCode(weft.port), status.UNAVAILABLE);
  });
});
