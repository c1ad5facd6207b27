/**
 * `weft check`, `weft install --apply --wait` and `weft status --all` on a real kube-apiserver.
 *
 * Nothing runs pods here (no kubelet, no controllers), so Weft's Deployment never becomes ready by
 * itself: `--wait` is tested to time out naming it, and the check's "ready" is tested by writing
 * the Deployment's status as the controller would.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { CheckReport } from '../../src/cli/check';
import { parseDuration } from '../../src/cli/install';
import type { Finding } from '../../src/kube/check';
import { freePort } from '../../src/net';
import { type KubeEnv, kubectlOk, startKubeEnv } from '../kube/env';
import { ROOT, weft } from './helm';

describe('weft check on a real kube-apiserver', () => {
  let env: KubeEnv;
  let dir: string;
  before(async () => {
    env = await startKubeEnv();
    dir = mkdtempSync(join(tmpdir(), 'weft-check-'));
  });
  after(async () => {
    await env?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const kubectl = async (args: string[], input?: string): Promise<string> =>
    (await kubectlOk(env, args, input)).stdout;
  const weftCli = (args: string[], kubeconfig = env.kubeconfigPath) =>
    weft([...args, '--kubeconfig', kubeconfig]);
  const check = async (
    args: string[],
    kubeconfig?: string,
  ): Promise<{ code: number; report: CheckReport }> => {
    const r = await weftCli(['check', '-o', 'json', ...args], kubeconfig);
    assert.notEqual(r.stdout, '', r.stderr);
    return { code: r.code, report: JSON.parse(r.stdout) as CheckReport };
  };
  const find = (findings: Finding[], pred: (f: Finding) => boolean): Finding => {
    const f = findings.find(pred);
    assert.ok(f, `no such finding in ${JSON.stringify(findings, null, 2)}`);
    return f;
  };

  it('--pre before install: names the server, grants an admin every kind, lists the CRDs missing', async () => {
    const { code, report } = await check(['--pre']);
    assert.equal(code, 0, JSON.stringify(report.findings, null, 2));
    const server = find(report.findings, (f) => f.check === 'api-server');
    assert.match(server.message, /127\.0\.0\.1:\d+.*answers: Kubernetes v\d/);
    const perms = find(report.findings, (f) => f.check === 'permissions');
    assert.equal(perms.level, 'ok');
    assert.match(perms.message, /ClusterRole.*Deployment.*MutatingWebhookConfiguration/);
    const crds = find(report.findings, (f) => f.check === 'crds');
    assert.match(crds.message, /not installed yet.*trafficsplits\.split\.smi-spec\.io/);
  });

  it('--pre as a user without rights: an error per kind it may not create, with the fix', async () => {
    await kubectl(['create', 'serviceaccount', 'nobody', '-n', 'default']);
    const token = (await kubectl(['create', 'token', 'nobody', '-n', 'default'])).trim();
    const file = join(dir, 'nobody.kubeconfig');
    const full = await kubectl(['config', 'view', '--raw', '--minify', '-o', 'json']);
    const cfg = JSON.parse(full) as { users: { name: string; user: Record<string, string> }[] };
    for (const u of cfg.users) u.user = { token };
    writeFileSync(file, JSON.stringify(cfg));
    const { code, report } = await check(['--pre'], file);
    assert.equal(code, 1);
    const denied = report.findings.filter((f) => f.check === 'permissions' && f.level === 'error');
    assert.ok(denied.length >= 13, JSON.stringify(denied, null, 2));
    const crb = find(denied, (f) => /create ClusterRoleBinding/.test(f.message));
    assert.match(crb.fix ?? '', /cluster admin.*clusterrolebindings\.rbac\.authorization\.k8s\.io/);
  });

  it('cannot check without an API server: exit 2 naming it', async () => {
    const port = await freePort();
    const file = join(dir, 'dead.kubeconfig');
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
    const r = await weftCli(['check'], file);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(`cannot check: nothing listens at the API server https://127\\.0\\.0\\.1:${port}/`),
    );
    const bad = await weftCli(['check', '--context', 'nope'], file);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /context nope is not in the kubeconfig; it has c/);
  });

  it('install --apply --wait times out quickly, naming the Deployment that is not ready', async () => {
    const started = Date.now();
    const r = await weftCli(['install', '--apply', '--wait', '--timeout', '3s']);
    assert.equal(r.code, 1, r.stderr);
    assert.ok(Date.now() - started < 60_000);
    assert.match(r.stderr, /not working after 3s/);
    assert.match(r.stderr, /Deployment weft-system\/weft: 0\/2 replicas ready/);
    assert.match(r.stderr, /fix: kubectl -n weft-system describe deployment weft/);
    const bad = await weftCli(['install', '--apply', '--wait', '--timeout', 'soon']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--timeout soon is not a duration/);
    assert.equal(parseDuration('1m30s'), 90_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('120'), 120_000);
  });

  it('after install: webhooks present without a caBundle, the Deployment not ready, the Service without endpoints', async () => {
    const { code, report } = await check(['--no-admin']);
    assert.equal(code, 1);
    const f = report.findings;
    assert.equal(find(f, (x) => x.check === 'deployment').level, 'error');
    const injector = find(f, (x) => x.object === 'MutatingWebhookConfiguration/weft-sidecar-injector');
    assert.equal(injector.level, 'error');
    assert.match(injector.message, /webhook sidecar\.weft\.dev has no caBundle/);
    const validator = find(f, (x) => x.object === 'ValidatingWebhookConfiguration/weft-envoypatch-validator');
    assert.match(validator.message, /envoypatch\.weft\.dev has no caBundle/);
    const smi = find(f, (x) => x.object === 'ValidatingWebhookConfiguration/weft-smi-validator');
    assert.match(smi.message, /smi\.weft\.dev has no caBundle/);
    const svc = find(f, (x) => x.object === 'Service/weft-system/weft');
    assert.equal(svc.level, 'error');
    assert.match(svc.message, /no ready endpoints/);
    assert.equal(find(f, (x) => x.object === 'Secret/weft-system/weft-ca').level, 'error');
    const ns = find(f, (x) => x.check === 'namespaces');
    assert.equal(ns.level, 'warning');
    assert.match(ns.fix ?? '', /kubectl label namespace <namespace> weft\.dev\/mesh=enabled/);
  });

  it('an SMI object in an unlabelled namespace is a warning naming it, in check and in status --all', async () => {
    await kubectl(['create', 'namespace', 'bookstore']);
    await kubectl(['apply', '-f', join(ROOT, 'examples', 'bookstore', '20-split.yaml')]);
    const { report } = await check(['--no-admin']);
    const w = find(report.findings, (x) => x.object === 'TrafficSplit/bookstore/bookstore-split');
    assert.equal(w.level, 'warning');
    assert.match(w.message, /namespace bookstore, which is not in the mesh .*Weft ignores it/);
    assert.equal(w.fix, 'kubectl label namespace bookstore weft.dev/mesh=enabled');

    const status = await weftCli(['status', '--all', '--no-envoy', '-o', 'json']);
    assert.equal(status.code, 0, status.stderr);
    const rows = JSON.parse(status.stdout) as { object: string; severity: string; message: string }[];
    const row = rows.find((r) => r.object === 'TrafficSplit/bookstore/bookstore-split');
    assert.ok(row, status.stdout);
    assert.equal(row.severity, 'Warning');
    assert.match(row.message, /fix: kubectl label namespace bookstore weft\.dev\/mesh=enabled/);
    const problemsOnly = await weftCli(['status', '--no-envoy', '-o', 'json']);
    assert.doesNotMatch(problemsOnly.stdout, /bookstore-split/, 'only with --all');

    await kubectl(['label', 'namespace', 'bookstore', 'weft.dev/mesh=enabled']);
    const again = await check(['--no-admin']);
    assert.equal(
      again.report.findings.find((x) => x.object === 'TrafficSplit/bookstore/bookstore-split'),
      undefined,
    );
    assert.match(
      find(again.report.findings, (x) => x.check === 'namespaces').message,
      /mesh namespaces: bookstore/,
    );
    const bundle = find(again.report.findings, (x) => x.object === 'ConfigMap/bookstore/weft-ca-bundle');
    assert.equal(bundle.level, 'error');
  });

  it('a Deployment whose status says ready, webhooks with a caBundle, endpoints and the CA: all ok', async () => {
    await kubectl([
      'patch',
      'deployment/weft',
      '-n',
      'weft-system',
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"replicas":2,"readyReplicas":2,"availableReplicas":2,"updatedReplicas":2}}',
    ]);
    const caBundle = Buffer.from('-----BEGIN CERTIFICATE-----\nnot checked here\n').toString('base64');
    for (const w of [
      'mutatingwebhookconfiguration/weft-sidecar-injector',
      'validatingwebhookconfiguration/weft-envoypatch-validator',
      'validatingwebhookconfiguration/weft-smi-validator',
    ])
      await kubectl([
        'patch',
        w,
        '--type=json',
        '-p',
        JSON.stringify([{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: caBundle }]),
      ]);
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: {
          name: 'weft-1',
          namespace: 'weft-system',
          labels: { 'kubernetes.io/service-name': 'weft' },
        },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.0.0.7'], conditions: { ready: true } }],
        ports: [{ name: 'webhook', port: 8443, protocol: 'TCP' }],
      }),
    );
    await kubectl(['create', 'secret', 'generic', 'weft-ca', '-n', 'weft-system', '--from-literal=ca.pem=x']);
    await kubectl([
      'create',
      'configmap',
      'weft-ca-bundle',
      '-n',
      'bookstore',
      '--from-literal=bundle.pem=x',
    ]);

    const { code, report } = await check(['--no-admin']);
    assert.equal(code, 0, JSON.stringify(report.findings, null, 2));
    assert.equal(report.result, 'ok');
    assert.match(find(report.findings, (x) => x.check === 'deployment').message, /2\/2 replicas ready/);
    const text = await weftCli(['check', '--no-admin']);
    assert.equal(text.code, 0, text.stdout);
    assert.match(text.stdout, /All checks passed\./);

    // Weft's admin server cannot be reached (no pod runs): a note, not a problem.
    const withAdmin = await check([]);
    assert.equal(withAdmin.code, 0, JSON.stringify(withAdmin.report.findings, null, 2));
    const skipped = find(withAdmin.report.findings, (x) => x.check === 'proxies');
    assert.equal(skipped.level, 'skipped');
    assert.match(skipped.message, /no Weft pod in namespace weft-system/);

    // And the wait passes at once now.
    const wait = await weftCli(['install', '--apply', '--wait', '--timeout', '30s']);
    assert.equal(wait.code, 0, wait.stderr);
    assert.match(wait.stdout, /All checks passed\./);
  });
});
