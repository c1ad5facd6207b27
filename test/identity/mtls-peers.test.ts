/**
 * "Only buyer may call store", true on the wire: `weft serve --config-dir` with its CA, real
 * proxyless gRPC servers and clients from @grpc/grpc-js-xds over mutual TLS, their certificates
 * issued by Weft's CA through `weft agent` files and read by grpc's file_watcher providers, and
 * their xDS carried over mTLS by the agent's relay. RBAC is enforced by the destination server
 * from the SPIFFE ID in the caller's certificate; the caller checks the server's SPIFFE ID.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { connect as http2Connect } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { ServerCredentials, status } from '@grpc/grpc-js';
import { CA_FILE, CERT_FILE, KEY_FILE } from '../../src/identity/names';
import { freePort } from '../../src/net';
import type { RunningServe } from '../../src/serve';
import { EchoClient, type EchoServer, startEchoServer } from '../../src/workload/echo';
import {
  type Sidecar,
  writtenSerial,
  xdsChannelCredentials,
  xdsServerCredentials,
} from '../../src/workload/mesh-peer';
import { addresses, ConfigDir, workloads } from '../mesh/mesh-fixture';
import { startSecureMesh } from './secure-mesh';
import { codeOf, sleep, tempDir } from './util';

const TD = 'cluster.local';
const STORE = `spiffe://${TD}/ns/shop/sa/store`;

/** The routes of store: Get, and everything under the service. */
const STORE_ROUTES = `apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: { name: store-get, namespace: shop }
spec:
  matches:
    - { name: get, pathRegex: /weft.echo.Echo/Get, methods: ["*"] }
    - { name: any, pathRegex: /weft.echo.Echo/, methods: ["*"] }
`;

/** buyer may call store's Get, and nothing else (the rule names only the `get` match). */
const BUYER_MAY_GET = `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: buyer-to-store, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: store, namespace: shop }
  rules: [{ kind: HTTPRouteGroup, name: store-get, matches: [get] }]
  sources: [{ kind: ServiceAccount, name: buyer, namespace: shop }]
`;

type CallError = { code?: number; details?: string };

async function firstSuccess(c: EchoClient, deadlineMs = 20_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  let last = '';
  while (Date.now() < end) {
    try {
      await c.call('Get', {}, 2000);
      return;
    } catch (e) {
      last = (e as CallError).details ?? String(e);
      await sleep(100);
    }
  }
  throw new Error(`no successful call within ${deadlineMs} ms; last error: ${last}`);
}

async function errorOf(p: Promise<unknown>): Promise<CallError> {
  try {
    await p;
    return { code: status.OK };
  } catch (e) {
    return e as CallError;
  }
}

/**
 * One echo Get over an already-open TCP socket: TLS with `from`'s certificate, then HTTP/2 by
 * hand (grpc-js cannot be handed a socket). Resolves to `grpc-status N`, or `closed: <error>`.
 */
