/**
 * Identity in Kubernetes mode on a real kube-apiserver: the CA root in a Secret (created once,
 * shared by replicas, a corrupt one refused by name), the trust bundle published into mesh
 * namespaces, first certificates from ServiceAccount tokens checked with TokenReview, and real
 * proxyless gRPC peers over mutual TLS whose access follows what kubectl applies and deletes.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { allCrdsYaml } from '../../src/crds/render';
import { WorkloadAgent } from '../../src/identity/agent';
import { CERT_FILE } from '../../src/identity/names';
import { uriSans } from '../../src/identity/x509';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import { EchoClient, type EchoServer, startEchoServer } from '../../src/workload/echo';
import {
  type Sidecar,
  startSidecar,
  xdsChannelCredentials,
  xdsServerCredentials,
} from '../../src/workload/mesh-peer';
import { codeOf, tempDir } from '../identity/util';
import { addresses, BUYER_MAY_CALL, markFixturePodsReady, workloads } from '../mesh/mesh-fixture';
import { eventually, type KubeEnv, kubectlOk, startKubeEnv, WAIT_FOR_WEFT_CRDS } from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

const TD = 'cluster.local';
const WEFT = join(__dirname, '..', '..', '..', 'bin', 'weft.js');

describe('identity in Kubernetes mode on a real kube-apiserver', () => {
  let env: KubeEnv;
  const tmp = tempDir('weft-kube-identity-');
  const replicas: RunningKubeServe[] = [];
  const sidecars: Sidecar[] = [];
  const clients: EchoClient[] = [];
  let server: EchoServer | undefined;
  let A: ReturnType<typeof addresses>;

  const kubectl = async (args: string[], input?: string): Promise<string> =>
    (await kubectlOk(env, args, input)).stdout;
  const token = async (sa: string, audience = 'weft'): Promise<string> =>
    (await kubectl(['create', 'token', sa, '-n', 'shop', '--audience', audience, '--duration', '1h'])).trim();
  const start = (replica: string, extra: { caSecret?: string } = {}): Promise<RunningKubeServe> =>
    startKubeServe({
      kubeconfig: env.kubeconfigPath,
      replica,
      xdsAddress: '127.0.0.1:0',
      caAddress: '127.0.0.1:0',
      trustDomain: TD,
      quietMs: 50,
      maxDelayMs: 300,
      leaseSeconds: 2,
      leaseRetryMs: 200,
      ...extra,
    });
  const secretRoot = async (name = 'weft-ca'): Promise<string> => {
    const out = JSON.parse(await kubectl(['get', 'secret', name, '-n', 'weft-system', '-o', 'json'])) as {
      data: Record<string, string>;
    };
    return Buffer.from(out.data['ca.crt']!, 'base64').toString('utf8');
  };

  before(async () => {
    env = await startKubeEnv();
    A = addresses(49, await freePort(), await freePort());
    await kubectl(['apply', '-f', '-'], allCrdsYaml());
    await kubectl([...WAIT_FOR_WEFT_CRDS]);
    await kubectl(['create', 'namespace', 'weft-system']);
    await kubectl(['apply', '-f', '-'], workloads(A));
    await markFixturePodsReady(kubectl, A);
    await kubectl(['apply', '-f', '-'], BUYER_MAY_CALL);
    replicas.push(await start('weft-a'));
  });

  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
    for (const s of sidecars) await s.stop();
    for (const r of replicas) await r.stop();
    await env?.stop();
    tmp.cleanup();
  });

  it('creates the CA root in a Secret once; a second replica serves from the same root', async () => {
    const first = await secretRoot();
    const a = replicas[0]!.identity.running.ca!;
    assert.equal(a.store.location, 'secret weft-system/weft-ca');
    assert.equal(new X509Certificate(first).fingerprint256, a.signer().certificate.fingerprint256);
    replicas.push(await start('weft-b'));
    const b = replicas[1]!.identity.running.ca!;
    assert.equal(b.signer().certificate.fingerprint256, a.signer().certificate.fingerprint256);
    assert.equal(await secretRoot(), first, 'the second replica did not replace the root');
  });

  it('publishes the trust bundle into every mesh namespace, and into one labelled later', async () => {
    const bundle = replicas[0]!.identity.running.ca!.bundlePem();
    const read = async (ns: string): Promise<string | undefined> => {
      const r = await env.kubectl(['get', 'configmap', 'weft-ca-bundle', '-n', ns, '-o', 'json']);
      if (r.code !== 0) return undefined;
      return (JSON.parse(r.stdout) as { data: Record<string, string> }).data['bundle.pem'];
    };
    await eventually('weft-ca-bundle in shop', async () => (await read('shop')) === bundle);
    assert.equal(await read('weft-system'), undefined, 'weft-system is not a mesh namespace');
    await kubectl(['create', 'namespace', 'late']);
    await kubectl(['label', 'namespace', 'late', 'weft.dev/mesh=enabled']);
    await eventually(
      'weft-ca-bundle in a namespace labelled later',
      async () => (await read('late')) === bundle,
    );
  });

  it('gives an agent with a ServiceAccount token a certificate for exactly that ServiceAccount', async () => {
    const weft = replicas[0]!;
    const bundle = weft.identity.running.ca!.bundlePem();
    const agentFor = (tok: string, dir: string, identity?: string) =>
      new WorkloadAgent({
        server: `127.0.0.1:${weft.identity.certificatePort}`,
        token: async () => tok,
        outDir: join(tmp.dir, dir),
        bootstrapBundlePem: bundle,
        bundleRefreshMs: 60_000,
        ...(identity ? { identity } : {}),
      });
    const buyerToken = await token('buyer');
    const ok = agentFor(buyerToken, 'buyer-only');
    await ok.start();
    ok.stop();
    const cert = new X509Certificate(readFileSync(join(tmp.dir, 'buyer-only', CERT_FILE)));
    assert.deepEqual(uriSans(cert), [`spiffe://${TD}/ns/shop/sa/buyer`]);

    // buyer's token does not get store's identity.
    const other = agentFor(buyerToken, 'buyer-as-store', 'shop/store');
    await assert.rejects(other.start(), /PERMISSION_DENIED|not entitled|7 /);
    other.stop();
    // A token for another audience (the API server's own) is refused, as is garbage.
    const wrongAudience = agentFor(await token('buyer', 'https://kubernetes.default.svc'), 'aud');
    await assert.rejects(wrongAudience.start(), /UNAUTHENTICATED|16 /);
    wrongAudience.stop();
    const garbage = agentFor('not-a-token-at-all-0123456789', 'garbage');
    await assert.rejects(garbage.start(), /UNAUTHENTICATED|16 /);
    garbage.stop();
    assert.ok((weft.identity.running.certificateServer?.service.stats.denied ?? 0) >= 3);
  });

  it('enforces TrafficTarget over mTLS between real peers, and a kubectl delete denies', async () => {
    const weft = replicas[0]!;
    const common = {
      caTarget: `127.0.0.1:${weft.identity.certificatePort}`,
      xdsTarget: `127.0.0.1:${weft.port}`,
      bootstrapBundlePem: weft.identity.running.ca!.bundlePem(),
      trustDomain: TD,
    };
    const [store, buyer, thief] = await Promise.all(
      (['store', 'buyer', 'thief'] as const).map(async (sa) =>
        startSidecar({
          ...common,
          dir: join(tmp.dir, `peer-${sa}`),
          nodeId: sa === 'store' ? 'shop/store-v1' : `shop/${sa}`,
          token: await token(sa),
        }),
      ),
    );
    sidecars.push(store!, buyer!, thief!);
    server = await startEchoServer({
      name: 'v1',
      address: `${A.v1}:${A.v1Port}`,
      bootstrap: store!.bootstrap,
      credentials: xdsServerCredentials(),
    });
    const fresh = (): EchoClient => {
      const c = new EchoClient(`xds:///store-v1.shop:${A.port}`, buyer!.bootstrap, xdsChannelCredentials());
      clients.push(c);
      return c;
    };
    const buyerClient = fresh();
    await eventually(
      'buyer reaches store-v1 over mTLS',
      async () => (await buyerClient.call('Get', {}, 2000)).backend === 'v1',
      20_000,
    );
    const direct = (from: Sidecar): EchoClient => {
      const c = new EchoClient(
        `${A.v1}:${A.v1Port}`,
        undefined,
        from.directCredentials(`spiffe://${TD}/ns/shop/sa/store`),
      );
      clients.push(c);
      return c;
    };
    assert.equal(await codeOf(direct(thief!).call('Get', {}, 3000)), status.PERMISSION_DENIED);
    assert.equal((await direct(buyer!).call('Get', {}, 3000)).backend, 'v1');

    await kubectl(['delete', 'traffictarget', 'buyer-to-store', '-n', 'shop']);
    await eventually(
      'buyer denied after the TrafficTarget is deleted',
      async () => (await codeOf(direct(buyer!).call('Get', {}, 2000))) === status.PERMISSION_DENIED,
      10_000,
    );
  });

  it('weft ca rotate --kubeconfig rotates the root in the Secret; every replica and the bundle follow', async () => {
    const [a, b] = [replicas[0]!.identity.running.ca!, replicas[1]!.identity.running.ca!];
    const old = a.signer().certificate.fingerprint256;
    const weft = (args: string[]) =>
      new Promise<{ code: number | null; out: string }>((resolve) => {
        const p = spawn(process.execPath, [WEFT, 'ca', ...args, '--kubeconfig', env.kubeconfigPath], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let out = '';
        p.stdout.on('data', (d: Buffer) => {
          out += d.toString();
        });
        p.stderr.on('data', (d: Buffer) => {
          out += d.toString();
        });
        p.on('exit', (code) => resolve({ code, out }));
      });
    const rotated = await weft(['rotate', '--activate-after', '2s', '--cert-ttl', '1h']);
    assert.equal(rotated.code, 0, rotated.out);
    const newRoot = /new root (\S+)/.exec(rotated.out)?.[1];
    assert.ok(newRoot, rotated.out);
    const roots = (pem: string) => pem.match(/BEGIN CERTIFICATE/g)?.length ?? 0;
    // Both replicas trust the new root before it signs, and the leader publishes the bigger bundle.
    await eventually(
      'both replicas trust old and new root',
      () => roots(a.bundlePem()) === 2 && roots(b.bundlePem()) === 2,
    );
    await eventually('the published bundle holds both roots', async () => {
      const r = await env.kubectl(['get', 'configmap', 'weft-ca-bundle', '-n', 'shop', '-o', 'json']);
      return (
        r.code === 0 &&
        roots((JSON.parse(r.stdout) as { data: Record<string, string> }).data['bundle.pem'] ?? '') === 2
      );
    });
    const status = await weft(['status']);
    assert.equal(status.code, 0, status.out);
    assert.match(status.out, /secret weft-system\/weft-ca/);
    assert.match(status.out, /^(pending|signing) /m);
    // After --activate-after every replica signs with the new root; the old one stays trusted.
    await eventually(
      'both replicas sign with the new root',
      () => a.signer().certificate.fingerprint256 !== old && b.signer().certificate.fingerprint256 !== old,
    );
    assert.equal(a.signer().certificate.fingerprint256, b.signer().certificate.fingerprint256);
    const issued = await b.issueWithNewKey(`spiffe://${TD}/ns/shop/sa/buyer`);
    assert.ok(issued.certificate.verify(a.signer().certificate.publicKey), 'signed by the new root');
    const bare = await weft(['rotate', '--ca-dir', tmp.dir]);
    assert.equal(bare.code, 2, 'two CAs named is a usage error');
    assert.match(bare.out, /give one CA/);
  });

  it('refuses to start on a corrupt CA Secret, naming the Secret, the key and the fix', async () => {
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Secret
metadata: { name: broken-ca, namespace: weft-system }
stringData:
  ca.crt: "-----BEGIN CERTIFICATE-----\\nnot base64 at all\\n-----END CERTIFICATE-----\\n"
  ca.key: "also not a key"
`,
    );
    await assert.rejects(start('weft-broken', { caSecret: 'broken-ca' }), (err: Error) => {
      assert.match(err.message, /secret weft-system\/broken-ca/);
      assert.match(err.message, /ca\.crt|ca\.key/);
      return true;
    });
    await kubectl(
      ['apply', '-f', '-'],
      'apiVersion: v1\nkind: Secret\nmetadata: { name: keyless-ca, namespace: weft-system }\nstringData: { ca.crt: x }\n',
    );
    await assert.rejects(
      start('weft-keyless', { caSecret: 'keyless-ca' }),
      /secret weft-system\/keyless-ca has no data key ca\.key: restore/,
    );
  });

  it('keeps serving from the last good root when the Secret is corrupted while running', async () => {
    const weft = replicas[0]!;
    const before = weft.identity.running.ca!.signer().certificate.fingerprint256;
    let failed = 0;
    weft.identity.running.ca!.on('reloadFailed', () => failed++);
    await kubectl([
      'patch',
      'secret',
      'weft-ca',
      '-n',
      'weft-system',
      '--type=merge',
      '-p',
      JSON.stringify({ stringData: { 'ca.crt': 'garbage' } }),
    ]);
    await eventually('the CA notices the broken Secret', () => failed > 0, 10_000);
    assert.equal(weft.identity.running.ca!.signer().certificate.fingerprint256, before);
    const issued = await weft.identity.running.ca!.issueWithNewKey(`spiffe://${TD}/ns/shop/sa/buyer`);
    assert.equal(issued.identity, `spiffe://${TD}/ns/shop/sa/buyer`, 'still signs with the last good root');
  });
});
