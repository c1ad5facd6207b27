/**
 * The stats sink on `weft serve`'s mTLS xDS port, with a real gRPC client and a workload
 * certificate from the mesh CA: a stream whose node id names a pod of another identity than the
 * certificate proves is refused (a workload cannot report traffic in another's name), one that
 * names its own pod is counted and shows in the TrafficMetrics API of the admin server.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import { controlPlaneChannelCredentials, controlPlaneIdentity } from '../../src/identity/tls';
import { setLogLevel } from '../../src/log';
import type { TrafficMetrics } from '../../src/metrics/api';
import { encodeStreamMetrics, STREAM_METRICS_PATH } from '../../src/metrics/sink';
import { freePort } from '../../src/net';
import { type RunningServe, startServe } from '../../src/serve';
import { tempDir } from '../identity/util';
import { addresses, ConfigDir, workloads } from '../mesh/mesh-fixture';

setLogLevel('silent');

describe('stats sink on the mTLS xDS port', () => {
  const dir = new ConfigDir();
  const ca = tempDir('weft-sink-ca-');
  let serve: RunningServe;
  let client: Client;

  before(async () => {
    dir.write('workloads.yaml', workloads(addresses(45, await freePort(), await freePort())));
    serve = await startServe({
      configDir: dir.path,
      caDir: ca.dir,
      xdsAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
    });
    const authority = serve.identity.running.ca!;
    const issued = await authority.issueWithNewKey('shop/buyer');
    client = new Client(
      `127.0.0.1:${serve.port}`,
      controlPlaneChannelCredentials({
        bundlePem: authority.bundlePem(),
        serverIdentity: controlPlaneIdentity(authority.trustDomain),
        certPem: issued.chainPem,
        keyPem: issued.keyPem,
      }),
    );
  });

  after(async () => {
    client?.close();
    await serve?.stop();
    dir.remove();
    ca.cleanup();
  });

  /** One stream: sends `node`'s message, ends, resolves to the status it closed with. */
  const stream = (node: string): Promise<ServiceError | null> =>
    new Promise((resolve) => {
      const call = client.makeClientStreamRequest<Buffer, Buffer>(
        STREAM_METRICS_PATH,
        (b) => b,
        (b) => b,
        new Metadata(),
        (err) => resolve(err),
      );
      call.write(
        Buffer.from(
          encodeStreamMetrics({
            identifier: { node: { id: node } },
            envoy_metrics: [
              {
                name: 'cluster.outbound_14001_shop_store-v1.upstream_rq_2xx',
                type: 0,
                metric: [{ counter: { value: 5 } }],
              },
              {
                name: 'cluster.outbound_14001_shop_store-v1.upstream_rq_5xx',
                type: 0,
                metric: [{ counter: { value: 2 } }],
              },
            ],
          }),
        ),
      );
      call.end();
    });

  it("refuses a stream that claims another identity's pod", async () => {
    const err = await stream('shop/store-v1');
    assert.equal(err?.code, status.PERMISSION_DENIED, String(err));
    assert.match(err?.details ?? '', /certificate proves spiffe:\/\/cluster\.local\/ns\/shop\/sa\/buyer/);
    assert.equal(serve.trafficMetrics!.sink.stats.refused, 1);
    assert.equal(serve.trafficMetrics!.store.size, 0);
  });

  it('counts a stream from its own pod, and the API shows the edge', async () => {
    assert.equal(await stream('shop/buyer'), null);
    const res = await fetch(
      `${serve.adminUrl}/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/pods/buyer/edges`,
    );
    assert.equal(res.status, 200);
    const body = (await res.json()) as { items: TrafficMetrics[] };
    assert.equal(body.items.length, 1);
    const e = body.items[0]!;
    assert.deepEqual(e.edge, {
      direction: 'to',
      side: 'client',
      resource: { kind: 'Pod', namespace: 'shop', name: 'store-v1' },
    });
    assert.equal(e.metrics.find((m) => m.name === 'success_count')?.value, '5');
    assert.equal(e.metrics.find((m) => m.name === 'failure_count')?.value, '2');
  });
});
