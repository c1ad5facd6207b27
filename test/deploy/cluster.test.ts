/**
 * The deploy manifests on a real kube-apiserver: every object passes server-side dry-run,
 * `weft install --apply` installs them and is idempotent (and leaves the caBundle Weft patches in
 * alone), the RBAC allows every API call Weft makes and denies what Weft must not do, and
 * `weft uninstall` removes what install created while the user's objects stay.
 *
 * Nothing runs pods here (no kubelet, no controllers): what a real cluster would run is checked
 * by the API server's validation and admission only.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { CRD_FOLDERS } from '../../src/crds/render';
import { LEADER_LEASE } from '../../src/kube/leader';
import { WATCHED_KINDS } from '../../src/kube/source';
import { STATUS_KINDS } from '../../src/kube/status';
import { type KubeEnv, kubectlOk, startKubeEnv, WAIT_FOR_WEFT_CRDS } from '../kube/env';
import { helmTemplate, MANIFESTS, ROOT, weft } from './helm';

const WEFT_SA = 'system:serviceaccount:weft-system:weft';
const CA_SECRET = 'weft-ca';
const CA_BUNDLE = 'weft-ca-bundle';
const WEBHOOK = 'weft-sidecar-injector';
const PATCH_WEBHOOK = 'weft-envoypatch-validator';
const SMI_WEBHOOK = 'weft-smi-validator';

interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

const manifestObjects = (): Obj[] =>
  parseAllDocuments(readFileSync(MANIFESTS, 'utf8'))
    .map((d) => d.toJS() as Obj | null)
    .filter((o): o is Obj => o !== null);

/** One `kubectl auth can-i` question, as the arguments after `can-i`. */
type Question = string[];

