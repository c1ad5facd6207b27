/**
 * Authenticated xDS against `weft serve --config-dir`: Weft's own ADS client over real TLS. A
 * proxy's identity is its certificate's; a node claiming another identity gets nothing (logged
 * and counted); expired, foreign and missing client certificates, and plaintext, are refused at
 * the connection, unless the explicit insecure development flag is set.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ChannelCredentials, credentials, status } from '@grpc/grpc-js';
import { fetchProxyConfigs } from '../../src/conformance/csds';
import type { CertificateAuthority, IssuedKeyPair } from '../../src/identity/ca';
import { IDENTITY_SECRET, TRUST_SECRET } from '../../src/identity/names';
import { controlPlaneChannelCredentials, controlPlaneIdentity } from '../../src/identity/tls';
import { uriSans } from '../../src/identity/x509';
import { captureLogs, setLogLevel } from '../../src/log';
import { type RunningServe, startServe } from '../../src/serve';
import { AdsClient } from '../../src/xds/client';
import { CLUSTER, LISTENER, SECRET } from '../../src/xds/resource-types';
import { addresses, BUYER_MAY_CALL, ConfigDir, workloads } from '../mesh/mesh-fixture';
import { metricValue, newCa, sleep, tempDir } from './util';

const TD = 'cluster.local';
const BUYER = `spiffe://${TD}/ns/shop/sa/buyer`;
const STORE = `spiffe://${TD}/ns/shop/sa/store`;

interface Outcome {
  client: AdsClient;
  errors: { code?: number; details?: string }[];
}

describe('authenticated xDS: identity from the certificate, never from the node', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-authn-');
  let weft: RunningServe;
  let ca: CertificateAuthority;
  const open: AdsClient[] = [];
  let logs: string[] = [];
  let stopCapture: () => void = () => undefined;

  const tls = (pair?: IssuedKeyPair): ChannelCredentials =>
    controlPlaneChannelCredentials({
      bundlePem: ca.bundlePem(),
      serverIdentity: controlPlaneIdentity(TD),
      ...(pair ? { certPem: pair.chainPem, keyPem: pair.keyPem } : {}),
    });

  const connect = (
    creds: ChannelCredentials,
    nodeId: string,
    metadata: Record<string, string> = { FLAVOR: 'envoy' },
    port = weft.port,
  ): Outcome => {
    const client = new AdsClient({
      target: `127.0.0.1:${port}`,
      nodeId,
      metadata,
      mode: 'sotw',
      credentials: creds,
      ownConnection: true,
    });
    const errors: Outcome['errors'] = [];
    client.on('error', (e: { code?: number; details?: string }) => errors.push(e));
    client.subscribe(CLUSTER, []);
    client.subscribe(LISTENER, []);
    client.subscribe(SECRET, [IDENTITY_SECRET, TRUST_SECRET]);
    open.push(client);
    return { client, errors };
  };

  const metric = (name: string): Promise<number> => metricValue(weft.adminUrl!, name);

  /** Waits until `o` failed; the connection never became an ADS stream if no proxy registered. */
  const refused = async (o: Outcome, nodeId: string): Promise<void> => {
    const end = Date.now() + 10_000;
    while (o.errors.length === 0 && Date.now() < end) await sleep(20);
    assert.equal(o.errors[0]?.code, status.UNAVAILABLE, JSON.stringify(o.errors));
    assert.equal(o.client.stats.responses, 0);
    assert.ok(
      !weft.server.registry.proxies().some((p) => p.node.id === nodeId),
      'the refused connection never reached the ADS service',
    );
  };

  before(async () => {
    const A = addresses(48, 30481, 30482);
    cfg.write('workloads.yaml', workloads(A));
    cfg.write('access.yaml', BUYER_MAY_CALL);
    weft = await startServe({
      configDir: cfg.path,
      xdsAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
      caDir: join(tmp.dir, 'ca'),
    });
    ca = weft.identity.running.ca!;
    setLogLevel('warn');
    stopCapture = captureLogs((line) => logs.push(line));
  });

  after(async () => {
    stopCapture();
    setLogLevel('silent');
    for (const c of open) c.close();
    await weft?.stop();
    cfg.remove();
    tmp.cleanup();
  });

  it("serves a proxy its own config and only its own identity's certificate over SDS", async () => {
    const { client } = connect(tls(await ca.issueWithNewKey(BUYER)), 'shop/buyer');
    await client.waitFor(
      () => client.resources(SECRET).size === 2 && client.resources(LISTENER).size > 0,
      10_000,
      'secrets and listeners',
    );
    const secret = client.decoded(SECRET, IDENTITY_SECRET) as {
      tls_certificate: { certificate_chain: { inline_string: string } };
    };
    const leaf = new X509Certificate(secret.tls_certificate.certificate_chain.inline_string);
    assert.deepEqual(uriSans(leaf), [BUYER]);
    assert.ok(leaf.verify(new X509Certificate(ca.bundlePem()).publicKey), 'issued by the mesh CA');
  });

  it("gives a proxy whose certificate is A but whose node claims B none of B's resources, logged and counted", async () => {
    logs = [];
    const before = await metric('weft_identity_mismatch_total');
    const buyerCert = await ca.issueWithNewKey(BUYER);
    // Claims B by naming B's workload, and by naming B's ServiceAccount in its metadata.
    const byWorkload = connect(tls(buyerCert), 'shop/store-v1');
    const byMetadata = connect(tls(buyerCert), 'shop/buyer', { FLAVOR: 'envoy', SERVICE_ACCOUNT: 'store' });
    // An honest proxy connecting at the same time gets its config: the liars had time to get theirs.
    const honest = connect(tls(buyerCert), 'shop/buyer');
    await honest.client.waitFor(() => honest.client.resources(SECRET).size === 2, 10_000, 'honest secrets');
    await sleep(500);
    for (const liar of [byWorkload, byMetadata]) {
      assert.equal(liar.client.stats.responses, 0, 'nothing at all is sent to a liar');
      assert.equal(liar.client.resources(SECRET).size, 0);
    }
    assert.ok(!weft.server.cache.get('envoy/Pod/shop/store-v1'), "store's group was never even compiled");
    assert.ok(
      logs.some((l) => l.includes('shop/store-v1') && l.includes(`certificate is ${BUYER}`)),
      logs.join('\n'),
    );
    assert.ok(
      logs.some((l) => /claims an identity its certificate does not prove/.test(l) && l.includes(STORE)),
      logs.join('\n'),
    );
    assert.equal((await metric('weft_identity_mismatch_total')) - before, 2);
  });

  it('refuses the same lie on a delta stream and from a proxyless gRPC node', async () => {
    const before = await metric('weft_identity_mismatch_total');
    const buyerCert = await ca.issueWithNewKey(BUYER);
    const dial = (nodeId: string, mode: 'sotw' | 'delta', flavor: string): AdsClient => {
      const client = new AdsClient({
        target: `127.0.0.1:${weft.port}`,
        nodeId,
        metadata: { FLAVOR: flavor },
        mode,
        credentials: tls(buyerCert),
        ownConnection: true,
      });
      client.on('error', () => undefined);
      client.subscribe(LISTENER, []);
      client.subscribe(CLUSTER, []);
      if (flavor === 'envoy') client.subscribe(SECRET, [IDENTITY_SECRET, TRUST_SECRET]);
      open.push(client);
      return client;
    };
    const liars = [dial('shop/store-v1', 'delta', 'envoy'), dial('shop/store-v1', 'sotw', 'grpc')];
    // Honest twins with the same certificate and transport get their config, so the liars had
    // every chance to get theirs.
    const honest = [dial('shop/buyer', 'delta', 'envoy'), dial('shop/buyer', 'sotw', 'grpc')];
    for (const h of honest)
      await h.waitFor(() => h.resources(LISTENER).size > 0, 10_000, 'listeners for the honest twin');
    await sleep(500);
    for (const l of liars) {
      assert.equal(l.stats.responses, 0, 'nothing is sent to a node claiming store');
      assert.equal(l.resources(LISTENER).size + l.resources(CLUSTER).size, 0);
    }
    assert.equal((await metric('weft_identity_mismatch_total')) - before, 2);
  });

  it('refuses an expired client certificate at the TLS handshake', async () => {
    const short = await ca.issueWithNewKey(BUYER, 1000);
    while (short.notAfter.getTime() >= Date.now()) await sleep(50);
    await sleep(1100);
    await refused(connect(tls(short), 'shop/expired'), 'shop/expired');
  });

  it('refuses a certificate from a foreign CA, even for a valid-looking identity', async () => {
    const foreign = await newCa({ trustDomain: TD });
    try {
      await refused(connect(tls(await foreign.ca.issueWithNewKey(BUYER)), 'shop/foreign'), 'shop/foreign');
    } finally {
      foreign.cleanup();
    }
  });

  it('refuses TLS without a client certificate, and plaintext', async () => {
    await refused(connect(tls(), 'shop/anonymous'), 'shop/anonymous');
    await refused(connect(credentials.createInsecure(), 'shop/plaintext'), 'shop/plaintext');
  });

  it('serves plaintext only with the explicit insecure development flag', async () => {
    const dev = await startServe({
      configDir: cfg.path,
      xdsAddress: '127.0.0.1:0',
      mtls: false,
      insecureXds: true,
    });
    try {
      const { client } = connect(credentials.createInsecure(), 'shop/buyer', { FLAVOR: 'grpc' }, dev.port);
      await client.waitFor(() => client.resources(LISTENER).size > 0, 10_000, 'plaintext listeners');
      assert.equal(client.resources(SECRET).size, 0, 'no certificates without a CA');
    } finally {
      await dev.stop();
    }
  });

  it("answers CSDS over mTLS: all proxies to Weft's identity, a workload only its own, and never a private key", async () => {
    const store = connect(tls(await ca.issueWithNewKey(STORE)), 'shop/store-v1');
    await store.client.waitFor(() => store.client.resources(SECRET).size === 2, 10_000, 'store secrets');
    const target = `127.0.0.1:${weft.port}`;
    const operator = await fetchProxyConfigs(
      target,
      [],
      tls(await ca.issueWithNewKey(controlPlaneIdentity(TD))),
    );
    assert.ok(
      operator['shop/buyer'] && operator['shop/store-v1'],
      `Weft's identity sees every proxy: ${Object.keys(operator)}`,
    );
    const secrets = operator['shop/store-v1']!.filter((r) => r.typeUrl === SECRET);
    // Streams that claimed this node id with another identity asked for its secrets and got none:
    // CSDS lists those names as REQUESTED, without a version.
    const sent = secrets.filter((r) => r.clientStatus !== 'REQUESTED');
    assert.deepEqual(sent.map((r) => r.name).sort(), [IDENTITY_SECRET, TRUST_SECRET].sort());
    assert.ok(
      sent.every((r) => r.version !== '') && secrets.every((r) => r.config === undefined),
      'secrets listed by name and version, no contents',
    );
    assert.ok(secrets.filter((r) => r.clientStatus === 'REQUESTED').every((r) => r.version === ''));
    assert.ok(
      operator['shop/store-v1']!.some((r) => r.typeUrl === LISTENER && r.config !== undefined),
      'other config is shown',
    );
    // Buyer's and store's streams are connected (liars from the tests above used buyer's certificate).
    const own = await fetchProxyConfigs(target, [], tls(await ca.issueWithNewKey(STORE)));
    assert.deepEqual(
      Object.keys(own),
      ['shop/store-v1'],
      'a workload sees only the proxies of its own identity',
    );
    const stranger = `spiffe://${TD}/ns/shop/sa/stranger`;
    const none = await fetchProxyConfigs(
      target,
      ['shop/store-v1', 'shop/buyer'],
      tls(await ca.issueWithNewKey(stranger)),
    );
    assert.deepEqual(none, {}, "asking for other identities' proxies by name gets nothing");
  });
});
