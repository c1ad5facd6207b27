/**
 * EnvoyPatches against real proxyless gRPC peers (`@grpc/grpc-js-xds`) served by
 * `weft serve --config-dir`: a patch changes what real calls see, an invalid patch never reaches a
 * peer, and a patch a peer rejects is rolled back with a condition that says so.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningServe, startServe } from '../../src/serve';
import { EchoClient, type EchoServer, proxylessBootstrap, startEchoServer } from '../../src/workload/echo';
import {
  addresses,
  BUYER_MAY_CALL,
  ConfigDir,
  type FixtureAddresses,
  split,
  workloads,
} from '../mesh/mesh-fixture';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

async function until(what: string, check: () => Promise<boolean> | boolean, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`never happened within ${ms} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The gRPC status code of a call, 0 when it succeeds. */
async function codeOf(c: EchoClient): Promise<number> {
  try {
    await c.call('Get', {}, 2000);
    return 0;
  } catch (e) {
    return (e as { code?: number }).code ?? -1;
  }
}

function envoyPatch(name: string, spec: string): string {
  return `apiVersion: weft.dev/v1alpha1
kind: EnvoyPatch
metadata: { name: ${name}, namespace: shop }
spec:
${spec}`;
}

describe('EnvoyPatch with real proxyless gRPC peers', () => {
  const dir = new ConfigDir();
  let A: FixtureAddresses;
  let weft: RunningServe;
  let servers: EchoServer[] = [];
  let buyer: EchoClient;
  let boot: (id: string) => Record<string, unknown>;

  before(async () => {
    A = addresses(47, await freePort(), await freePort());
    dir.write('workloads.yaml', workloads(A));
    dir.write('access.yaml', BUYER_MAY_CALL);
    dir.write('split.yaml', split(100, 0));
    weft = await startServe({
      configDir: dir.path,
      xdsAddress: '127.0.0.1:0',
      mtls: false,
      insecureXds: true,
    });
    boot = (id: string) => proxylessBootstrap({ xdsServer: `127.0.0.1:${weft.port}`, nodeId: id });
    servers = await Promise.all([
      startEchoServer({ name: 'v1', address: `${A.v1}:${A.v1Port}`, bootstrap: boot('shop/store-v1') }),
      startEchoServer({ name: 'v2', address: `${A.v2}:${A.v2Port}`, bootstrap: boot('shop/store-v2') }),
    ]);
    buyer = new EchoClient(`xds:///store.shop:${A.port}`, boot('shop/buyer'));
    await until('the buyer reaches v1', async () => (await codeOf(buyer)) === 0);
  });
  after(async () => {
    buyer.close();
    for (const s of servers) await s.stop();
    await weft.stop();
    dir.remove();
  });

  it('a fault-injection patch on the caller makes its real calls fail with the injected status, and removing it heals them', async () => {
    dir.write(
      'patch.yaml',
      envoyPatch(
        'abort-calls',
        `  selector: { matchLabels: { app: buyer } }
  patches:
    - target: { type: Listener, service: { name: store, port: ${A.port} } }
      insertHttpFilter:
        before: envoy.filters.http.router
        filter:
          name: envoy.filters.http.fault
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault
            abort: { grpc_status: 9, percentage: { numerator: 100, denominator: HUNDRED } }
`,
      ),
    );
    // 9 is FAILED_PRECONDITION: nothing else in this mesh answers with it. grpc-js-xds 1.14 applies
    // a Listener's HTTP filters to channels created after it arrives (an open channel keeps the
    // filters it started with until its routes change), so each check dials a fresh channel.
    const fresh = async (): Promise<number> => {
      const c = new EchoClient(`xds:///store.shop:${A.port}`, boot('shop/buyer'));
      try {
        return await codeOf(c);
      } finally {
        c.close();
      }
    };
    await until('calls fail with the injected status', async () => (await fresh()) === 9);
    for (let i = 0; i < 5; i++) assert.equal(await fresh(), 9);
    dir.drop('patch.yaml');
    await until('calls succeed again', async () => (await fresh()) === 0);
  });

  it('an invalid patch is refused before any peer sees it, and traffic is unaffected', async () => {
    const compiled = weft.nextCompile();
    dir.write(
      'patch.yaml',
      envoyPatch(
        'typo',
        `  patches:
    - target: { type: Cluster, service: { name: store-v1, port: ${A.port} } }
      merge: { lb_polic: RANDOM }
`,
      ),
    );
    await compiled;
    const c = weft.compiler?.currentConditions.find(
      (x) => x.object === 'EnvoyPatch/shop/typo' && x.type === 'Applied',
    );
    assert.equal(c?.status, 'False');
    assert.match(c?.message ?? '', /unknown field "lb_polic"/);
    assert.deepEqual(weft.server.registry.nacks(), [], 'no peer was sent the patch');
    for (let i = 0; i < 10; i++) assert.equal(await codeOf(buyer), 0);
    dir.drop('patch.yaml');
  });

  it('a patch a peer rejects (NACK) is rolled back for its group and reported', async () => {
    dir.write(
      'patch.yaml',
      envoyPatch(
        'maglev',
        `  selector: { matchLabels: { app: buyer } }
  patches:
    - target: { type: Cluster, service: { name: store-v1, port: ${A.port} } }
      merge: { lb_policy: MAGLEV }
`,
      ),
    );
    await until('the patch is rolled back after the NACK', () =>
      (weft.compiler?.currentConditions ?? []).some(
        (x) => x.object === 'EnvoyPatch/shop/maglev' && x.type === 'Programmed' && x.reason === 'RolledBack',
      ),
    );
    const nacks = weft.server.registry.nacks();
    assert.ok(nacks.length > 0, 'the real client NACKed');
    const rolledBack = weft.compiler?.currentConditions.find(
      (x) => x.object === 'EnvoyPatch/shop/maglev' && x.type === 'Programmed',
    );
    assert.ok(
      nacks.some((n) => n.message !== '' && rolledBack?.message.includes(JSON.stringify(n.message))),
      `the condition carries the client's own error text: ${rolledBack?.message}`,
    );
    for (let i = 0; i < 10; i++) assert.equal(await codeOf(buyer), 0, 'traffic keeps flowing');
    dir.drop('patch.yaml');
  });
});