async function rawGet(socket: Socket, from: Sidecar): Promise<string> {
  if (socket.destroyed) return 'closed: the server closed the connection';
  try {
    const secure = tlsConnect({
      socket,
      ca: readFileSync(join(from.dir, CA_FILE)),
      cert: readFileSync(join(from.dir, CERT_FILE)),
      key: readFileSync(join(from.dir, KEY_FILE)),
      ALPNProtocols: ['h2'],
      // The server's SPIFFE ID is not what this test is about.
      checkServerIdentity: () => undefined,
    });
    // The server may close the socket before or during the handshake, without an error.
    await new Promise<void>((resolve, reject) => {
      secure.once('secureConnect', () => resolve());
      secure.once('error', reject);
      secure.once('close', () => reject(new Error('socket closed before the handshake completed')));
    });
    const session = http2Connect('https://store', { createConnection: () => secure });
    try {
      const req = session.request({
        ':method': 'POST',
        ':path': '/weft.echo.Echo/Get',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      const body = Buffer.from('{}');
      const frame = Buffer.alloc(5 + body.length);
      frame.writeUInt32BE(body.length, 1);
      body.copy(frame, 5);
      req.end(frame);
      req.resume();
      return await new Promise<string>((resolve, reject) => {
        let code: string | undefined;
        const take = (h: Record<string, unknown>): void => {
          if (h['grpc-status'] !== undefined) code = String(h['grpc-status']);
        };
        req.on('response', take);
        req.on('trailers', take);
        req.on('close', () => resolve(code === undefined ? 'closed: no status' : `grpc-status ${code}`));
        req.on('error', reject);
        session.on('close', () =>
          resolve(code === undefined ? 'closed: session closed' : `grpc-status ${code}`),
        );
        session.on('error', reject);
      });
    } finally {
      session.destroy();
    }
  } catch (e) {
    return `closed: ${(e as Error).message}`;
  }
}

describe('mTLS between real proxyless gRPC peers, policy from the peer certificate', () => {
  const cfg = new ConfigDir();
  const tmp = tempDir('weft-mtls-');
  let weft: RunningServe;
  let store: Sidecar;
  let buyer: Sidecar;
  let thief: Sidecar;
  let server: EchoServer;
  let buyerClient: EchoClient;
  let A: ReturnType<typeof addresses>;
  const clients: EchoClient[] = [];
  const direct = (from: Sidecar): EchoClient => {
    const c = new EchoClient(`${A.v1}:${A.v1Port}`, undefined, from.directCredentials(STORE));
    clients.push(c);
    return c;
  };

  before(async () => {
    A = addresses(47, await freePort(), await freePort());
    cfg.write('workloads.yaml', workloads(A));
    cfg.write('routes.yaml', STORE_ROUTES);
    cfg.write('access.yaml', BUYER_MAY_GET);
    const mesh = await startSecureMesh({
      configDir: cfg.path,
      dir: tmp.dir,
      addresses: A,
      trustDomain: TD,
      serviceAccounts: ['store', 'buyer', 'thief'],
    });
    ({ weft, server } = mesh);
    ({ store, buyer, thief } = mesh.sidecars as Record<'store' | 'buyer' | 'thief', Sidecar>);
    buyerClient = new EchoClient(`xds:///store-v1.shop:${A.port}`, buyer.bootstrap, xdsChannelCredentials());
    clients.push(buyerClient);
  });

  after(async () => {
    for (const c of clients) c.close();
    await server?.stop();
    for (const s of [store, buyer, thief]) await s?.stop();
    await weft?.stop();
    cfg.remove();
    tmp.cleanup();
  });

  it('lets the allowed source through, over mTLS', async () => {
    await firstSuccess(buyerClient);
    for (let i = 0; i < 20; i++) {
      const r = await buyerClient.call('Get');
      assert.equal(r.backend, 'v1');
    }
    // The server speaks only TLS: a plaintext caller does not even get an answer from RBAC.
    const plain = new EchoClient(`${A.v1}:${A.v1Port}`);
    clients.push(plain);
    assert.equal(await codeOf(plain.call('Get', {}, 2000)), status.UNAVAILABLE);
  });

  it('denies a source without a TrafficTarget at the destination (PERMISSION_DENIED)', async () => {
    // thief's own config has no route to store; it dials the server directly with its valid
    // mesh certificate, so only the destination's RBAC stands between it and the service.
    assert.equal(await codeOf(direct(thief).call('Get')), status.PERMISSION_DENIED);
    // The same direct path with buyer's certificate is allowed: the identity decided, not the path.
    assert.equal((await direct(buyer).call('Get')).backend, 'v1');
    // And through xDS thief is sent no route to the service at all.
    const viaXds = new EchoClient(`xds:///store-v1.shop:${A.port}`, thief.bootstrap, xdsChannelCredentials());
    clients.push(viaXds);
    assert.notEqual(await codeOf(viaXds.call('Get', {}, 3000)), status.OK);
  });

  it('denies the allowed source on a method its rule does not cover', async () => {
    assert.equal(await codeOf(buyerClient.call('Put')), status.PERMISSION_DENIED);
    assert.equal(await codeOf(buyerClient.call('Delete')), status.PERMISSION_DENIED);
    assert.equal((await buyerClient.call('Get')).backend, 'v1');
  });

  it('renews certificates mid-traffic without a failed call', async () => {
    const before = { buyer: writtenSerial(buyer), store: writtenSerial(store) };
    let stop = false;
    let ok = 0;
    const failures: string[] = [];
    const traffic = (async () => {
      while (!stop) {
        try {
          await buyerClient.call('Get');
          ok++;
        } catch (e) {
          failures.push((e as CallError).details ?? String(e));
        }
      }
    })();
    await sleep(300);
    await Promise.all([buyer.agent.renewNow(), store.agent.renewNow()]);
    // file_watcher re-reads every second; give it time to pick the new files up.
    await sleep(2500);
    // A new channel makes new handshakes, which present the renewed certificates.
    const fresh = new EchoClient(`xds:///store-v1.shop:${A.port}`, buyer.bootstrap, xdsChannelCredentials());
    clients.push(fresh);
    await firstSuccess(fresh);
    const d = direct(buyer);
    assert.equal((await d.call('Get')).backend, 'v1');
    await sleep(300);
    stop = true;
    await traffic;
    assert.notEqual(writtenSerial(buyer), before.buyer, 'buyer got a new certificate');
    assert.notEqual(writtenSerial(store), before.store, 'store got a new certificate');
    assert.deepEqual(failures, [], `${failures.length} of ${ok + failures.length} calls failed`);
    assert.ok(ok > 10, `${ok} calls during the renewal`);
  });

  it("refuses a server whose certificate is another workload's (outbound SPIFFE ID check)", async () => {
    // Stand-ins at store's address, outside xDS: only the certificate they present differs.
    const serverTls = (s: Sidecar): ServerCredentials =>
      ServerCredentials.createSsl(
        readFileSync(join(s.dir, CA_FILE)),
        [
          {
            cert_chain: readFileSync(join(s.dir, CERT_FILE)),
            private_key: readFileSync(join(s.dir, KEY_FILE)),
          },
        ],
        true,
      );
    const standIn = (s: Sidecar, name: string): Promise<EchoServer> =>
      startEchoServer({ name, address: `${A.v1}:${A.v1Port}`, credentials: serverTls(s) });
    await server.stop();
    let current = await standIn(store, 'store-certificate');
    try {
      await firstSuccess(buyerClient);
      assert.equal((await buyerClient.call('Get')).backend, 'store-certificate');
      await current.stop();
      current = await standIn(thief, 'thief-certificate');
      // thief holds a valid mesh certificate, but not store's SPIFFE ID: the handshake fails.
      // (Calls in flight when the previous stand-in stopped may end CANCELLED first.)
      const end = Date.now() + 15_000;
      let failure: CallError = {};
      while (Date.now() < end) {
        failure = await errorOf(buyerClient.call('Get', {}, 2000));
        if (failure.code === status.UNAVAILABLE) break;
        await sleep(100);
      }
      assert.equal(failure.code, status.UNAVAILABLE, failure.details);
      assert.match(failure.details ?? '', /subject alternative name/);
      for (let i = 0; i < 5; i++)
        assert.equal(await codeOf(buyerClient.call('Get', {}, 2000)), status.UNAVAILABLE);
      assert.equal(current.served.size, 0, 'the impostor never served a call');
      // Back to store's certificate at the same address: calls succeed again, so the identity was the cause.
      await current.stop();
      current = await standIn(store, 'store-certificate');
      await firstSuccess(buyerClient);
    } finally {
      await current.stop();
      server = await startEchoServer({
        name: 'v1',
        address: `${A.v1}:${A.v1Port}`,
        bootstrap: store.bootstrap,
        credentials: xdsServerCredentials(),
      });
    }
    await firstSuccess(direct(buyer));
  });

  it('applies a policy change to connections opened before it, even mid-handshake', async () => {
    // A connection the server accepts while thief is denied, whose handshake completes only
    // after a TrafficTarget allowing thief is live: it must not keep the old (deny) policy.
    assert.equal(await codeOf(direct(thief).call('Get')), status.PERMISSION_DENIED);
    const raw = netConnect(A.v1Port, A.v1);
    await once(raw, 'connect');
    const compiled = weft.nextCompile();
    cfg.write(
      'access.yaml',
      `${BUYER_MAY_GET}---\n${BUYER_MAY_GET.replace('buyer-to-store', 'thief-to-store').replace('name: buyer, namespace', 'name: thief, namespace')}`,
    );
    await compiled;
    const allowed = direct(thief);
    await firstSuccess(allowed);
    await sleep(300);
    const outcome = await rawGet(raw, thief);
    assert.notEqual(outcome, `grpc-status ${status.PERMISSION_DENIED}`, 'served by the replaced policy');
    // Back to buyer only.
    const restored = weft.nextCompile();
    cfg.write('access.yaml', BUYER_MAY_GET);
    await restored;
    const end = Date.now() + 15_000;
    while (
      Date.now() < end &&
      (await codeOf(direct(thief).call('Get', {}, 2000))) !== status.PERMISSION_DENIED
    )
      await sleep(100);
    assert.equal(await codeOf(direct(thief).call('Get')), status.PERMISSION_DENIED);
  });

  it('denies the allowed source within seconds of its TrafficTarget being deleted', async () => {
    const d = direct(buyer);
    assert.equal((await d.call('Get')).backend, 'v1');
    const compiled = weft.nextCompile();
    // Only the TrafficTarget goes; the HTTPRouteGroup stays, so nothing else changed.
    rmSync(join(cfg.path, 'access.yaml'));
    await compiled;
    const end = Date.now() + 15_000;
    let code = status.OK as number;
    while (Date.now() < end) {
      code = await codeOf(d.call('Get', {}, 2000));
      if (code === status.PERMISSION_DENIED) break;
      await sleep(100);
    }
    assert.equal(code, status.PERMISSION_DENIED, 'the destination denies buyer once the target is gone');
    // Its own proxy loses the route too.
    const endXds = Date.now() + 15_000;
    let xdsCode = status.OK as number;
    while (Date.now() < endXds) {
      xdsCode = await codeOf(buyerClient.call('Get', {}, 2000));
      if (xdsCode !== status.OK) break;
      await sleep(100);
    }
    assert.notEqual(xdsCode, status.OK);
  });
});
