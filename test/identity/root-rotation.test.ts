/**
 * Root rotation end to end: `weft ca rotate` on the CA folder of a running `weft serve` while real
 * proxyless gRPC peers (grpc-js-xds, certificates from `weft agent` files, xDS through the agent's
 * relay) call each other over mTLS without pause. Every phase is entered only once the previous
 * one is observed everywhere, by moving Weft's CA clock (`caClock`) instead of waiting:
 * 1. the new root is trusted by Weft, by both agents' bundles and by the destination's TLS stack;
 * 2. the new root signs: Weft's serving certificate, both workloads and what the destination
 *    presents on the wire move to it, with no certificate expiring first (they live 10 minutes);
 * 3. the old root leaves the bundle: Weft, the agents and the destination refuse a certificate it
 *    signed, while calls, new connections and the xDS streams opened before the rotation go on.
 * The overlap given to `weft ca rotate` (`--cert-ttl 40s`) is shorter than the certificates'
 * lifetime (10 min), so only a move to the new root made on the signer's change, not on expiry,
 * passes phase 3. Moving the clock by at most a minute keeps every certificate Weft issues valid
 * on the real clock too (notBefore is set back a minute).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { credentials, status } from '@grpc/grpc-js';
import type { CertificateAuthority } from '../../src/identity/ca';
import { CA_FILE, CERT_FILE, KEY_FILE } from '../../src/identity/names';
import {
  generateKey,
  issueWorkloadCertificate,
  parseCertificates,
  parsePrivateKey,
  privateKeyPem,
  type SigningKey,
  signingKey,
} from '../../src/identity/x509';
import { freePort } from '../../src/net';
import type { RunningServe } from '../../src/serve';
import { EchoClient, type EchoServer } from '../../src/workload/echo';
import { type Sidecar, xdsChannelCredentials } from '../../src/workload/mesh-peer';
import { SECRET } from '../../src/xds/resource-types';
import { addresses, BUYER_MAY_CALL, ConfigDir, workloads } from '../mesh/mesh-fixture';
import { startSecureMesh } from './secure-mesh';
import { codeOf, secretsClient, sleep, tempDir, waitUntil } from './util';

const WEFT = join(__dirname, '..', '..', '..', 'bin', 'weft.js');
const TD = 'cluster.local';
const BUYER = `spiffe://${TD}/ns/shop/sa/buyer`;
/** Bound of every wait: generous, since each is a condition polled, not a guess of speed. */
const WAIT_MS = 30_000;

/** A root's certificate and key, to sign probe certificates with. */
interface RootMaterial {
  readonly certificate: X509Certificate;
  readonly signer: SigningKey;
}

async function rootIn(dir: string): Promise<RootMaterial> {
  const certificate = parseCertificates(readFileSync(join(dir, 'ca.pem'), 'utf8'), 'ca.pem')[0]!;
  const key = parsePrivateKey(readFileSync(join(dir, 'ca-key.pem'), 'utf8'), 'ca-key.pem');
  return { certificate, signer: await signingKey(key, 'ca-key.pem') };
}

const issuedBy = (leaf: X509Certificate, root: X509Certificate): boolean =>
  leaf.checkIssued(root) && leaf.verify(root.publicKey);

/** A buyer certificate signed directly by `root`: a stand-in for a peer whose root is that one. */
async function probeIdentity(root: RootMaterial): Promise<{ certPem: string; keyPem: string }> {
  const key = await generateKey();
  const leaf = await issueWorkloadCertificate({
    issuer: root.certificate,
    issuerKey: root.signer,
    publicKeySpki: new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' })),
    spiffeId: BUYER,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 600_000),
  });
  return { certPem: leaf.toString(), keyPem: privateKeyPem(key) };
}

