import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ReceivedResponse } from '../../src/xds/client';
import type { NackRecord, ProxyAck } from '../../src/xds/proxy-state';
import { CLUSTER, ENDPOINT, LISTENER } from '../../src/xds/resource-types';
import { cluster, endpoints, listener, startAds, type TestAds, waitUntil } from './util';

describe('state-of-the-world ADS over real gRPC', () => {
  let ads: TestAds;
  before(async () => {
    ads = await startAds();
  });
  after(async () => {
    await ads.stop();
  });

  it('serves a wildcard CDS subscription and records the ACK', async () => {
    ads.set('g1', { [CLUSTER]: [cluster('a'), cluster('b')], [ENDPOINT]: [endpoints('a', [1])] });
    const acks: ProxyAck[] = [];
    ads.server.registry.on('ack', (a: ProxyAck) => acks.push(a));
    const c = ads.client({ nodeId: 'p1', cluster: 'g1' });
    c.subscribe(CLUSTER, []);
    await c.waitFor(() => c.resources(CLUSTER).size === 2, 5000, 'clusters');
    assert.deepEqual([...c.resources(CLUSTER).keys()].sort(), ['a', 'b']);
    await waitUntil(() => acks.some((a) => a.proxy === 'p1' && a.typeUrl === CLUSTER));
    const status = ads.server.registry.proxies().find((p) => p.node.id === 'p1');
    assert.ok(status);
    assert.equal(status.group, 'g1');
    assert.equal(status.types.cds?.subscribed, '*');
    assert.equal(status.types.cds?.ackedVersion, c.version(CLUSTER));
  });

  it('treats an empty CDS list after named ones as "none", not as a wildcard', async () => {
    ads.set('g8', { [CLUSTER]: [cluster('a'), cluster('b'), cluster('c')] });
    const c = ads.client({ nodeId: 'p8', cluster: 'g8' });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(CLUSTER, ['a']);
    await c.waitFor(() => seen.length === 1, 5000, 'cds a');
    // Dropping the last name: the answer is empty, not every cluster of the group.
    c.unsubscribe(CLUSTER, ['a']);
    await c.waitFor(() => seen.length === 2, 5000, 'cds none');
    assert.deepEqual(seen[1]?.resources, []);
    c.subscribe(CLUSTER, ['b']);
    await c.waitFor(() => seen.length === 3, 5000, 'cds b');
    assert.deepEqual(
      seen[2]?.resources.map((r) => r.name),
      ['b'],
    );
    const status = ads.server.registry.proxies().find((p) => p.node.id === 'p8');
    assert.deepEqual(status?.types.cds?.subscribed, ['b']);
  });

  it('answers named subscriptions with only those names, and a name once it appears', async () => {
    ads.set('g2', { [CLUSTER]: [cluster('a')], [ENDPOINT]: [endpoints('a', [1]), endpoints('b', [2])] });
    const c = ads.client({ nodeId: 'p2', cluster: 'g2' });
    c.subscribe(ENDPOINT, ['a', 'zz']);
    await c.waitFor(() => c.resources(ENDPOINT).has('a'), 5000, 'eds a');
    assert.deepEqual([...c.resources(ENDPOINT).keys()], ['a']);
    ads.set('g2', {
      [CLUSTER]: [cluster('a')],
      [ENDPOINT]: [endpoints('a', [1]), endpoints('b', [2]), endpoints('zz', [3])],
    });
    await c.waitFor(() => c.resources(ENDPOINT).has('zz'), 5000, 'eds zz');
    assert.deepEqual([...c.resources(ENDPOINT).keys()].sort(), ['a', 'zz']);
  });

  it('sends nothing for an identical snapshot, and follows a cluster change with endpoints', async () => {
    const input = { [CLUSTER]: [cluster('a')], [ENDPOINT]: [endpoints('a', [1])] };
    ads.set('g3', input);
    const c = ads.client({ nodeId: 'p3', cluster: 'g3' });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(CLUSTER, []);
    c.subscribe(ENDPOINT, ['a']);
    await c.waitFor(() => c.resources(ENDPOINT).has('a') && c.resources(CLUSTER).has('a'));
    const before = seen.length;
    // A structurally equal snapshot built from fresh objects: no notification, nothing sent.
    assert.equal(ads.set('g3', { [CLUSTER]: [cluster('a')], [ENDPOINT]: [endpoints('a', [1])] }), false);
    // Now change only the cluster: CDS is sent, then EDS again (warming) though it is unchanged.
    ads.set('g3', { [CLUSTER]: [cluster('a', { alt_stat_name: 'x' })], [ENDPOINT]: [endpoints('a', [1])] });
    await c.waitFor(() => seen.slice(before).some((r) => r.typeUrl === ENDPOINT), 5000, 'eds after cds');
    const after = seen.slice(before).map((r) => r.typeUrl);
    assert.deepEqual(after, [CLUSTER, ENDPOINT], 'exactly one CDS push then one EDS push');
  });

  it('records a NACK, keeps the last good config and does not resend the rejected version', async () => {
    ads.set('g4', { [CLUSTER]: [cluster('good')] });
    const nacks: NackRecord[] = [];
    ads.server.registry.on('nack', (n: NackRecord) => nacks.push(n));
    const seen: ReceivedResponse[] = [];
    const c = ads.client({
      nodeId: 'p4',
      cluster: 'g4',
      check: (r) => (r.resources.some((x) => x.name === 'bad') ? 'cluster bad: invalid field' : undefined),
    });
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(CLUSTER, []);
    await c.waitFor(() => c.resources(CLUSTER).has('good'));
    const goodVersion = c.version(CLUSTER);
    ads.set('g4', { [CLUSTER]: [cluster('good'), cluster('bad')] });
    await waitUntil(() => nacks.some((n) => n.proxy === 'p4'));
    const record = nacks.find((n) => n.proxy === 'p4');
    assert.ok(record);
    assert.equal(record.message, 'cluster bad: invalid field');
    assert.equal(record.typeUrl, CLUSTER);
    assert.deepEqual([...record.resourceNames].sort(), ['bad', 'good']);
    assert.equal(c.version(CLUSTER), goodVersion, 'client keeps its last good version');
    const status = ads.server.registry.proxies().find((p) => p.node.id === 'p4');
    assert.equal(status?.types.cds?.lastNack?.message, 'cluster bad: invalid field');
    assert.equal(ads.server.registry.nacks('p4').length, 1);
    // The NACK request re-announced the subscription; the server must not answer it with the
    // same rejected version. A later, different snapshot is sent and accepted.
    const countAfterNack = seen.length;
    ads.set('g4', { [CLUSTER]: [cluster('good'), cluster('fixed')] });
    await c.waitFor(() => c.resources(CLUSTER).has('fixed'));
    assert.equal(seen.length, countAfterNack + 1, 'exactly one response: the fixed version');
    assert.equal(ads.server.registry.nacks('p4').length, 1);
  });

  it('ignores requests with a stale nonce', async () => {
    ads.set('g5', { [ENDPOINT]: [endpoints('a', [1]), endpoints('b', [2])] });
    const c = ads.client({ nodeId: 'p5', cluster: 'g5' });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(ENDPOINT, ['a']);
    await c.waitFor(() => c.resources(ENDPOINT).has('a'));
    // A request that widens the subscription but answers a nonce the server never sent.
    c.send({ type_url: ENDPOINT, resource_names: ['a', 'b'], response_nonce: 'not-a-nonce' });
    // A valid widening afterwards is answered; only it (not the stale one) produced a response.
    c.subscribe(ENDPOINT, ['b']);
    await c.waitFor(() => c.resources(ENDPOINT).has('b'));
    assert.equal(seen.length, 2);
  });

  it('keeps a removed cluster until the listener update is acknowledged (make before break)', async () => {
    ads.set('g6', { [CLUSTER]: [cluster('old')], [LISTENER]: [listener('l1')] });
    const c = ads.client({ nodeId: 'p6', cluster: 'g6' });
    const seen: ReceivedResponse[] = [];
    c.on('response', (r: ReceivedResponse) => seen.push(r));
    c.subscribe(CLUSTER, []);
    c.subscribe(LISTENER, []);
    await c.waitFor(() => c.resources(LISTENER).has('l1') && c.resources(CLUSTER).has('old'));
    const from = seen.length;
    ads.set('g6', { [CLUSTER]: [cluster('new')], [LISTENER]: [listener('l1', 15002)] });
    await c.waitFor(
      () => c.resources(CLUSTER).has('new') && !c.resources(CLUSTER).has('old'),
      5000,
      'final cds',
    );
    const cds = seen.slice(from).filter((r) => r.typeUrl === CLUSTER);
    assert.equal(cds.length, 2, 'an interim and a final CDS response');
    assert.deepEqual(cds[0]?.resources.map((r) => r.name).sort(), ['new', 'old']);
    assert.deepEqual(
      cds[1]?.resources.map((r) => r.name),
      ['new'],
    );
    const order = seen.slice(from).map((r) => r.typeUrl);
    assert.ok(order.indexOf(LISTENER) < order.lastIndexOf(CLUSTER), 'old cluster removed after the listener');
  });

  it('reports what each proxy has over CSDS', async () => {
    const { csdsFetch } = await import('./csds-client');
    const res = await csdsFetch(ads.target, 'p1');
    assert.equal(res.length, 1);
    assert.equal(res[0]?.node, 'p1');
    const names = res[0]?.configs.filter((x) => x.typeUrl === CLUSTER).map((x) => x.name);
    assert.deepEqual(names, ['a', 'b']);
    assert.ok(res[0]?.configs.every((x) => x.clientStatus === 'ACKED'));
  });

  it('lists over CSDS what a proxy asked for and was never sent, as REQUESTED', async () => {
    const { csdsFetch } = await import('./csds-client');
    ads.set('g7', { [ENDPOINT]: [endpoints('a', [1])] });
    const c = ads.client({ nodeId: 'p7', cluster: 'g7' });
    c.subscribe(ENDPOINT, ['a', 'missing']);
    await c.waitFor(() => c.resources(ENDPOINT).has('a'));
    const configs = (await csdsFetch(ads.target, 'p7'))[0]?.configs ?? [];
    assert.deepEqual(
      configs.map((x) => [x.name, x.clientStatus]),
      [
        ['a', 'ACKED'],
        ['missing', 'REQUESTED'],
      ],
    );
    // Once the snapshot has it, it is sent and no longer listed as only requested.
    ads.set('g7', { [ENDPOINT]: [endpoints('a', [1]), endpoints('missing', [2])] });
    await c.waitFor(() => c.resources(ENDPOINT).has('missing'));
    const after = (await csdsFetch(ads.target, 'p7'))[0]?.configs ?? [];
    assert.equal(after.filter((x) => x.name === 'missing').length, 1);
  });
});
