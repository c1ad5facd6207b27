/**
 * Clocks that disagree, at the level of `weft serve` and `weft agent`: a root not valid yet or
 * already expired stops the start with the file and the fix; Weft's clock ahead of a workload's by
 * less than the minute certificates are backdated goes unnoticed; further ahead, an agent keeps the
 * certificate it holds, and one without a certificate is told that the clocks disagree, not just
 * that a certificate "is not yet valid"; a certificate that expired on the workload is replaced.
 */
import assert from 'node:assert/strict';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkloadAgent } from '../../src/identity/agent';
import { CaError, createRoot } from '../../src/identity/ca';
import { CERT_FILE, KEY_FILE } from '../../src/identity/names';
import { captureLogs, setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningServe, startServe } from '../../src/serve';
import { SECRET } from '../../src/xds/resource-types';
import { addresses, ConfigDir, workloads } from '../mesh/mesh-fixture';
import { listening, secretsClient, tempDir } from './util';

const TD = 'cluster.local';
const TOKEN = 'token-of-buyer-0123456789';
const escaped = (s: string): string => s.replace(/[/.]/g, '\\$&');

describe('clock skew: roots not valid now stop weft serve', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-skew-start-');
  before(() => cfg.write('workloads.yaml', workloads(addresses(54, 30541, 30542))));
  after(() => {
    cfg.remove();
    tmp.cleanup();
  });

  const refused = async (o: Partial<Parameters<typeof startServe>[0]>, message: RegExp): Promise<void> => {
    const port = await freePort();
    await assert.rejects(
      startServe({ configDir: cfg.path, xdsAddress: `127.0.0.1:${port}`, ...o }),
      (e: Error) => {
        assert.ok(e instanceof CaError, `${e.name}: ${e.message}`);
        assert.match(e.message, message);
        return true;
      },
    );
    assert.equal(await listening(port), false, 'nothing listens on the xDS port');
  };

  it('a root whose notBefore is ahead of this clock (the CA folder)', async () => {
    const dir = join(tmp.dir, 'post-dated');
    mkdirSync(dir);
    const root = await createRoot(TD, Date.now() + 3600_000);
    writeFileSync(join(dir, 'ca.pem'), root.certificatePem);
    writeFileSync(join(dir, 'ca-key.pem'), root.keyPem!, { mode: 0o600 });
    await refused(
      { caDir: dir },
      new RegExp(
        `${escaped(join(dir, 'ca.pem'))}: notBefore \\S+ is \\d+ s ahead of this machine's clock: .*fix the clock \\(NTP\\).*or give Weft a root valid now`,
      ),
    );
  });

  it('a root that expired (brought with --ca-cert)', async () => {
    const root = await createRoot(TD, Date.now() - 2 * 3600_000, 3600_000);
    const cert = join(tmp.dir, 'expired.pem');
    const key = join(tmp.dir, 'expired-key.pem');
    writeFileSync(cert, root.certificatePem);
    writeFileSync(key, root.keyPem!, { mode: 0o600 });
    await refused(
      { caCert: cert, caKey: key },
      new RegExp(`${escaped(cert)}: notAfter \\S+ has passed: the root expired.*bring a new root`),
    );
  });
});