/** The certificate a TLS server presents (its chain is not checked: this only looks). */
function presented(host: string, port: number, client: { certPem: string; keyPem: string }) {
  return new Promise<X509Certificate>((resolve, reject) => {
    const s = tlsConnect({
      host,
      port,
      ALPNProtocols: ['h2'],
      cert: client.certPem,
      key: client.keyPem,
      rejectUnauthorized: false,
    });
    s.once('secureConnect', () => {
      const c = s.getPeerX509Certificate();
      s.destroy();
      if (c) resolve(c);
      else reject(new Error(`${host}:${port} presented no certificate`));
    });
    s.once('error', reject);
  });
}

/** Runs `weft ca rotate` and returns when the new root signs and until when the old one is trusted. */
async function rotate(caDir: string, activateAfter: string, overlap: string) {
  const proc = spawn(
    process.execPath,
    [WEFT, 'ca', 'rotate', '--ca-dir', caDir, '--activate-after', activateAfter, '--cert-ttl', overlap],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  proc.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  proc.stderr.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  assert.equal(code, 0, out);
  const activatesAt = /signs from (\S+)/.exec(out)?.[1];
  const trustedUntil = /previous roots trusted until (\S+)/.exec(out)?.[1];
  assert.ok(activatesAt && trustedUntil, out);
  return { activatesAt: Date.parse(activatesAt), trustedUntil: Date.parse(trustedUntil) };
}

/**
 * Calls without pause until stopped: one long-lived xDS channel, and a fresh xDS channel per call
 * beside it, so new TLS handshakes (and new xDS streams through the relay) happen in every phase.
 */
class Traffic {
  calls = 0;
  fresh = 0;
  readonly failures: string[] = [];
  private stopped = false;
  private readonly loops: Promise<void>[];

  constructor(longLived: EchoClient, bootstrap: Record<string, unknown>, target: string) {
    const record = async (p: Promise<unknown>, what: string): Promise<void> => {
      try {
        await p;
        this.calls++;
      } catch (e) {
        this.failures.push(`${what}: ${(e as { details?: string }).details ?? String(e)}`);
      }
    };
    // Bounded: a test that stalls stops calling rather than growing without end.
    this.loops = [
      (async () => {
        for (let i = 0; i < 20_000 && !this.stopped; i++) await record(longLived.call('Get'), 'long-lived');
      })(),
      (async () => {
        for (let i = 0; i < 1_000 && !this.stopped; i++) {
          const c = new EchoClient(target, bootstrap, xdsChannelCredentials());
          await record(c.call('Get', {}, 10_000), 'fresh channel');
          c.close();
          this.fresh++;
        }
      })(),
    ];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

describe('root rotation with live proxyless gRPC peers over mTLS', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-rotation-');
  let caDir: string;
  let clock = Date.now();
  let weft: RunningServe;
  let ca: CertificateAuthority;
  let store: Sidecar;
  let buyer: Sidecar;
  let server: EchoServer;
  let longLived: EchoClient;
  let A: ReturnType<typeof addresses>;
  const closers: (() => void)[] = [];
  let stopTraffic = async (): Promise<void> => undefined;

  before(async () => {
    A = addresses(53, await freePort(), await freePort());
    cfg.write('workloads.yaml', workloads(A));
    cfg.write('access.yaml', BUYER_MAY_CALL);
    const mesh = await startSecureMesh({
      configDir: cfg.path,
      dir: tmp.dir,
      addresses: A,
      trustDomain: TD,
      serviceAccounts: ['store', 'buyer'],
      // Certificates live 10 minutes, and the CA's clock stands still unless the test moves it:
      // each phase of the rotation begins when the test says.
      serve: { certTtl: '10m', caClock: () => clock },
    });
    ({ weft, server, caDir } = mesh);
    ca = weft.identity.running.ca!;
    ({ store, buyer } = mesh.sidecars as Record<'store' | 'buyer', Sidecar>);
    longLived = new EchoClient(`xds:///store-v1.shop:${A.port}`, buyer.bootstrap, xdsChannelCredentials());
    closers.push(() => longLived.close());
  });

  after(async () => {
    await stopTraffic();
    for (const c of closers) c();
    await server?.stop();
    for (const s of [store, buyer]) await s?.stop();
    await weft?.stop();
    cfg.remove();
    tmp.cleanup();
  });

  const agentFile = (s: Sidecar, name: string): string => readFileSync(join(s.dir, name), 'utf8');
  const agentBundle = (s: Sidecar): string[] =>
    parseCertificates(agentFile(s, CA_FILE), CA_FILE).map((c) => c.fingerprint256);
  const agentCertificate = (s: Sidecar): X509Certificate => new X509Certificate(agentFile(s, CERT_FILE));
  /** A direct call to the destination presenting `id`: OK when its TLS stack trusts id's root. */
  const callStoreAs = async (id: { certPem: string; keyPem: string }): Promise<number> => {
    const c = new EchoClient(
      `${A.v1}:${A.v1Port}`,
      undefined,
      credentials.createSsl(
        readFileSync(join(caDir, 'bundle.pem')),
        Buffer.from(id.keyPem),
        Buffer.from(id.certPem),
        { checkServerIdentity: () => undefined },
      ),
    );
    try {
      return await codeOf(c.call('Get', {}, 3000));
    } finally {
      c.close();
    }
  };
  const pollUntil = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    const end = Date.now() + WAIT_MS;
    while (!(await check())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };
  /** A new mTLS xDS stream to Weft with `id`: resolves to whether Weft served it its secrets. */
  const xdsWith = async (id: { certPem: string; keyPem: string }, bundlePem: string): Promise<boolean> => {
    const c = secretsClient({ port: weft.port, nodeId: 'shop/buyer', bundlePem, ...id });
    const failed = new Promise<false>((resolve) => c.on('error', () => resolve(false)));
    try {
      return await Promise.race([
        c.waitFor(() => c.resources(SECRET).size === 2, 10_000, 'secrets').then(() => true),
        failed,
      ]);
    } catch {
      return false;
    } finally {
      c.close();
    }
  };

  it('rotates the root under continuous mTLS calls: no call fails, peers and Weft end on the new root, xDS streams survive', async (t) => {
    const first = Date.now() + WAIT_MS;
    while ((await codeOf(longLived.call('Get', {}, 2000))) !== status.OK) {
      assert.ok(Date.now() < first, 'the buyer reaches the store before the rotation');
      await sleep(100);
    }
    const oldRoot = await rootIn(caDir);
    const xdsStreams = (): number[] =>
      weft.server.registry
        .proxies()
        .filter((p) => p.node.id === 'shop/store-v1' || p.node.id === 'shop/buyer')
        .map((p) => p.streamId);
    const streamsBefore = xdsStreams();
    const refusedBefore = weft.identity.running.guards.reduce((n, g) => n + g.stats.unauthenticated, 0);
    assert.ok(streamsBefore.length >= 2, 'the store server and the long-lived client hold xDS streams');

    const traffic = new Traffic(longLived, buyer.bootstrap, `xds:///store-v1.shop:${A.port}`);
    stopTraffic = () => traffic.stop();
    await waitUntil(() => traffic.fresh >= 3, WAIT_MS, 'calls on fresh channels before the rotation');

    // Phase 1: a new root, trusted at once, signing later.
    const rotated = Date.now();
    clock = rotated;
    const r = await rotate(caDir, '20s', '40s');
    const newRoot = await rootIn(caDir);
    const both = [oldRoot, newRoot].map((x) => x.certificate.fingerprint256).sort();
    await waitUntil(() => ca.bundle().length === 2, WAIT_MS, 'Weft to load the rotated CA');
    assert.equal(ca.signer().certificate.fingerprint256, oldRoot.certificate.fingerprint256);
    for (const s of [store, buyer])
      await waitUntil(
        () => JSON.stringify(agentBundle(s).sort()) === JSON.stringify(both),
        WAIT_MS,
        `${s.dir}: the agent's bundle with both roots`,
      );
    await pollUntil('the store to trust the new root', async () => {
      return (await callStoreAs(await probeIdentity(newRoot))) === status.OK;
    });
    const trustedEverywhere = Date.now() - rotated;

    // Phase 2: the new root signs; everything moves to it by itself.
    clock = r.activatesAt + 1;
    const activated = Date.now();
    ca.tick();
    assert.equal(ca.signer().certificate.fingerprint256, newRoot.certificate.fingerprint256);
    const buyerProbe = { certPem: agentFile(buyer, CERT_FILE), keyPem: agentFile(buyer, KEY_FILE) };
    await pollUntil('every peer and Weft on the new root', async () => {
      if (!issuedBy(weft.identity.running.serving!.certificate.certificate, newRoot.certificate))
        return false;
      if (![store, buyer].every((s) => issuedBy(agentCertificate(s), newRoot.certificate))) return false;
      const onWire = await Promise.all([
        presented(A.v1, A.v1Port, buyerProbe),
        presented('127.0.0.1', weft.port, buyerProbe),
      ]);
      return onWire.every((c) => issuedBy(c, newRoot.certificate));
    });
    const converged = Date.now() - activated;
    assert.equal(store.agent.state.failures + buyer.agent.state.failures, 0);

    // Phase 3: the overlap ends; the old root leaves every bundle.
    clock = r.trustedUntil + 1;
    ca.tick();
    assert.deepEqual(
      ca.bundle().map((c) => c.fingerprint256),
      [newRoot.certificate.fingerprint256],
    );
    for (const s of [store, buyer])
      await waitUntil(
        () => JSON.stringify(agentBundle(s)) === JSON.stringify([newRoot.certificate.fingerprint256]),
        WAIT_MS,
        `${s.dir}: the agent's bundle without the old root`,
      );
    await pollUntil('the store to refuse the old root', async () => {
      return (await callStoreAs(await probeIdentity(oldRoot))) === status.UNAVAILABLE;
    });
    assert.equal(await callStoreAs(await probeIdentity(newRoot)), status.OK);
    // Weft's xDS port: a certificate of the old root is refused, one of the new root served, with
    // only the new root trusted on the client side too.
    const newBundle = ca.bundlePem();
    assert.equal(await xdsWith(await probeIdentity(oldRoot), newBundle), false);
    assert.equal(await xdsWith(await probeIdentity(newRoot), newBundle), true);
    // Calls go on over fresh connections after the old root is gone.
    const freshAtEnd = traffic.fresh;
    await waitUntil(
      () => traffic.fresh >= freshAtEnd + 5,
      WAIT_MS,
      'calls on fresh channels after the overlap',
    );
    await traffic.stop();

    assert.deepEqual(traffic.failures, [], `${traffic.failures.length} of ${traffic.calls} calls failed`);
    assert.ok(traffic.fresh >= 10, `${traffic.fresh} calls on fresh channels`);
    // The xDS streams opened before the rotation are still open, none was refused meanwhile, and
    // the relays saw no stream to Weft fail.
    const streamsAfter = new Set(xdsStreams());
    for (const id of streamsBefore) assert.ok(streamsAfter.has(id), `xDS stream ${id} survived`);
    assert.equal(
      weft.identity.running.guards.reduce((n, g) => n + g.stats.unauthenticated, 0),
      refusedBefore,
    );
    assert.equal(store.relay.stats.failed + buyer.relay.stats.failed, 0);
    assert.ok(buyer.relay.stats.connections >= 2, 'the relay moved new streams to a new connection');
    t.diagnostic(
      `${traffic.calls} calls (${traffic.fresh} on fresh channels), ${traffic.failures.length} failed; ` +
        `new root trusted everywhere ${trustedEverywhere} ms after weft ca rotate; ` +
        `peers and Weft on the new root ${converged} ms after activation (bundle refresh 2 s)`,
    );
  });
});
