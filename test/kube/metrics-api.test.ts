/**
 * The TrafficMetrics API through a real kube-apiserver's aggregation layer: the APIServices name a
 * Service that leads to Weft's aggregated server, Weft writes its CA into their caBundle, and
 * `kubectl get --raw /apis/metrics.smi-spec.io/...` reaches it with the user's own identity, which
 * Weft takes from the front proxy's request headers and checks with SubjectAccessReview.
 *
 * The Service is of type ExternalName `localhost`: the aggregator dials that name on the
 * APIService's port, so no pod network or kube-proxy is needed, while the certificate is checked
 * for `weft.weft-system.svc` as in a cluster. The store is filled directly; the Envoy tier's
 * metrics test covers the path from real sidecars into it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CertificateAuthority } from '../../src/identity/ca';
import { FileCaStore } from '../../src/identity/store';
import { KubeClient, loadKubeConfig } from '../../src/kube/client';
import { setLogLevel } from '../../src/log';
import { AggregatedApi } from '../../src/metrics/aggregated';
import type { TrafficMetrics } from '../../src/metrics/api';
import { MetricsStore } from '../../src/metrics/store';
import { buildModel } from '../../src/smi';
import { type KubeEnv, startKubeEnv } from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'api-0', namespace: 'shop', labels: { app: 'api' } },
  spec: { containers: [{ name: 'app', image: 'x' }] },
  status: { phase: 'Running', podIP: '10.1.0.1' },
};

function apiServices(port: number): string {
  return ['v1alpha1', 'v1alpha2']
    .map(
      (v) => `apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: { name: ${v}.metrics.smi-spec.io }
spec:
  group: metrics.smi-spec.io
  version: ${v}
  groupPriorityMinimum: 100
  versionPriority: ${v === 'v1alpha2' ? 20 : 10}
  service: { name: weft, namespace: weft-system, port: ${port} }
`,
    )
    .join('---\n');
}

const RBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: traffic-metrics-reader, namespace: shop }
rules: [{ apiGroups: [metrics.smi-spec.io], resources: [pods, pods/edges], verbs: [get, list] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: alice-reads-traffic-metrics, namespace: shop }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: traffic-metrics-reader }
subjects: [{ apiGroup: rbac.authorization.k8s.io, kind: User, name: alice }]
`;

describe('TrafficMetrics through the aggregation layer', () => {
  let env: KubeEnv;
  let api: AggregatedApi;
  let ca: CertificateAuthority;
  const caDir = mkdtempSync(join(tmpdir(), 'weft-metrics-ca-'));
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await env.kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    env = await startKubeEnv({ aggregation: true });
    ca = await CertificateAuthority.open(new FileCaStore(caDir));
    const store = new MetricsStore();
    store.add({ kind: 'in', pod: 'shop/api-0', service: '' }, Date.now(), { success: 41, failure: 1 });
    const model = buildModel([POD]).model;
    const client = new KubeClient(loadKubeConfig(env.kubeconfigPath));
    // The APIServices first (without caBundle), as the chart installs them: Weft fills it in.
    await kubectl(['create', 'namespace', 'weft-system']);
    await kubectl(['create', 'namespace', 'shop']);
    api = await AggregatedApi.start({ address: '127.0.0.1:0', ca, client, store, model: () => model });
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Service
metadata: { name: weft, namespace: weft-system }
spec: { type: ExternalName, externalName: localhost, ports: [{ name: metrics, port: ${api.port} }] }
---
${apiServices(api.port)}---
${RBAC}`,
    );
    assert.equal(await api.patchBundles(), true, 'caBundle written into both APIServices');
    await kubectl([
      'wait',
      '--for=condition=Available',
      'apiservice/v1alpha1.metrics.smi-spec.io',
      'apiservice/v1alpha2.metrics.smi-spec.io',
      '--timeout=60s',
    ]);
  });

  after(async () => {
    await api?.stop();
    ca?.close();
    await env?.stop();
    rmSync(caDir, { recursive: true, force: true });
  });

  it('answers kubectl get --raw through the aggregator, with the user the front proxy names', async () => {
    const group = JSON.parse(await kubectl(['get', '--raw', '/apis/metrics.smi-spec.io'])) as {
      name: string;
    };
    assert.equal(group.name, 'metrics.smi-spec.io');
    const pod = JSON.parse(
      await kubectl([
        'get',
        '--raw',
        '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/pods/api-0?window=1m',
      ]),
    ) as TrafficMetrics;
    assert.deepEqual(pod.resource, { kind: 'Pod', namespace: 'shop', name: 'api-0' });
    assert.equal(pod.metrics.find((m) => m.name === 'success_count')?.value, '41');
    assert.equal(pod.metrics.find((m) => m.name === 'failure_count')?.value, '1');
    // The aggregator lists the resources for discovery (kubectl api-resources).
    const resources = await kubectl(['api-resources', '--api-group=metrics.smi-spec.io', '-o', 'name']);
    assert.match(resources, /^pods\.metrics\.smi-spec\.io$/m);
  });

  it("authorizes each read with the caller's own RBAC (SubjectAccessReview)", async () => {
    const path = '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/pods/api-0';
    const alice = await env.kubectl(['get', '--raw', path, '--as=alice']);
    assert.equal(alice.code, 0, alice.stderr);
    const edges = await env.kubectl(['get', '--raw', `${path}/edges`, '--as=alice']);
    assert.equal(edges.code, 0, edges.stderr);
    // Not granted: services, and other namespaces.
    const bob = await env.kubectl(['get', '--raw', path, '--as=bob']);
    assert.notEqual(bob.code, 0);
    assert.match(bob.stderr, /Forbidden|forbidden/);
    const svc = await env.kubectl([
      'get',
      '--raw',
      '/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/services',
      '--as=alice',
    ]);
    assert.notEqual(svc.code, 0);
    assert.match(svc.stderr, /Forbidden|forbidden/);
  });

  it('refuses a caller that skips the aggregator without credentials', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `https://127.0.0.1:${api.port}/apis/metrics.smi-spec.io/v1alpha1/pods`,
        { ca: ca.bundlePem(), servername: 'weft.weft-system.svc' },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 401);
  });
});