describe("clock skew: Weft's clock ahead of a workload's", () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-skew-');
  const tokens = join(tmp.dir, 'tokens.yaml');
  /** How far Weft's CA clock runs ahead of this machine's (the workload's). */
  let skew = 0;
  let weft: RunningServe;
  let logs: string[] = [];
  let stopCapture: () => void = () => undefined;
  const agents: WorkloadAgent[] = [];

  const agent = (name: string, w: RunningServe = weft): WorkloadAgent => {
    const a = new WorkloadAgent({
      server: `127.0.0.1:${w.identity.certificatePort}`,
      token: async () => TOKEN,
      outDir: join(tmp.dir, name),
      bootstrapBundlePem: w.identity.running.ca!.bundlePem(),
      retryMs: 60_000,
    });
    agents.push(a);
    return a;
  };
  const serve = (caDir: string): Promise<RunningServe> =>
    startServe({
      configDir: cfg.path,
      xdsAddress: '127.0.0.1:0',
      caDir: join(tmp.dir, caDir),
      caAddress: '127.0.0.1:0',
      bootstrapTokens: tokens,
      certTtl: '10m',
      caClock: () => Date.now() + skew,
    });

  before(async () => {
    cfg.write('workloads.yaml', workloads(addresses(54, 30543, 30544)));
    writeFileSync(tokens, `tokens:\n  - token: ${TOKEN}\n    identity: shop/buyer\n`, { mode: 0o600 });
    weft = await serve('ca');
    setLogLevel('warn');
    stopCapture = captureLogs((l) => logs.push(l));
  });
  after(async () => {
    stopCapture();
    setLogLevel('silent');
    for (const a of agents) a.stop();
    await weft?.stop();
    cfg.remove();
    tmp.cleanup();
  });

  it('by less than the minute certificates are backdated: certificates work at once', async () => {
    skew = 45_000;
    const a = agent('within');
    await a.start();
    assert.ok(a.state.notBefore!.getTime() <= Date.now(), 'valid on the workload clock');
    const dir = join(tmp.dir, 'within');
    const c = secretsClient({
      port: weft.port,
      nodeId: 'shop/buyer',
      bundlePem: readFileSync(join(dir, 'ca.pem'), 'utf8'),
      certPem: readFileSync(join(dir, CERT_FILE), 'utf8'),
      keyPem: readFileSync(join(dir, KEY_FILE), 'utf8'),
    });
    try {
      await c.waitFor(() => c.resources(SECRET).size === 2, 10_000, 'secrets over mTLS');
    } finally {
      c.close();
    }
  });

  it('by more: an agent keeps the certificate it holds and says the clocks disagree', async () => {
    skew = 0;
    const a = agent('beyond');
    await a.start();
    const held = readFileSync(join(tmp.dir, 'beyond', CERT_FILE), 'utf8');
    skew = 5 * 60_000;
    logs = [];
    await a.renewNow();
    assert.equal(
      readFileSync(join(tmp.dir, 'beyond', CERT_FILE), 'utf8'),
      held,
      'the valid certificate stays',
    );
    assert.equal(a.state.certificatesWritten, 1);
    assert.ok(
      logs.some((l) =>
        /new certificate is not valid until .* ahead of this machine's clock: the clocks of Weft and this machine disagree; fix time sync \(NTP\)/.test(
          l,
        ),
      ),
      logs.join('\n'),
    );
  });

  it("by more, from Weft's start: a new agent cannot trust Weft and is told why", async () => {
    skew = 5 * 60_000;
    const ahead = await serve('ca-ahead');
    try {
      await assert.rejects(
        agent('new', ahead).start(),
        /the certificate of Weft \(127\.0\.0\.1:\d+\) is not valid yet by this machine's clock: .*fix time sync \(NTP\)/,
      );
    } finally {
      await ahead.stop();
    }
  });

  it('a certificate that expired on the workload is replaced when its agent starts', async () => {
    skew = 0;
    const first = agent('expired');
    await first.start();
    first.stop();
    // The same key, certified eleven minutes ago for ten: expired a minute ago here.
    const key = readFileSync(join(tmp.dir, 'expired', KEY_FILE), 'utf8');
    skew = -11 * 60_000;
    const old = await weft.identity.running.ca!.issue(
      new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' })),
      'shop/buyer',
    );
    skew = 0;
    assert.ok(old.notAfter.getTime() < Date.now());
    writeFileSync(join(tmp.dir, 'expired', CERT_FILE), old.chainPem);
    const again = agent('expired');
    await again.start();
    assert.equal(again.state.certificatesWritten, 1, 'asked Weft for a new certificate');
    const now = new X509Certificate(readFileSync(join(tmp.dir, 'expired', CERT_FILE)));
    assert.ok(new Date(now.validTo).getTime() > Date.now());
    assert.equal(readFileSync(join(tmp.dir, 'expired', KEY_FILE), 'utf8'), key, 'the key stays');
  });
});
