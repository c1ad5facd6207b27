/**
 * The first-certificate flow through `weft serve --ca-address --bootstrap-tokens`: a workload's
 * agent proves itself with a token, gets a certificate for the identity the token entitles and
 * nothing else, keeps its private key to itself, and never talks to (or sends its token to) a
 * server the mesh bundle does not vouch for. Refusals are counted.
 */
import assert from 'node:assert/strict';
import { createPublicKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { WorkloadAgent } from '../../src/identity/agent';
import { CA_FILE, CERT_FILE, KEY_FILE } from '../../src/identity/names';
import { CertificateClient } from '../../src/identity/signing';
import { controlPlaneIdentity } from '../../src/identity/tls';
import { createCsr, generateKey, uriSans } from '../../src/identity/x509';
import { type RunningServe, startServe } from '../../src/serve';
import { addresses, ConfigDir, workloads } from '../mesh/mesh-fixture';
import { newCa, sleep, tempDir } from './util';

const TD = 'cluster.local';
const BUYER = `spiffe://${TD}/ns/shop/sa/buyer`;
const BUYER_TOKEN = 'token-of-buyer-0123456789';
const STORE_TOKEN = 'token-of-store-0123456789';

const tokenFile = (entries: Record<string, string>): string =>
  `tokens:\n${Object.entries(entries)
    .map(([token, identity]) => `  - token: ${token}\n    identity: ${identity}\n`)
    .join('')}`;

describe('the certificate endpoint of weft serve', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-cert-endpoint-');
  const tokens = join(tmp.dir, 'tokens.yaml');
  let weft: RunningServe;
  let target: string;
  let bundlePem: string;
  const agents: WorkloadAgent[] = [];

  const denied = (): number => weft.identity.running.certificateServer!.service.stats.denied;
  const signed = (): number => weft.identity.running.certificateServer!.service.stats.signed;
  const agent = (
    dir: string,
    token: string,
    extra: Partial<ConstructorParameters<typeof WorkloadAgent>[0]> = {},
  ) => {
    const a = new WorkloadAgent({
      server: target,
      token: async () => token,
      outDir: join(tmp.dir, dir),
      bootstrapBundlePem: bundlePem,
      retryMs: 200,
      ...extra,
    });
    agents.push(a);
    return a;
  };
  const codeOf = async (p: Promise<unknown>): Promise<number | undefined> => {
    try {
      await p;
      return status.OK;
    } catch (e) {
      return (e as ServiceError).code;
    }
  };

  before(async () => {
    cfg.write('workloads.yaml', workloads(addresses(50, 30501, 30502)));
    writeFileSync(tokens, tokenFile({ [BUYER_TOKEN]: 'shop/buyer', [STORE_TOKEN]: 'shop/store' }), {
      mode: 0o600,
    });
    const caDir = join(tmp.dir, 'ca');
    weft = await startServe({
      configDir: cfg.path,
      xdsAddress: '127.0.0.1:0',
      caDir,
      caAddress: '127.0.0.1:0',
      bootstrapTokens: tokens,
    });
    target = `127.0.0.1:${weft.identity.certificatePort}`;
    bundlePem = readFileSync(join(caDir, 'bundle.pem'), 'utf8');
  });

  after(async () => {
    for (const a of agents) a.stop();
    await weft?.stop();
    cfg.remove();
    tmp.cleanup();
  });

  it("gives a token its identity's certificate for a key that never left the workload", async () => {
    const a = agent('buyer', BUYER_TOKEN);
    await a.start();
    const dir = join(tmp.dir, 'buyer');
    const leaf = new X509Certificate(readFileSync(join(dir, CERT_FILE)));
    assert.deepEqual(uriSans(leaf), [BUYER]);
    const key = readFileSync(join(dir, KEY_FILE), 'utf8');
    assert.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600);
    const pub = (k: KeyObject): string => k.export({ type: 'spki', format: 'der' }).toString('base64');
    assert.equal(
      pub(leaf.publicKey),
      pub(createPublicKey(key)),
      'the certificate is for the key the agent made',
    );
    const root = new X509Certificate(readFileSync(join(dir, CA_FILE)));
    assert.ok(leaf.verify(root.publicKey), 'ca.pem holds the root that issued it');
  });

  it('refuses a token another identity than the one it entitles, and an unknown or missing token', async () => {
    const before = denied();
    // The agent asks for store's identity with buyer's token: no certificate, start fails.
    await assert.rejects(agent('liar', BUYER_TOKEN, { identity: 'shop/store', retryMs: 60_000 }).start());
    const csr = await createCsr(await generateKey());
    const client = (token: string): CertificateClient =>
      new CertificateClient({ target, bundlePem, serverIdentity: controlPlaneIdentity(TD), token });
    const buyer = client(BUYER_TOKEN);
    const stranger = client('not-a-token-0123456789');
    try {
      assert.equal(await codeOf(buyer.sign({ csr, identity: 'shop/store' })), status.PERMISSION_DENIED);
      assert.equal(await codeOf(stranger.sign({ csr })), status.UNAUTHENTICATED);
      assert.equal(await codeOf(stranger.trustBundle()), status.UNAUTHENTICATED);
      // The same client with buyer's own identity is served: the entitlement decided.
      assert.deepEqual(uriSans(new X509Certificate((await buyer.sign({ csr })).certificateChain)), [BUYER]);
    } finally {
      buyer.close();
      stranger.close();
    }
    // No header at all.
    const raw = new Client(
      target,
      credentials.createSsl(Buffer.from(bundlePem), null, null, { checkServerIdentity: () => undefined }),
    );
    try {
      const code = await new Promise<number>((resolve) =>
        raw.makeUnaryRequest(
          '/weft.identity.v1.Certificates/Sign',
          (v: unknown) => Buffer.from(JSON.stringify(v)),
          (b: Buffer) => b,
          { csr },
          new Metadata(),
          (err) => resolve(err?.code ?? status.OK),
        ),
      );
      assert.equal(code, status.UNAUTHENTICATED);
    } finally {
      raw.close();
    }
    // Every refusal above is counted: the liar agent, PERMISSION_DENIED, two bad tokens, no token.
    assert.equal(denied() - before, 5);
  });

  it('is never served in plaintext', async () => {
    const plain = new Client(target, credentials.createInsecure());
    try {
      const code = await new Promise<number>((resolve) =>
        plain.makeUnaryRequest(
          '/weft.identity.v1.Certificates/TrustBundle',
          (v: unknown) => Buffer.from(JSON.stringify(v)),
          (b: Buffer) => b,
          {},
          (() => {
            const md = new Metadata();
            md.set('authorization', `Bearer ${BUYER_TOKEN}`);
            return md;
          })(),
          { deadline: Date.now() + 3000 },
          (err) => resolve(err?.code ?? status.OK),
        ),
      );
      assert.equal(code, status.UNAVAILABLE);
    } finally {
      plain.close();
    }
  });

  it('an agent trusting another CA refuses the endpoint before sending its token', async () => {
    const foreign = await newCa({ trustDomain: TD });
    try {
      const before = { denied: denied(), signed: signed() };
      const a = agent('misled', STORE_TOKEN, { bootstrapBundlePem: foreign.ca.bundlePem(), retryMs: 60_000 });
      await assert.rejects(a.start());
      // The server saw no request at all: the TLS handshake failed on the agent's side.
      assert.deepEqual({ denied: denied(), signed: signed() }, before);
    } finally {
      foreign.cleanup();
    }
  });

  it('a revoked token gets no renewal, and the workload keeps its valid certificate', async () => {
    const a = agent('store', STORE_TOKEN);
    await a.start();
    const file = join(tmp.dir, 'store', CERT_FILE);
    writeFileSync(tokens, tokenFile({ [BUYER_TOKEN]: 'shop/buyer' }), { mode: 0o600 });
    // The token file is watched; renewals succeed until the reload lands, then are refused.
    const end = Date.now() + 10_000;
    let refused = false;
    let held = '';
    while (!refused && Date.now() < end) {
      held = readFileSync(file, 'utf8');
      await a.renewNow().catch(() => undefined);
      refused = a.state.failures > 0;
      if (!refused) await sleep(200);
    }
    assert.ok(refused, 'renewal refused after the token was removed');
    assert.equal(readFileSync(file, 'utf8'), held, 'the certificate on disk is kept');
    assert.ok(new Date(new X509Certificate(held).validTo).getTime() > Date.now(), 'and it is still valid');
  });
});
