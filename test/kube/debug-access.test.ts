/**
 * Debug views in Kubernetes mode, on a real kube-apiserver: `/debug/*` answers only a bearer token
 * the API server accepts, with what that caller's RBAC lets it list, while health, readiness and
 * metrics stay open. Also: `weft status --kubeconfig` against a dead API server names it at once.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { allCrdsYaml } from '../../src/crds/render';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import { AdsClient } from '../../src/xds/client';
import { LISTENER } from '../../src/xds/resource-types';
import { addresses, markFixturePodsReady, workloads } from '../mesh/mesh-fixture';
import { type KubeEnv, kubectlOk, startKubeEnv, WAIT_FOR_WEFT_CRDS } from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');
const ROOT = join(__dirname, '..', '..', '..');

const VIEWER = `apiVersion: v1
kind: ServiceAccount
metadata: { name: viewer, namespace: shop }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: nobody, namespace: shop }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: pod-reader, namespace: shop }
rules: [{ apiGroups: [""], resources: [pods], verbs: [get, list] }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: viewer-reads-pods, namespace: shop }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader }
subjects: [{ kind: ServiceAccount, name: viewer, namespace: shop }]
`;

describe('debug views in Kubernetes mode', () => {
  let env: KubeEnv;
  let weft: RunningKubeServe;
  const clients: AdsClient[] = [];
  const kubectl = async (args: string[], input?: string): Promise<string> =>
    (await kubectlOk(env, args, input)).stdout;
  const token = async (sa: string): Promise<string> =>
    (await kubectl(['create', 'token', sa, '-n', 'shop'])).trim();
  const get = (path: string, bearer?: string): Promise<Response> =>
    fetch(`${weft.adminUrl}${path}`, bearer ? { headers: { authorization: `Bearer ${bearer}` } } : {});

  before(async () => {
    env = await startKubeEnv();
    const A = addresses(44, await freePort(), await freePort());
    await kubectl(['apply', '-f', '-'], allCrdsYaml());
    await kubectl([...WAIT_FOR_WEFT_CRDS]);
    await kubectl(['create', 'namespace', 'weft-system']);
    await kubectl(['create', 'namespace', 'other']);
    await kubectl(['label', 'namespace', 'other', 'weft.dev/mesh=enabled']);
    await kubectl(['apply', '-f', '-'], workloads(A));
    await markFixturePodsReady(kubectl, A);
    await kubectl(['apply', '-f', '-'], VIEWER);
    weft = await startKubeServe({
      kubeconfig: env.kubeconfigPath,
      xdsAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
      mtls: false,
      insecureXds: true,
      quietMs: 50,
      maxDelayMs: 300,
    });
    for (const id of ['shop/buyer', 'other/someone']) {
      const c = new AdsClient({
        target: `127.0.0.1:${weft.port}`,
        nodeId: id,
        mode: 'sotw',
        ownConnection: true,
      });
      c.on('error', () => undefined);
      c.subscribe(LISTENER, []);
      clients.push(c);
    }
    const end = Date.now() + 10_000;
    while (weft.server.registry.proxies().length < 2 && Date.now() < end)
      await new Promise((r) => setTimeout(r, 50));
  });

  after(async () => {
    for (const c of clients) c.close();
    await weft?.stop();
    await env?.stop();
  });

  it('keeps health, readiness, metrics and the index open', async () => {
    for (const p of ['/healthz', '/readyz', '/metrics', '/version', '/'])
      assert.equal((await get(p)).status, 200, p);
  });

  it('refuses debug views without a token (401) and to a caller that may read no mesh namespace (403)', async () => {
    const none = await get('/debug/proxies');
    assert.equal(none.status, 401);
    assert.match(((await none.json()) as { error: string }).error, /bearer token/);
    assert.equal((await get('/debug/proxies', 'not-a-token')).status, 401);
    const nobody = await get('/debug/conditions', await token('nobody'));
    assert.equal(nobody.status, 403);
    assert.match(((await nobody.json()) as { error: string }).error, /system:serviceaccount:shop:nobody/);
  });

  it('shows a caller only the namespaces its RBAC lets it list pods in', async () => {
    const t = await token('viewer');
    const res = await get('/debug/proxies', t);
    assert.equal(res.status, 200);
    const ids = ((await res.json()) as { node: { id: string } }[]).map((p) => p.node.id);
    assert.deepEqual(ids, ['shop/buyer']);
    const config = (await (await get('/debug/config', t)).json()) as { node: string }[];
    assert.deepEqual(
      config.map((c) => c.node),
      ['shop/buyer'],
    );
  });
});

describe('weft status --kubeconfig against a dead API server', () => {
  it('names the server and says nothing listens, within seconds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-deadkube-'));
    const port = await freePort();
    const file = join(dir, 'kubeconfig');
    writeFileSync(
      file,
      `apiVersion: v1
kind: Config
clusters: [{ name: c, cluster: { server: "https://127.0.0.1:${port}", insecure-skip-tls-verify: true } }]
users: [{ name: u, user: { token: x } }]
contexts: [{ name: c, context: { cluster: c, user: u } }]
current-context: c
`,
    );
    const started = Date.now();
    const r = await new Promise<{ code: number; err: string }>((resolve) =>
      execFile(
        process.execPath,
        [join(ROOT, 'bin', 'weft.js'), 'status', '--kubeconfig', file],
        (err, _o, stderr) =>
          resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, err: stderr }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
    assert.equal(r.code, 2);
    assert.match(r.err, new RegExp(`nothing listens at the API server https://127\\.0\\.0\\.1:${port}/`));
    assert.ok(Date.now() - started < 15_000);
  });
});
