/**
 * The Kubernetes tier on a real kube-apiserver and etcd: CRDs and examples through kubectl, and
 * Weft's informers following changes across an API server restart.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { allCrdsYaml } from '../../src/crds/render';
import { KubeClient, loadKubeConfig } from '../../src/kube/client';
import { Informer } from '../../src/kube/informer';
import { setLogLevel } from '../../src/log';
import { type KubeEnv, startKubeEnv } from './env';

setLogLevel('silent');
const ROOT = join(__dirname, '..', '..', '..');

describe('real kube-apiserver', () => {
  let env: KubeEnv;
  before(async () => {
    env = await startKubeEnv();
  });
  after(async () => {
    await env?.stop();
  });

  /** Runs kubectl (arguments split on spaces) and returns its stdout, failing on a non-zero exit. */
  const kubectl = async (args: string, input?: string, what = args): Promise<string> => {
    const r = await env.kubectl(args.split(' '), input);
    assert.equal(r.code, 0, `kubectl ${what}: ${r.stderr}`);
    return r.stdout;
  };

  it('installs every CRD with `weft install --crds | kubectl apply -f -`', async () => {
    await kubectl('apply -f -', allCrdsYaml());
    await kubectl('wait --for=condition=Established --timeout=60s crd -l app.kubernetes.io/part-of=weft');
  });

  it('applies the bookstore example through kubectl', async () => {
    const out = await kubectl(`apply -f ${join(ROOT, 'examples', 'bookstore')}`);
    assert.match(out, /trafficsplit.split.smi-spec.io\/bookstore-split created/);
    const ts = JSON.parse(await kubectl('get trafficsplit bookstore-split -n bookstore -o json')) as {
      spec: { backends: { service: string; weight: number }[] };
    };
    assert.deepEqual(ts.spec.backends, [
      { service: 'bookstore-v1', weight: 90 },
      { service: 'bookstore-v2', weight: 10 },
    ]);
  });

  it('serves every SMI version: every golden input applies, and a v1alpha1 TrafficTarget keeps its top-level fields', async () => {
    const dir = join(ROOT, 'test', 'golden', 'cases');
    const smiKinds = [
      'trafficsplits.split.smi-spec.io',
      'traffictargets.access.smi-spec.io',
      'identitybindings.access.smi-spec.io',
      'httproutegroups.specs.smi-spec.io',
      'tcproutes.specs.smi-spec.io',
      'udproutes.specs.smi-spec.io',
    ].join(',');
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.in.yaml') && x !== 'conditions.in.yaml')) {
      // Each case is a complete mesh of its own; apply it in its own run so names may repeat.
      await kubectl('apply --server-side --force-conflicts -f -', readFileSync(join(dir, f), 'utf8'), f);
      // Cases reuse names across SMI versions whose fields differ in type (v1alpha1 quantity
      // weights), which one stored object cannot switch between: clear the SMI objects each time.
      await kubectl(`delete ${smiKinds} --all -A`);
    }
    await kubectl(
      'apply --server-side -f -',
      readFileSync(join(dir, 'access-v1alpha1-top-level.in.yaml'), 'utf8'),
    );
    const back = await kubectl('get traffictargets.v1alpha1.access.smi-spec.io metrics -n app -o json');
    const tt = JSON.parse(back) as { destination?: { name: string }; specs?: unknown[] };
    assert.equal(tt.destination?.name, 'server');
    assert.equal(tt.specs?.length, 1);
  });

  it('informers list, watch, and lose no update across an API server restart', async () => {
    const client = new KubeClient(loadKubeConfig(env.kubeconfigPath));
    const inf = new Informer(
      client,
      { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
      {
        initialBackoffMs: 100,
        maxBackoffMs: 500,
      },
    );
    inf.start();
    await inf.whenSynced();
    const has = (name: string, value?: string) =>
      inf
        .list()
        .some(
          (o) =>
            o.metadata?.name === name &&
            (value === undefined || (o as { data?: { v?: string } }).data?.v === value),
        );
    const until = async (pred: () => boolean, what: string): Promise<void> => {
      const end = Date.now() + 30_000;
      while (!pred()) {
        if (Date.now() > end) throw new Error(`informer never saw ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await kubectl('create configmap one -n default --from-literal=v=1');
    await until(() => has('one', '1'), 'one');
    await env.restartApiServer();
    // Changes made right after the restart must reach the informer through its reconnect.
    await kubectl('create configmap two -n default --from-literal=v=2');
    await kubectl('delete configmap one -n default');
    await until(() => has('two', '2') && !has('one'), 'two created and one deleted after the restart');
    assert.ok(inf.stats.watches >= 2, 'the watch was re-established');
    inf.stop();
  });
});
