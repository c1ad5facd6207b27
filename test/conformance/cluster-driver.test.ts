/**
 * The cluster driver against real parts: a kube-apiserver (the Kubernetes test tier), a real
 * `weft serve --kubeconfig` with mutual TLS (CA in the weft-ca Secret) and its sidecar injector
 * registered as a webhook, and the scenario workloads as proxyless gRPC echo servers and caller
 * control endpoints in this process, each beside a real `weft agent` and xDS relay.
 *
 * The driver runs as on a cluster: kubectl server-side applies e2e/cluster/workloads.yaml, waits
 * for the pods, finds each workload's pod by its Deployment's labels, calls through the callers'
 * control endpoints, reads CSDS over mTLS with a certificate it got itself, and deletes what it
 * applied. Only the transport differs: DirectTransport with the in-process addresses. No kubelet
 * or controller-manager runs here, so this test plays both: it creates each Deployment's pod from
 * its template through the API server (where the real injector adds `weft agent`), marks it
 * ready, and runs what the pod would run. Port-forwarding and the echo image on a real cluster
 * are not exercised.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClusterDriver, DirectTransport } from '../../src/conformance/cluster-driver';
import { runSuite } from '../../src/conformance/runner';
import { loadSuite, type Suite } from '../../src/conformance/schema';
import { allCrdsYaml } from '../../src/crds/render';
import { GRPC_RELAY_ADDRESS, INJECTED } from '../../src/inject/mutate';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import { type CallerControl, startCallerControl } from '../../src/workload/caller-control';
import { type EchoServer, startEchoServer } from '../../src/workload/echo';
import {
  type Sidecar,
  startSidecar,
  xdsChannelCredentials,
  xdsServerCredentials,
} from '../../src/workload/mesh-peer';
import { injectorWebhookByUrl, type KubeEnv, startKubeEnv, WAIT_FOR_WEFT_CRDS } from '../kube/env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');
const ROOT = join(__dirname, '..', '..', '..');
const NS = 'conformance';
/** Second octet of the pods' loopback addresses (distinct from other test files). */
const NET = 91;

interface DeploymentJson {
  metadata: { name: string };
  spec: {
    template: {
      metadata: { labels: Record<string, string>; annotations?: Record<string, string> };
      spec: {
        serviceAccountName: string;
        containers: { name: string; ports?: { name: string; containerPort: number }[] }[];
      };
    };
  };
}

