import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyJsonPatch, PatchError } from '../../src/patch/json-patch';
import { MergeError, protoMerge } from '../../src/patch/merge';

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

describe('RFC 6902 JSON Patch', () => {
  const doc = { a: { b: [1, 2, 3] }, 'x/y': { '~t': 1 } };
  it('applies add, remove, replace, move, copy and test without mutating the input', () => {
    const frozen = structuredClone(doc);
    const out = applyJsonPatch(doc, [
      { op: 'add', path: '/a/b/1', value: 9 },
      { op: 'add', path: '/a/b/-', value: 4 },
      { op: 'remove', path: '/a/b/0' },
      { op: 'replace', path: '/x~1y/~0t', value: 2 },
      { op: 'copy', from: '/a/b', path: '/c' },
      { op: 'move', from: '/c', path: '/d' },
      { op: 'test', path: '/d/0', value: 9 },
    ]);
    assert.deepEqual(out, { a: { b: [9, 2, 3, 4] }, 'x/y': { '~t': 2 }, d: [9, 2, 3, 4] });
    assert.deepEqual(doc, frozen);
  });
  it('names the failing operation, its path and why', () => {
    assert.throws(
      () =>
        applyJsonPatch(doc, [
          { op: 'add', path: '/a/b/0', value: 0 },
          { op: 'remove', path: '/a/nope' },
        ]),
      (e: unknown) =>
        e instanceof PatchError &&
        e.index === 1 &&
        /operation 1 \(remove \/a\/nope\): no value/.test(e.message),
    );
    assert.throws(() => applyJsonPatch(doc, [{ op: 'test', path: '/a/b/0', value: 5 }]), /test failed/);
    assert.throws(() => applyJsonPatch(doc, [{ op: 'add', path: '/a/b/7', value: 5 }]), /out of bounds/);
  });
});

describe('proto-aware merge', () => {
  const listener = {
    name: 'l',
    filter_chains: [
      {
        name: 'fc',
        filters: [
          {
            name: 'hcm',
            typed_config: {
              '@type': HCM,
              stat_prefix: 's',
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
            },
          },
        ],
      },
    ],
  };
  it('merges inside typed_config and merges repeated entries by name', () => {
    const out = protoMerge('envoy.config.listener.v3.Listener', listener, {
      filter_chains: [
        { name: 'fc', filters: [{ name: 'hcm', typed_config: { '@type': HCM, stream_idle_timeout: '5s' } }] },
      ],
    });
    assert.deepEqual(out, {
      name: 'l',
      filter_chains: [
        {
          name: 'fc',
          filters: [
            {
              name: 'hcm',
              typed_config: {
                '@type': HCM,
                stat_prefix: 's',
                http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
                stream_idle_timeout: '5s',
              },
            },
          ],
        },
      ],
    });
  });
  it('appends a repeated entry with a new name', () => {
    const out = protoMerge(
      'envoy.config.route.v3.RouteConfiguration',
      { name: 'r', virtual_hosts: [{ name: 'a', domains: ['a'] }] },
      {
        virtual_hosts: [{ name: 'b', domains: ['b'] }],
      },
    ) as { virtual_hosts: { name: string }[] };
    assert.deepEqual(
      out.virtual_hosts.map((v) => v.name),
      ['a', 'b'],
    );
  });
  it('setting a oneof member removes its siblings', () => {
    const out = protoMerge(
      'envoy.config.route.v3.RouteAction',
      { cluster: 'a', timeout: '1s' },
      {
        weighted_clusters: { clusters: [{ name: 'a', weight: 1 }] },
      },
    );
    assert.deepEqual(out, { timeout: '1s', weighted_clusters: { clusters: [{ name: 'a', weight: 1 }] } });
  });
  it('replaces the payload of a different @type and rejects unknown fields with their path', () => {
    const out = protoMerge(
      'envoy.config.listener.v3.Filter',
      { name: 'f', typed_config: { '@type': HCM, stat_prefix: 's' } },
      {
        typed_config: { '@type': ROUTER },
      },
    );
    assert.deepEqual(out, { name: 'f', typed_config: { '@type': ROUTER } });
    assert.throws(
      () =>
        protoMerge('envoy.config.listener.v3.Listener', listener, {
          filter_chains: [{ name: 'fc', filtres: [] }],
        }),
      (e: unknown) => e instanceof MergeError && e.path === 'filter_chains[0].filtres',
    );
  });
});
