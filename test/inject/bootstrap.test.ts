/**
 * The Envoy bootstrap and its SDS files decode strictly with Envoy's own protos and pass the
 * protoc-gen-validate rules Envoy enforces at start-up; the bootstrap is kept as a golden file.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkJson } from '../../src/envoy/codec';
import { validate } from '../../src/envoy/validate';
import { BOOTSTRAP_TYPE, envoyBootstrap, SDS_FILE_TYPE, SIDECAR, sdsFiles } from '../../src/inject/bootstrap';
import { resolveProxy } from '../../src/mesh/proxies';
import type { MeshModel } from '../../src/smi/model';
import type { NodeInfo } from '../../src/xds/proxy-state';
import { golden } from './golden';

function check(type: string, json: unknown): void {
  assert.deepEqual(checkJson(type, json), [], `${type} decodes strictly`);
  assert.deepEqual(validate(type, json), [], `${type} passes protoc-gen-validate`);
}

describe('Envoy bootstrap', () => {
  const bootstrap = envoyBootstrap({
    trustDomain: 'example.org',
    probes: [
      { path: '/app-health/web/livez', port: 8080, appPath: '/healthz' },
      { path: '/app-health/web/readyz', port: 8443, appPath: '/ready?full=1', scheme: 'HTTPS' },
    ],
  });

  it('decodes strictly and passes the validator, and matches its golden file', () => {
    check(BOOTSTRAP_TYPE, bootstrap);
    golden('bootstrap.json', `${JSON.stringify(bootstrap, null, 2)}\n`);
  });

  it('points file-based SDS at files that decode and validate', () => {
    const files = sdsFiles();
    assert.equal(Object.keys(files).length, 2);
    for (const json of Object.values(files)) check(SDS_FILE_TYPE, json);
    golden('sds.json', `${JSON.stringify(files, null, 2)}\n`);
  });

  it("checks Weft's SPIFFE ID and keeps admin on loopback", () => {
    const text = JSON.stringify(bootstrap);
    assert.match(text, /"exact":"spiffe:\/\/example\.org\/ns\/weft-system\/sa\/weft"/);
    const admin = (bootstrap.admin as { address: { socket_address: { address: string } } }).address;
    assert.equal(admin.socket_address.address, '127.0.0.1');
    assert.ok(text.includes(`"port_value":${SIDECAR.statsPort}`));
  });

  it('names its node the way the mesh resolves Envoy proxies', () => {
    const b = envoyBootstrap({ nodeId: 'shop/web-7d9f' });
    check(BOOTSTRAP_TYPE, b);
    const node = b.node as { id: string; metadata: Record<string, string> };
    const model = {
      workloads: [
        {
          kind: 'Pod',
          namespace: 'shop',
          name: 'web-7d9f',
          identity: 'spiffe://cluster.local/ns/shop/sa/web',
        },
      ],
    } as unknown as MeshModel;
    const info: NodeInfo = { id: node.id, metadata: node.metadata, userAgent: 'envoy', cluster: '' };
    const r = resolveProxy(model, info);
    assert.ok('workload' in r, JSON.stringify(r));
    assert.equal(r.flavor, 'envoy');
  });

  it('refuses an xDS address without a port, naming the fix', () => {
    assert.throws(() => envoyBootstrap({ xdsAddress: 'weft.weft-system.svc' }), /is not host:port/);
  });
});
