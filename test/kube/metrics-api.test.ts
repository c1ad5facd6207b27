/**
 * The TrafficMetrics API through a real kube-apiserver's aggregation layer: `weft serve
 * --kubernetes --metrics-api-address` against it, the APIServices name a Service that leads to
 * Weft's aggregated server, Weft writes its CA into their caBundle, and
 * `kubectl get --raw /apis/metrics.smi-spec.io/...` reaches it with the user's own identity, which
 * Weft takes from the front proxy's request headers and checks with SubjectAccessReview.
 *
 * The Service is of type ExternalName `localhost`: the aggregator dials that name on the
 * APIService's port, so no pod network or kube-proxy is needed, while the certificate is checked
 * for `weft.weft-system.svc` as in a cluster. Weft's store is filled directly; the Envoy tier's
 * metrics test covers the path from real sidecars into it.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CertificateAuthority } from '../../src/identity/ca';
import { setLogLevel } from '../../src/log';
import type { TrafficMetrics } from '../../src/metrics/api';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import { type KubeEnv, metricsApiServices, startKubeEnv } from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');
const ROOT = join(__dirname, '..', '..', '..');

function weft(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'weft.js'), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

const POD = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name: 'api-0', namespace: 'shop', labels: { app: 'api' } },
  spec: { containers: [{ name: 'app', image: 'x' }] },
  status: { phase: 'Running', podIP: '10.1.0.1' },
};

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
  let running: RunningKubeServe;
  let ca: CertificateAuthority;
  let port: number;
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await env.kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    env = await startKubeEnv({ aggregation: true });
    port = await freePort();
    await kubectl(['create', 'namespace', 'weft-system']);
    await kubectl(['create', 'namespace', 'shop']);
    await kubectl(['label', 'namespace', 'shop', 'weft.dev/mesh=enabled']);
    await kubectl(['apply', '-f', '-'], JSON.stringify(POD));
    const status = JSON.stringify({ status: POD.status });
    await kubectl([
      'patch',
      'pod',
      'api-0',
      '-n',
      'shop',
      '--subresource=status',
      '--type=merge',
      '-p',
      status,
    ]);
    // The APIServices first, without caBundle, as the chart installs them: Weft fills it in.
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: v1
kind: Service
metadata: { name: weft, namespace: weft-system }
spec: { type: ExternalName, externalName: localhost, ports: [{ name: metrics-api, port: ${port} }] }
---
${metricsApiServices(port)}---
${RBAC}`,
    );
    running = await startKubeServe({
      kubeconfig: env.kubeconfigPath,
      xdsAddress: '127.0.0.1:0',
      metricsApiAddress: `127.0.0.1:${port}`,
      quietMs: 50,
      maxDelayMs: 300,
    });
    assert.ok(running.metricsApi, 'the aggregated API runs');
    ca = running.identity.running.ca!;
    for (
      const end = Date.now() + 20_000;
      !running.compiler.currentModel.workloads.some((w) => w.name === 'api-0');
    ) {
      if (Date.now() > end) throw new Error('Weft never saw pod shop/api-0');
      await new Promise((r) => setTimeout(r, 100));
    }
    running.trafficMetrics.store.add({ kind: 'in', pod: 'shop/api-0', service: '' }, Date.now(), {
      success: 41,
      failure: 1,
    });
    const bundle = Buffer.from(ca.bundlePem()).toString('base64');
    for (const v of ['v1alpha1', 'v1alpha2'])
      assert.equal(
        JSON.parse(await kubectl(['get', 'apiservice', `${v}.metrics.smi-spec.io`, '-o', 'json'])).spec
          .caBundle,
        bundle,
        `Weft wrote its CA into APIService ${v}.metrics.smi-spec.io`,
      );
    await kubectl([
      'wait',
      '--for=condition=Available',
      'apiservice/v1alpha1.metrics.smi-spec.io',
      'apiservice/v1alpha2.metrics.smi-spec.io',
      '--timeout=60s',
    ]);
  });

  after(async () => {
    await running?.stop();
    await env?.stop();
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

  it('weft top --kubeconfig reads it through the API server with the kubeconfig credentials', async () => {
    const r = await weft([
      'top',
      'pods',
      '--kubeconfig',
      env.kubeconfigPath,
      '--in',
      'shop',
      '-w',
      '1m',
      '-o',
      'json',
    ]);
    assert.equal(r.code, 0, r.err);
    const rows = JSON.parse(r.out) as { name: string; success: number; failure: number }[];
    assert.deepEqual(
      rows.map((x) => [x.name, x.success, x.failure]),
      [['api-0', 41, 1]],
    );
  });

  it('refuses a caller that skips the aggregator without credentials', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        `https://127.0.0.1:${port}/apis/metrics.smi-spec.io/v1alpha1/pods`,
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

  it("gives the API server's OpenAPI aggregation a document of its own (a caller with a token)", async () => {
    await kubectl(['create', 'serviceaccount', 'reader', '-n', 'shop']);
    const token = (await kubectl(['create', 'token', 'reader', '-n', 'shop'])).trim();
    const body = await new Promise<string>((resolve, reject) => {
      const req = request(
        `https://127.0.0.1:${port}/openapi/v2`,
        {
          ca: ca.bundlePem(),
          servername: 'weft.weft-system.svc',
          headers: { authorization: `Bearer ${token}` },
        },
        (r) => {
          let text = '';
          r.on('data', (c: Buffer) => {
            text += c.toString();
          });
          r.on('end', () =>
            r.statusCode === 200 ? resolve(text) : reject(new Error(`${r.statusCode} ${text}`)),
          );
        },
      );
      req.on('error', reject);
      req.end();
    });
    const doc = JSON.parse(body) as { swagger: string; info: { title: string } };
    assert.deepEqual([doc.swagger, doc.info.title], ['2.0', 'metrics.smi-spec.io']);
  });
});
