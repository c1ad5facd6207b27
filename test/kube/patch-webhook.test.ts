/**
 * EnvoyPatch validation at `kubectl apply`, on a real kube-apiserver: Weft (Kubernetes mode, with
 * --webhook-address) writes its CA bundle into the `weft-envoypatch-validator` configuration; a
 * patch that would apply nowhere is refused with Weft's reason (kubectl prints it), a valid one is
 * stored, and with Weft down the webhook's failurePolicy Ignore lets any patch through.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { allCrdsYaml } from '../../src/crds/render';
import { PATCH_WEBHOOK_CONFIGURATION } from '../../src/inject/webhook';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import { HOSTILE, VALID } from '../patch/hostile-fixture';
import {
  eventually,
  injectorWebhookByUrl,
  type KubeEnv,
  kubectlOk,
  patchValidatorByUrl,
  startKubeEnv,
  validatingWebhookCaBundle,
  WAIT_FOR_WEFT_CRDS,
} from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

const ROOT = join(__dirname, '..', '..', '..');

function patchYaml(name: string, patches: readonly Record<string, unknown>[]): string {
  return JSON.stringify({
    apiVersion: 'weft.dev/v1alpha1',
    kind: 'EnvoyPatch',
    metadata: { name, namespace: 'bookbuyer' },
    spec: { patches },
  });
}

describe('EnvoyPatch validation on a real kube-apiserver', () => {
  let env: KubeEnv;
  let weft: RunningKubeServe | undefined;

  const kubectl = (args: string[], input?: string): Promise<{ stdout: string; stderr: string }> =>
    kubectlOk(env, args, input);

  before(async () => {
    env = await startKubeEnv();
    await kubectl(['apply', '-f', '-'], allCrdsYaml());
    await kubectl([...WAIT_FOR_WEFT_CRDS]);
    await kubectl(['create', 'namespace', 'weft-system']);
    for (const f of ['00-namespaces.yaml', '10-workloads.yaml', '20-split.yaml', '30-access.yaml'])
      await kubectl(['apply', '-f', '-'], readFileSync(join(ROOT, 'examples', 'bookstore', f), 'utf8'));
    const port = await freePort();
    await kubectl(['apply', '-f', '-'], injectorWebhookByUrl(`https://127.0.0.1:${port}/inject`));
    await kubectl(['apply', '-f', '-'], patchValidatorByUrl(`https://127.0.0.1:${port}/validate-envoypatch`));
    weft = await startKubeServe({
      kubeconfig: env.kubeconfigPath,
      replica: 'weft-a',
      xdsAddress: '127.0.0.1:0',
      caAddress: '127.0.0.1:0',
      webhookAddress: `127.0.0.1:${port}`,
      webhookIpAddresses: ['127.0.0.1'],
      quietMs: 50,
      maxDelayMs: 300,
      leaseSeconds: 2,
      leaseRetryMs: 200,
    });
    // The API server picks up the caBundle on its own schedule: wait until a server-side dry run
    // of a hostile patch is refused (dry runs store nothing).
    const dup = HOSTILE.find((h) => h.name === 'duplicate-domain')!;
    await eventually('the API server calls the validator', async () => {
      const r = await env.kubectl(['create', '--dry-run=server', '-f', '-'], patchYaml('probe', dup.patches));
      return r.code !== 0 && /denied the request/.test(r.stderr) ? true : undefined;
    });
  });

  after(async () => {
    await weft?.stop();
    await env?.stop();
  });

  it("writes the mesh CA's bundle into the validating webhook configuration", async () => {
    assert.equal(
      await validatingWebhookCaBundle(env, PATCH_WEBHOOK_CONFIGURATION),
      weft!.identity.running.ca!.bundlePem(),
    );
  });

  for (const h of HOSTILE) {
    it(`kubectl apply refuses ${h.name}, saying why`, async (t) => {
      const r = await env.kubectl(['apply', '-f', '-'], patchYaml(h.name, h.patches));
      assert.notEqual(r.code, 0, `stored: ${r.stdout}`);
      assert.match(r.stderr, /admission webhook "envoypatch\.weft\.dev" denied the request/);
      assert.ok(r.stderr.includes(`EnvoyPatch bookbuyer/${h.name} is applied nowhere`), r.stderr);
      assert.ok(r.stderr.includes(h.native), `${r.stderr}\n  should say: ${h.native}`);
      if (h.name === 'router-not-last') t.diagnostic(`kubectl says: ${r.stderr.trim()}`);
      const get = await env.kubectl(['get', 'envoypatch', h.name, '-n', 'bookbuyer']);
      assert.notEqual(get.code, 0, 'nothing was stored');
    });
  }

  for (const v of VALID) {
    it(`kubectl apply stores ${v.name}`, async () => {
      await kubectl(['apply', '-f', '-'], patchYaml(v.name, v.patches));
      await kubectl(['get', 'envoypatch', v.name, '-n', 'bookbuyer']);
    });
  }

  it('an update that breaks a stored patch is refused too; the stored one stays', async () => {
    const bad = HOSTILE.find((h) => h.name === 'zero-weights')!;
    const r = await env.kubectl(['apply', '-f', '-'], patchYaml('retry-policy', bad.patches));
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(bad.native), r.stderr);
    const stored = JSON.parse(
      (await kubectl(['get', 'envoypatch', 'retry-policy', '-n', 'bookbuyer', '-o', 'json'])).stdout,
    ) as {
      spec: { patches: { merge?: unknown }[] };
    };
    assert.ok(stored.spec.patches[0]?.merge, 'the stored spec is the valid one');
  });

  it('with Weft down, failurePolicy Ignore admits any patch', async () => {
    await weft?.stop();
    weft = undefined;
    const h = HOSTILE.find((x) => x.name === 'router-not-last')!;
    await kubectl(['apply', '-f', '-'], patchYaml('while-down', h.patches));
    await kubectl(['get', 'envoypatch', 'while-down', '-n', 'bookbuyer']);
  });
});