interface PodJson {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { initContainers?: { name: string; args?: string[] }[] };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('cluster driver (DirectTransport, real API server, Weft and workloads)', () => {
  let env: KubeEnv;
  let weft: RunningKubeServe;
  let driver: ClusterDriver;
  let suite: Suite;
  const progress: string[] = [];
  const sidecars: Sidecar[] = [];
  const servers: EchoServer[] = [];
  const controls: CallerControl[] = [];
  const podNames = new Map<string, string>();
  let tmp: string;

  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await env.kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  /**
   * What the controller-manager and kubelet would do: once the driver has applied the
   * Deployments, create one pod per Deployment from its template (a generated name, as a
   * ReplicaSet gives), stored injected by Weft's webhook; mark it ready with a loopback IP; run
   * its agent and its workload.
   */
  async function beTheKubelet(controlPorts: Map<string, number>): Promise<void> {
    let deployments: DeploymentJson[] = [];
    for (let i = 0; deployments.length < 5; i++) {
      if (i > 100) throw new Error('the driver never applied the Deployments');
      await sleep(100);
      const r = await env.kubectl(['get', 'deployments.apps', '-n', NS, '-o', 'json']);
      if (r.code === 0) deployments = (JSON.parse(r.stdout) as { items: DeploymentJson[] }).items;
    }
    const ca = weft.identity.running.ca!;
    const pods = await Promise.all(
      deployments.map(async (d, i) => {
        const t = d.spec.template;
        const isServer = t.metadata.labels.app === 'echo';
        const hash = randomBytes(5).toString('hex');
        const name = `${d.metadata.name}-${hash}-${randomBytes(3).toString('hex').slice(0, 5)}`;
        // grpc-js-xds binds a server's port on every interface, so on one machine each server
        // pod needs its own port numbers; on a cluster they all use the template's 8081 and 8082.
        const ports = new Map<string, number>();
        for (const p of t.spec.containers[0]!.ports ?? []) {
          if (isServer) ports.set(p.name, await freePort());
        }
        const pod = {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: {
            name,
            namespace: NS,
            labels: { ...t.metadata.labels, 'pod-template-hash': hash },
            annotations: t.metadata.annotations ?? {},
          },
          spec: {
            ...t.spec,
            containers: t.spec.containers.map((c) => ({
              ...c,
              ...(c.ports
                ? {
                    ports: c.ports.map((p) => ({
                      ...p,
                      containerPort: ports.get(p.name) ?? p.containerPort,
                    })),
                  }
                : {}),
            })),
          },
        };
        const stored = JSON.parse(
          await kubectl(['create', '-o', 'json', '-f', '-'], JSON.stringify(pod)),
        ) as PodJson;
        const agent = stored.spec.initContainers?.find((c) => c.name === INJECTED.agent);
        assert.ok(agent, `${name} was not injected`);
        assert.ok(
          agent.args?.includes('--xds-relay') && agent.args.includes(GRPC_RELAY_ADDRESS),
          'no xDS relay',
        );
        const ip = `127.${NET}.0.${11 + i}`;
        await kubectl([
          'patch',
          'pod',
          name,
          '-n',
          NS,
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify({
            status: {
              phase: 'Running',
              podIP: ip,
              podIPs: [{ ip }],
              conditions: [{ type: 'Ready', status: 'True' }],
            },
          }),
        ]);
        podNames.set(d.metadata.name, name);
        return { d, name, ip, ports, isServer };
      }),
    );
    // Then what runs in each pod: its agent with the pod's ServiceAccount token, and the workload.
    await Promise.all(
      pods.map(async ({ d, name, ip, ports, isServer }) => {
        const t = d.spec.template;
        const token = (
          await kubectl(['create', 'token', t.spec.serviceAccountName, '-n', NS, '--audience', 'weft'])
        ).trim();
        const sidecar = await startSidecar({
          dir: join(tmp, name),
          nodeId: `${NS}/${name}`,
          token,
          caTarget: `127.0.0.1:${weft.identity.certificatePort}`,
          xdsTarget: `127.0.0.1:${weft.port}`,
          bootstrapBundlePem: ca.bundlePem(),
          trustDomain: 'cluster.local',
        });
        sidecars.push(sidecar);
        if (!isServer) {
          controls.push(
            await startCallerControl({
              bootstrap: sidecar.bootstrap,
              namespace: NS,
              credentials: xdsChannelCredentials(),
              listen: `127.0.0.1:${controlPorts.get(d.metadata.name)}`,
            }),
          );
          return;
        }
        for (const port of ports.values()) {
          servers.push(
            await startEchoServer({
              name: d.metadata.name,
              address: `${ip}:${port}`,
              bootstrap: sidecar.bootstrap,
              credentials: xdsServerCredentials(),
            }),
          );
        }
      }),
    );
  }

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'weft-cluster-driver-test-'));
    env = await startKubeEnv();
    await kubectl(['apply', '-f', '-'], allCrdsYaml());
    await kubectl([...WAIT_FOR_WEFT_CRDS]);
    await kubectl(['create', 'namespace', 'weft-system']);
    // Weft's own ServiceAccount, as the install makes it: the driver's CSDS certificate is issued
    // from one of its tokens.
    await kubectl(['create', 'serviceaccount', 'weft', '-n', 'weft-system']);
    // What the chart's ClusterRole gives Weft's account and the driver relies on: listing pods
    // everywhere, which Weft checks before it shows the driver its debug views.
    await kubectl(['create', 'clusterrole', 'weft-lists-pods', '--verb=list', '--resource=pods']);
    await kubectl([
      'create',
      'clusterrolebinding',
      'weft-lists-pods',
      '--clusterrole=weft-lists-pods',
      '--serviceaccount=weft-system:weft',
    ]);
    const webhookPort = await freePort();
    await kubectl(['apply', '-f', '-'], injectorWebhookByUrl(`https://127.0.0.1:${webhookPort}/inject`));
    weft = await startKubeServe({
      kubeconfig: env.kubeconfigPath,
      replica: 'weft-a',
      xdsAddress: '127.0.0.1:0',
      caAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
      trustDomain: 'cluster.local',
      webhookAddress: `127.0.0.1:${webhookPort}`,
      webhookIpAddresses: ['127.0.0.1'],
      injector: { weftImage: 'ghcr.io/weft-mesh/weft:test', proxyImage: 'envoyproxy/envoy:v1.40.0' },
      quietMs: 50,
      maxDelayMs: 300,
      leaseSeconds: 5,
      leaseRetryMs: 500,
    });
    suite = loadSuite(join(ROOT, 'e2e', 'scenarios'), ['access/default-deny', 'split/two-backends']);
    const controlPorts = new Map<string, number>();
    for (const c of suite.workloads.clients) controlPorts.set(c.name, await freePort());
    driver = new ClusterDriver({
      kubectl: join(env.binDir, 'kubectl'),
      kubeconfig: env.kubeconfigPath,
      readyTimeoutMs: 30_000,
      // A slow call on a shared 2-core machine is load, not Weft.
      callDeadlineMs: 5000,
      progress: (line) => progress.push(line),
      transport: new DirectTransport({
        callers: Object.fromEntries([...controlPorts].map(([c, p]) => [c, `http://127.0.0.1:${p}`])),
        adminUrl: weft.adminUrl!,
        xdsTargets: [`127.0.0.1:${weft.port}`],
        caTarget: `127.0.0.1:${weft.identity.certificatePort}`,
      }),
    });
    const starting = driver.start(suite.workloads);
    // The API server sees the webhook's new caBundle on its own schedule; the pods must be
    // created only once the injector is called, as on a cluster where Weft is installed first.
    const probe = JSON.stringify({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'probe', namespace: NS },
      spec: { serviceAccountName: 'caller', containers: [{ name: 'c', image: 'x' }] },
    });
    for (let i = 0; ; i++) {
      const r = await env.kubectl(['create', '--dry-run=server', '-o', 'json', '-f', '-'], probe);
      if (r.code === 0 && (JSON.parse(r.stdout) as PodJson).spec.initContainers?.length) break;
      if (i > 150) throw new Error(`the injector is never called: ${r.stderr}`);
      await sleep(200);
    }
    await Promise.all([starting, beTheKubelet(controlPorts)]);
  });

  after(async () => {
    await driver?.stop();
    for (const c of controls) await c.stop();
    for (const s of servers) await s.stop();
    for (const s of sidecars) await s.stop();
    await weft?.stop();
    await env?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('deploys e2e/cluster/workloads.yaml with server-side apply and waits for every pod', async () => {
    const list = JSON.parse(
      await kubectl(['get', 'deployments.apps', '-n', NS, '-o', 'json', '--show-managed-fields']),
    ) as {
      items: { metadata: { name: string; managedFields?: { manager: string; operation: string }[] } }[];
    };
    assert.deepEqual(list.items.map((d) => d.metadata.name).sort(), [
      'caller',
      'echo-v1',
      'echo-v2',
      'echo-v3',
      'stranger',
    ]);
    for (const d of list.items) {
      assert.ok(
        d.metadata.managedFields?.some((f) => f.manager === 'weft-conformance' && f.operation === 'Apply'),
        `${d.metadata.name} was not server-side applied by weft-conformance`,
      );
    }
    assert.ok(
      progress.some((l) => l.startsWith('waiting for workloads:')),
      progress.join('\n'),
    );
    assert.equal(progress.at(-1), 'workloads ready');
  });

  it('runs scenarios to a pass: deny by default, a TrafficTarget, a 50/50 split', async (t) => {
    const report = await runSuite(driver, suite, { withinFactor: 4 });
    t.diagnostic(`${report.passed} passed, ${report.failed} failed in ${report.durationMs} ms`);
    assert.equal(report.driver, 'cluster');
    for (const s of report.scenarios) {
      const failed = s.assertions.filter((a) => !a.passed);
      assert.ok(
        s.passed,
        `${s.id}${s.error ? `: ${s.error}` : ''}\n${failed.map((a) => `${a.name}: ${a.expected}; got ${a.got}`).join('\n')}`,
      );
    }
    assert.equal(report.failed, 0);
    assert.equal(report.passed, 7);
  });

  it('fails a wrong expectation, with CSDS config keyed by the scenario node ids; reads conditions', async () => {
    // A scenarios folder of two: one expectation that cannot hold (caller is allowed), one
    // config expectation Weft must meet (a split whose root Service does not exist).
    const dir = join(tmp, 'scenarios');
    mkdirSync(join(dir, 'access'), { recursive: true });
    mkdirSync(join(dir, 'split'), { recursive: true });
    copyFileSync(join(ROOT, 'e2e', 'scenarios', 'workloads.yaml'), join(dir, 'workloads.yaml'));
    writeFileSync(
      join(dir, 'access', 'wrong.yaml'),
      `name: wrong on purpose
description: caller is allowed, but this scenario says denied.
steps:
  - apply: { file: ${join(ROOT, 'e2e', 'scenarios', 'common', 'allow-caller.yaml')} }
  - expect: { from: caller, to: echo, calls: 5, denied: true, within: 1s }
`,
    );
    writeFileSync(
      join(dir, 'split', 'no-root.yaml'),
      `name: a split of a missing root service
description: Weft reports RootServiceNotFound.
steps:
  - apply:
      apiVersion: split.smi-spec.io/v1alpha4
      kind: TrafficSplit
      metadata: { name: no-root }
      spec: { service: nope, backends: [{ service: echo-v1, weight: 1 }] }
  - expectConditions: { object: TrafficSplit/no-root, expect: { reason: RootServiceNotFound } }
`,
    );
    const report = await runSuite(driver, loadSuite(dir));
    const wrong = report.scenarios.find((s) => s.id === 'access/wrong')!;
    assert.equal(wrong.passed, false);
    const a = wrong.assertions[0]!;
    assert.match(a.got, /echo-v1: 5 \(100\.0%\)/);
    const config = a.config ?? {};
    // The proxies had pod-generated node ids; the report names them as the scenario does.
    assert.deepEqual(Object.keys(config).sort(), [`${NS}/caller`, `${NS}/echo-v1`]);
    for (const resources of Object.values(config)) {
      assert.ok(resources.length > 0);
      assert.ok(
        resources.some((r) => r.clientStatus === 'ACKED'),
        JSON.stringify(resources).slice(0, 300),
      );
    }
    const noRoot = report.scenarios.find((s) => s.id === 'split/no-root')!;
    assert.ok(noRoot.passed, JSON.stringify(noRoot.assertions));
    assert.equal(report.failed, 1);
  });

  it('maps node ids to the pods it found by Deployment labels', async () => {
    // Servers keep their xDS stream open (callers only while a channel is).
    const configs = await driver.proxyConfig([`${NS}/echo-v2`, `${NS}/no-such-workload`]);
    assert.deepEqual(Object.keys(configs), [`${NS}/echo-v2`]);
    assert.ok(configs[`${NS}/echo-v2`]!.some((r) => r.clientStatus === 'ACKED'));
    assert.equal(podNames.size, 5);
  });

  it('applies and deletes through kubectl on the API server', async () => {
    const tt = {
      apiVersion: 'access.smi-spec.io/v1alpha3',
      kind: 'TrafficTarget',
      metadata: { name: 'driver-check', namespace: NS },
      spec: {
        destination: { kind: 'ServiceAccount', name: 'echo', namespace: NS },
        rules: [{ kind: 'TCPRoute', name: 'grpc-port' }],
        sources: [{ kind: 'ServiceAccount', name: 'caller', namespace: NS }],
      },
    };
    await driver.apply([tt]);
    assert.match(await kubectl(['get', 'traffictargets', '-n', NS, '-o', 'name']), /driver-check/);
    await driver.delete([tt]);
    assert.doesNotMatch(await kubectl(['get', 'traffictargets', '-n', NS, '-o', 'name']), /driver-check/);
    await driver.delete([tt]); // already gone: not an error
  });

  it('stop deletes the workloads it deployed', async () => {
    await driver.stop();
    const r = await env.kubectl(['get', 'deployments.apps', '-n', NS, '-o', 'name']);
    assert.equal(r.stdout.trim(), '', r.stderr);
    assert.equal(progress.at(-1), 'deleting the workloads');
  });
});
