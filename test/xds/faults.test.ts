import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, type ServiceError, status } from '@grpc/grpc-js';
import { captureLogs, setLogLevel } from '../../src/log';
import { CLUSTER } from '../../src/xds/resource-types';
import { cluster, startAds, type TestAds, waitUntil } from './util';

const ADS_PATH = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';

/** Opens a raw ADS stream and writes `bytes`; resolves with the status the server ends it with. */
function rawStream(target: string, writes: Uint8Array[]): Promise<ServiceError | null> {
  const client = new Client(target, credentials.createInsecure());
  const call = client.makeBidiStreamRequest(
    ADS_PATH,
    (b: Uint8Array) => Buffer.from(b),
    (b: Buffer) => b,
  );
  return new Promise((resolve) => {
    call.on('data', () => undefined);
    call.on('error', (e: ServiceError) => {
      client.close();
      resolve(e);
    });
    call.on('end', () => {
      client.close();
      resolve(null);
    });
    for (const w of writes) call.write(w);
  });
}

describe('xDS server under bad input and faults', () => {
  let ads: TestAds;
  let lines: string[] = [];
  let restore: () => void;
  before(async () => {
    ads = await startAds();
    ads.set('f', { [CLUSTER]: [cluster('a')] });
    restore = captureLogs((l) => lines.push(l));
    setLogLevel('warn');
  });
  after(async () => {
    setLogLevel('silent');
    restore();
    await ads.stop();
  });

  /** A healthy client that must keep working whatever the others do. */
  async function healthyClientStillServed(id: string): Promise<void> {
    const c = ads.client({ nodeId: id, cluster: 'f', mode: 'delta' });
    c.subscribe(CLUSTER, []);
    await c.waitFor(() => c.resources(CLUSTER).has('a'));
    c.close();
  }

  it('fails a stream that sends malformed bytes with one log line, and serves others', async () => {
    lines = [];
    const err = await rawStream(ads.target, [Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01])]);
    assert.ok(err);
    assert.notEqual(err.code, status.OK);
    assert.equal(lines.filter((l) => l.includes('malformed request')).length, 1);
    await healthyClientStillServed('after-malformed');
  });

  it('fails a stream whose first request has no node id, with one log line', async () => {
    lines = [];
    const c = ads.client({ nodeId: '' });
    const ended = new Promise<Error>((resolve) => c.once('error', resolve));
    c.subscribe(CLUSTER, []);
    const e = (await ended) as ServiceError;
    assert.equal(e.code, status.INVALID_ARGUMENT);
    assert.match(e.details, /node\.id/);
    assert.equal(lines.filter((l) => l.includes('carries no node id')).length, 1);
    await healthyClientStillServed('after-no-node');
  });

  it('ignores an unknown type URL with one log line and keeps the stream', async () => {
    lines = [];
    const c = ads.client({ nodeId: 'unknown-type', cluster: 'f' });
    c.send({ type_url: 'type.googleapis.com/not.a.Type', resource_names: [] });
    c.send({ type_url: 'type.googleapis.com/not.a.Type', resource_names: ['x'] });
    c.subscribe(CLUSTER, []);
    await c.waitFor(() => c.resources(CLUSTER).has('a'));
    assert.equal(lines.filter((l) => l.includes('unknown resource type')).length, 1);
  });

  it('keeps serving others when a client never ACKs', async () => {
    const silent = ads.client({ nodeId: 'never-acks', cluster: 'f', answer: false });
    silent.subscribe(CLUSTER, []);
    await silent.waitFor(() => silent.resources(CLUSTER).size > 0);
    ads.set('f', { [CLUSTER]: [cluster('a'), cluster('silent-change')] });
    await healthyClientStillServed('next-to-silent');
    const st = ads.server.registry.proxies().find((p) => p.node.id === 'never-acks');
    assert.equal(st?.types.cds?.awaiting, true, 'its push stays unacknowledged');
    assert.equal(st?.types.cds?.acks, 0);
    ads.set('f', { [CLUSTER]: [cluster('a')] });
  });

  it('survives clients that disconnect in the middle of pushes', async () => {
    const many = Array.from({ length: 50 }, (_, i) => ads.client({ nodeId: `drop-${i}`, cluster: 'f' }));
    for (const c of many) c.subscribe(CLUSTER, []);
    ads.set('f', { [CLUSTER]: [cluster('a'), cluster('b')] });
    for (const c of many) c.close();
    ads.set('f', { [CLUSTER]: [cluster('a')] });
    await waitUntil(() => ads.server.registry.proxies().every((p) => !p.node.id.startsWith('drop-')));
    await healthyClientStillServed('after-drops');
  });

  it('serves 1,000 clients connecting at once', async () => {
    const n = 1000;
    const clients = Array.from({ length: n }, (_, i) =>
      ads.client({ nodeId: `burst-${i}`, cluster: 'f', mode: i % 2 === 0 ? 'delta' : 'sotw' }),
    );
    for (const c of clients) c.subscribe(CLUSTER, []);
    await Promise.all(clients.map((c) => c.waitFor(() => c.resources(CLUSTER).has('a'), 30_000)));
    assert.equal(ads.server.registry.proxies().filter((p) => p.node.id.startsWith('burst-')).length, n);
    for (const c of clients) c.close();
    await waitUntil(
      () => ads.server.registry.proxies().every((p) => !p.node.id.startsWith('burst-')),
      10_000,
    );
  });
});