describe('deploy manifests on a real kube-apiserver', () => {
  let env: KubeEnv;
  before(async () => {
    env = await startKubeEnv();
  });
  after(async () => {
    await env?.stop();
  });

  const kubectl = async (args: string[], input?: string): Promise<string> =>
    (await kubectlOk(env, args, input)).stdout;
  const weftCli = (args: string[]) => weft([...args, '--kubeconfig', env.kubeconfigPath]);

  /** Each object's resourceVersion (or `absent`), keyed by `kind/namespace/name`. */
  const liveVersions = async (objects: Obj[]): Promise<Record<string, string>> => {
    const key = (o: Obj) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;
    const input = objects.map((o) => JSON.stringify(o)).join('\n');
    const list = JSON.parse(await kubectl(['get', '-f', '-', '--ignore-not-found', '-o', 'json'], input)) as {
      items: Obj[];
    };
    const live = new Map(list.items.map((o) => [key(o), o.metadata.resourceVersion ?? '']));
    return Object.fromEntries(objects.map((o) => [key(o), live.get(key(o)) ?? 'absent']));
  };

  it('passes server-side dry-run: the rendered defaults and a chart with every option on', async () => {
    // Dry-run creates nothing, so what the other objects need must exist for real: the CRDs (for
    // the MeshConfig) and the namespace.
    await kubectl(['apply', '--server-side', '-f', join(ROOT, CRD_FOLDERS[1])]);
    await kubectl([...WAIT_FOR_WEFT_CRDS]);
    await kubectl(['create', 'namespace', 'weft-system']);
    await kubectl(['create', 'priorityclass', 'weft-critical', '--value=1000000']);
    const out = await kubectl(['apply', '--dry-run=server', '--server-side', '-f', MANIFESTS]);
    assert.equal(out.trim().split('\n').length, manifestObjects().length, out);
    assert.ok(
      out.split('\n').every((l) => l === '' || l.endsWith('(server dry run)')),
      out,
    );

    const custom = await helmTemplate([
      '--set',
      'podDisruptionBudget.enabled=false,image.tag=dev,priorityClassName=weft-critical,replicas=3',
      '--set',
      'extraArgs[0]=--no-mtls,imagePullSecrets[0].name=pull,nodeSelector.pool=system,mesh.permissive=true',
      '--set',
      'tolerations[0].key=dedicated,tolerations[0].operator=Exists,podLabels.team=mesh,podAnnotations.note=x',
      '--set',
      'webhook.failurePolicy=Fail,webhook.timeoutSeconds=2,ca.secretName=mesh-root',
    ]);
    await kubectl(['apply', '--dry-run=server', '--server-side', '-f', '-'], custom);
    // The API server's own validation runs in dry-run too: a bad value is refused by it.
    const bad = await env.kubectl(
      ['apply', '--dry-run=server', '--server-side', '-f', '-'],
      await helmTemplate(['--set', 'webhook.timeoutSeconds=60']),
    );
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /timeoutSeconds/);
  });

  it('weft install --apply installs every object of deploy/manifests/weft.yaml', async () => {
    const r = await weftCli(['install', '--apply']);
    assert.equal(r.code, 0, r.stderr);
    const objects = manifestObjects();
    assert.equal(r.stdout.trim().split('\n').length, objects.length, r.stdout);
    const live = await liveVersions(objects);
    assert.deepEqual(
      Object.entries(live).filter(([, v]) => !/^\d+$/.test(v)),
      [],
      'every object exists',
    );
  });

  it("gives Weft's ServiceAccount every API call Weft makes", async () => {
    const yes: Question[] = [];
    for (const k of WATCHED_KINDS) {
      const resource = k.group ? `${k.plural}.${k.group}` : k.plural;
      for (const verb of ['list', 'watch']) yes.push([verb, resource, ...(k.namespaced ? ['-A'] : [])]);
    }
    for (const k of Object.values(STATUS_KINDS))
      for (const ns of ['weft-system', 'bookstore'])
        yes.push(['patch', `${k.plural}.${k.group}`, '--subresource=status', '-n', ns]);
    for (const ns of ['bookstore', 'weft-system', 'default']) yes.push(['create', 'events', '-n', ns]);
    for (const ns of ['bookstore', 'weft-system'])
      yes.push(['create', 'configmaps', '-n', ns], ['update', `configmaps/${CA_BUNDLE}`, '-n', ns]);
    yes.push(
      ['create', 'secrets', '-n', 'weft-system'],
      ['get', `secrets/${CA_SECRET}`, '-n', 'weft-system'],
      ['update', `secrets/${CA_SECRET}`, '-n', 'weft-system'],
      ['create', 'leases.coordination.k8s.io', '-n', 'weft-system'],
      ['get', `leases.coordination.k8s.io/${LEADER_LEASE}`, '-n', 'weft-system'],
      ['update', `leases.coordination.k8s.io/${LEADER_LEASE}`, '-n', 'weft-system'],
      ['create', 'tokenreviews.authentication.k8s.io'],
      ['create', 'subjectaccessreviews.authorization.k8s.io'],
      ['get', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${WEBHOOK}`],
      ['patch', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${WEBHOOK}`],
      ['get', `validatingwebhookconfigurations.admissionregistration.k8s.io/${PATCH_WEBHOOK}`],
      ['patch', `validatingwebhookconfigurations.admissionregistration.k8s.io/${PATCH_WEBHOOK}`],
      ['get', `validatingwebhookconfigurations.admissionregistration.k8s.io/${SMI_WEBHOOK}`],
      ['patch', `validatingwebhookconfigurations.admissionregistration.k8s.io/${SMI_WEBHOOK}`],
    );
    const answers = await ask(yes);
    assert.deepEqual(
      answers.filter((a) => a.answer !== 'yes').map((a) => a.question),
      [],
      'Weft may not make these calls',
    );
  });

  it("refuses Weft's ServiceAccount what Weft must not do", async () => {
    const no: Question[] = [
      ['list', 'secrets', '-A'],
      ['watch', 'secrets', '-n', 'weft-system'],
      ['delete', 'secrets', '-n', 'weft-system'],
      ['get', 'secrets/app-credentials', '-n', 'weft-system'],
      ['get', `secrets/${CA_SECRET}`, '-n', 'bookstore'],
      ['create', 'secrets', '-n', 'bookstore'],
      ['update', 'configmaps/app-config', '-n', 'bookstore'],
      ['get', 'configmaps/app-config', '-n', 'bookstore'],
      ['delete', 'configmaps', '-n', 'bookstore'],
      ['patch', 'mutatingwebhookconfigurations.admissionregistration.k8s.io/other-webhook'],
      ['patch', 'validatingwebhookconfigurations.admissionregistration.k8s.io/other-webhook'],
      ['delete', `validatingwebhookconfigurations.admissionregistration.k8s.io/${SMI_WEBHOOK}`],
      ['delete', `mutatingwebhookconfigurations.admissionregistration.k8s.io/${WEBHOOK}`],
      ['create', 'validatingwebhookconfigurations.admissionregistration.k8s.io'],
      ['create', 'pods', '-n', 'bookstore'],
      ['delete', 'pods', '-n', 'bookstore'],
      ['patch', 'trafficsplits.split.smi-spec.io', '-n', 'bookstore'],
      ['delete', 'envoypatches.weft.dev', '-n', 'weft-system'],
      ['update', 'leases.coordination.k8s.io/other-lease', '-n', 'weft-system'],
      ['create', 'leases.coordination.k8s.io', '-n', 'bookstore'],
      ['create', 'clusterrolebindings.rbac.authorization.k8s.io'],
      ['create', 'serviceaccounts/token', '-n', 'bookstore'],
      ['get', 'nodes'],
    ];
    const answers = await ask(no);
    assert.deepEqual(
      answers.filter((a) => a.answer !== 'no').map((a) => a.question),
      [],
      'Weft may make these calls',
    );
  });

  it('weft install --apply again changes nothing and keeps the caBundle Weft patched in', async () => {
    // What Weft does at start: patch its CA bundle into the webhook, under its own field manager.
    const caBundle = Buffer.from('-----BEGIN CERTIFICATE-----\nnot checked here\n').toString('base64');
    await kubectl([
      'patch',
      `mutatingwebhookconfiguration/${WEBHOOK}`,
      '--type=json',
      '--field-manager=weft',
      '-p',
      JSON.stringify([{ op: 'add', path: '/webhooks/0/clientConfig/caBundle', value: caBundle }]),
    ]);
    const objects = manifestObjects();
    const before = await liveVersions(objects);
    const r = await weftCli(['install', '--apply']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await liveVersions(objects), before, 'a second install writes nothing');
    const live = await kubectl([
      'get',
      `mutatingwebhookconfiguration/${WEBHOOK}`,
      '-o',
      'jsonpath={.webhooks[0].clientConfig.caBundle}',
    ]);
    assert.equal(live, caBundle);
  });

  it('weft install --apply again keeps the MeshConfig as the user set it', async () => {
    await kubectl([
      'patch',
      'meshconfig.weft.dev/mesh',
      '-n',
      'weft-system',
      '--type=merge',
      '-p',
      '{"spec":{"permissive":true}}',
    ]);
    const r = await weftCli(['install', '--apply']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /MeshConfig\/weft-system\/mesh kept \(it exists; yours to edit\)/);
    const permissive = await kubectl([
      'get',
      'meshconfig.weft.dev/mesh',
      '-n',
      'weft-system',
      '-o',
      'jsonpath={.spec.permissive}',
    ]);
    assert.equal(permissive, 'true');
  });

  it("weft uninstall removes what install created and leaves the user's objects", async () => {
    await kubectl(['create', 'namespace', 'bookstore']);
    await kubectl(['apply', '-f', join(ROOT, 'examples', 'bookstore', '20-split.yaml')]);
    await kubectl(
      ['apply', '-f', '-'],
      `apiVersion: weft.dev/v1alpha1
kind: EnvoyPatch
metadata: { name: mesh-wide, namespace: weft-system }
spec:
  patches:
    - target: { type: Listener, name: outbound }
      merge: { per_connection_buffer_limit_bytes: 65536 }
`,
    );
    const r = await weftCli(['uninstall']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, '', 'no warning without --crds');
    const live = await liveVersions(manifestObjects());
    const kept = Object.entries(live)
      .filter(([, v]) => v !== 'absent')
      .map(([k]) => k.split('/')[0]);
    assert.deepEqual([...new Set(kept)].sort(), ['CustomResourceDefinition', 'MeshConfig', 'Namespace']);
    assert.match(r.stdout, /kept: .*the MeshConfig \(--delete-config deletes it\)/);
    await kubectl(['get', 'trafficsplit.split.smi-spec.io/bookstore-split', '-n', 'bookstore']);
    await kubectl(['get', 'envoypatch.weft.dev/mesh-wide', '-n', 'weft-system']);
    const permissive = await kubectl([
      'get',
      'meshconfig.weft.dev/mesh',
      '-n',
      'weft-system',
      '-o',
      'jsonpath={.spec.permissive}',
    ]);
    assert.equal(permissive, 'true', "the user's MeshConfig is untouched");

    const config = await weftCli(['uninstall', '--delete-config']);
    assert.equal(config.code, 0, config.stderr);
    assert.match(config.stdout, /MeshConfig\/weft-system\/mesh deleted/);
    const gone = await env.kubectl(['get', 'meshconfig.weft.dev/mesh', '-n', 'weft-system']);
    assert.match(gone.stderr, /NotFound/);

    const again = await weftCli(['uninstall']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /Deployment\/weft-system\/weft not found/);
  });

  it('weft uninstall --crds warns, then deletes the CRDs', async () => {
    const r = await weftCli(['uninstall', '--crds']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: --crds deletes .* every TrafficSplit/);
    // The API server finishes a CRD's deletion (removing its objects first) on its own schedule,
    // which here can wait out a storage re-initialisation: what uninstall owns is the request, so
    // each CRD must be gone or marked for deletion.
    for (const crd of manifestObjects().filter((o) => o.kind === 'CustomResourceDefinition')) {
      const got = await env.kubectl([
        'get',
        `crd/${crd.metadata.name}`,
        '-o',
        'jsonpath={.metadata.deletionTimestamp}',
      ]);
      if (got.code === 0) assert.notEqual(got.stdout, '', `${crd.metadata.name} is marked for deletion`);
      else assert.match(got.stderr, /NotFound/, crd.metadata.name);
    }
  });

  /** Asks `kubectl auth can-i` as Weft's ServiceAccount, a few questions at a time. */
  async function ask(questions: Question[]): Promise<{ question: string; answer: string }[]> {
    const answers: { question: string; answer: string }[] = [];
    for (let i = 0; i < questions.length; i += 4) {
      const batch = questions.slice(i, i + 4);
      answers.push(
        ...(await Promise.all(
          batch.map(async (q) => {
            const r = await env.kubectl(['auth', 'can-i', ...q, '--as', WEFT_SA]);
            return { question: q.join(' '), answer: r.stdout.trim() || r.stderr.trim() };
          }),
        )),
      );
    }
    return answers;
  }
});
