/**
 * The sidecar injector on a real kube-apiserver: Weft (Kubernetes mode, with --webhook-address)
 * writes its CA bundle into the webhook configuration, then pods created through the API server
 * are stored injected exactly once, opt-outs and pods outside mesh namespaces are stored as sent,
 * and a pod the injector cannot handle is admitted unchanged with a warning and an Event.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { allCrdsYaml } from '../../src/crds/render';
import { ANNOTATION } from '../../src/inject/mutate';
import { WEBHOOK_CONFIGURATION } from '../../src/inject/webhook';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import { webPod } from '../inject/pods';
import {
  eventually,
  injectorWebhookByUrl,
  type KubeEnv,
  kubectlOk,
  startKubeEnv,
  WAIT_FOR_WEFT_CRDS,
} from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

interface StoredPod {
  metadata: { name: string; resourceVersion: string; annotations?: Record<string, string> };
  spec: { initContainers?: { name: string; restartPolicy?: string }[]; containers: { name: string }[] };
}

function podYaml(
  name: string,
  namespace: string,
  annotations: Record<string, string> = {},
  probe: Record<string, unknown> = { tcpSocket: { port: 'http' } },
): string {
  return JSON.stringify(webPod({ name, namespace, annotations, probes: { readinessProbe: probe } }));
}

describe('sidecar injection on a real kube-apiserver', () => {
  let env: KubeEnv;
  let weft: RunningKubeServe;

  const kubectl = (args: string[], input?: string): Promise<{ stdout: string; stderr: string }> =>
    kubectlOk(env, args, input);
  const getPod = async (ns: string, name: string): Promise<StoredPod> =>
    JSON.parse((await kubectl(['get', 'pod', name, '-n', ns, '-o', 'json'])).stdout) as StoredPod;
  const sidecars = (p: StoredPod): string[] => (p.spec.initContainers ?? []).map((c) => c.name);

  before(async () => {
    env = await startKubeEnv();
    await kubectl(['apply', '-f', '-'], allCrdsYaml());
    await kubectl([...WAIT_FOR_WEFT_CRDS]);
    await kubectl(['create', 'namespace', 'weft-system']);
    await kubectl(['create', 'namespace', 'shop']);
    await kubectl(['label', 'namespace', 'shop', 'weft.dev/mesh=enabled']);
    await kubectl(['create', 'namespace', 'plain']);
    const port = await freePort();
    // As deploy/helm/weft registers it, but by URL (nothing runs Weft as a Service here) and
    // without a caBundle: Weft writes that.
    await kubectl(['apply', '-f', '-'], injectorWebhookByUrl(`https://127.0.0.1:${port}/inject`));
    weft = await startKubeServe({
      kubeconfig: env.kubeconfigPath,
      replica: 'weft-a',
      xdsAddress: '127.0.0.1:0',
      caAddress: '127.0.0.1:0',
      webhookAddress: `127.0.0.1:${port}`,
      webhookIpAddresses: ['127.0.0.1'],
      injector: { weftImage: 'ghcr.io/weft-mesh/weft:test', proxyImage: 'envoyproxy/envoy:v1.40.0' },
      quietMs: 50,
      maxDelayMs: 300,
      leaseSeconds: 2,
      leaseRetryMs: 200,
    });
    // The API server picks up the patched configuration on its own schedule: wait until a
    // server-side dry run comes back injected (dry runs have no side effects).
    await eventually('the API server calls the injector', async () => {
      const r = await env.kubectl(
        ['create', '--dry-run=server', '-o', 'json', '-f', '-'],
        podYaml('probe', 'shop'),
      );
      if (r.code !== 0) return undefined;
      return sidecars(JSON.parse(r.stdout) as StoredPod).length > 0 ? true : undefined;
    });
  });

  after(async () => {
    await weft?.stop();
    await env?.stop();
  });

  it("writes the mesh CA's bundle into the webhook configuration", async () => {
    const cfg = JSON.parse(
      (await kubectl(['get', 'mutatingwebhookconfiguration', WEBHOOK_CONFIGURATION, '-o', 'json'])).stdout,
    ) as { webhooks: { clientConfig: { caBundle?: string } }[] };
    const bundle = weft.identity.running.ca!.bundlePem();
    assert.equal(
      Buffer.from(cfg.webhooks[0]!.clientConfig.caBundle ?? '', 'base64').toString('utf8'),
      bundle,
    );
    assert.equal(weft.webhook?.stats.bundlePatches, 1);
  });

  it('stores a mesh pod injected exactly once; re-applying changes nothing', async () => {
    await kubectl(['apply', '-f', '-'], podYaml('web', 'shop'));
    const stored = await getPod('shop', 'web');
    assert.deepEqual(sidecars(stored), ['weft-capture', 'weft-agent', 'weft-proxy']);
    assert.deepEqual(
      stored.spec.initContainers!.map((c) => c.restartPolicy ?? ''),
      ['', 'Always', 'Always'],
      'the agent and Envoy are native sidecars',
    );
    assert.equal(stored.metadata.annotations?.[ANNOTATION.injected], 'true');
    const again = await kubectl(['apply', '-f', '-'], podYaml('web', 'shop'));
    assert.match(again.stdout, /pod\/web unchanged/);
    assert.equal((await getPod('shop', 'web')).metadata.resourceVersion, stored.metadata.resourceVersion);
    // An already injected pod sent through the webhook again (a copy of the stored one) keeps
    // one set of sidecars.
    const copy = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'web-copy', namespace: 'shop', annotations: stored.metadata.annotations },
      spec: { ...stored.spec, nodeName: undefined },
    };
    await kubectl(['create', '-f', '-'], JSON.stringify(copy));
    assert.deepEqual(sidecars(await getPod('shop', 'web-copy')), [
      'weft-capture',
      'weft-agent',
      'weft-proxy',
    ]);
  });

  it('stores httpGet probes rewritten to the health port', async () => {
    await kubectl(
      ['create', '-f', '-'],
      podYaml('probed', 'shop', {}, { httpGet: { port: 'http', path: '/ready' } }),
    );
    const stored = (await getPod('shop', 'probed')) as unknown as {
      spec: { containers: { readinessProbe: { httpGet: { port: number; path: string } } }[] };
    };
    assert.deepEqual(
      { ...stored.spec.containers[0]!.readinessProbe.httpGet },
      { port: 15020, path: '/app-health/web/readyz', scheme: 'HTTP' },
    );
  });

  it('respects the opt-out annotation', async () => {
    await kubectl(['create', '-f', '-'], podYaml('legacy', 'shop', { [ANNOTATION.inject]: 'false' }));
    const stored = await getPod('shop', 'legacy');
    assert.deepEqual(sidecars(stored), []);
    assert.equal(stored.metadata.annotations?.[ANNOTATION.injected], undefined);
  });

  it('leaves pods outside mesh namespaces untouched', async () => {
    await kubectl(['create', '-f', '-'], podYaml('outside', 'plain'));
    assert.deepEqual(sidecars(await getPod('plain', 'outside')), []);
  });

  it('gives a proxyless gRPC pod only the agent', async () => {
    await kubectl(['create', '-f', '-'], podYaml('grpc', 'shop', { [ANNOTATION.flavor]: 'grpc' }));
    assert.deepEqual(sidecars(await getPod('shop', 'grpc')), ['weft-agent']);
  });

  it('admits a pod it cannot handle unchanged, with a warning and an Event naming pod and reason', async () => {
    const failedBefore = weft.webhook!.stats.failed;
    const r = await kubectl(
      ['create', '-f', '-'],
      podYaml('odd', 'shop', { [ANNOTATION.excludeOutboundPorts]: '80,http' }),
    );
    assert.match(
      r.stderr,
      /Warning: Weft did not inject its sidecar: pod shop\/odd: annotation weft.dev\/exclude-outbound-ports: "http" is not a port/,
    );
    assert.deepEqual(sidecars(await getPod('shop', 'odd')), []);
    assert.equal(weft.webhook!.stats.failed, failedBefore + 1);
    const event = await eventually('an Event about pod shop/odd', async () => {
      const list = JSON.parse(
        (
          await kubectl([
            'get',
            'events',
            '-n',
            'shop',
            '--field-selector',
            'involvedObject.name=odd',
            '-o',
            'json',
          ])
        ).stdout,
      ) as { items: { reason: string; type: string; message: string; involvedObject: { kind: string } }[] };
      return list.items[0];
    });
    assert.equal(event.reason, 'SidecarNotInjected');
    assert.equal(event.type, 'Warning');
    assert.equal(event.involvedObject.kind, 'Pod');
    assert.match(event.message, /pod shop\/odd: annotation weft.dev\/exclude-outbound-ports/);
  });
});
