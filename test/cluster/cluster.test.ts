/**
 * The cluster tier: a real single-node cluster (test/cluster/node.ts) running pods from the
 * images built here (test/cluster/images.ts). This file checks the cluster itself, before Weft is
 * on it: a pod from a Deployment runs, a Service's ClusterIP reaches it from another pod,
 * `kubectl logs` and `kubectl exec` work. Needs root, containerd, runc, the CNI plugins and the
 * node binaries; says which is missing when skipped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { findEnvoy, NO_ENVOY } from '../../src/envoy/binary';
import { runProcess } from '../../src/process';
import { kubeBinDir } from '../kube/env';
import { buildImages, dockerfileFinalStage, type ImageNames, WEFT_APP_PATHS } from './images';
import { type Cluster, clusterUnavailable, startCluster } from './node';

const ROOT = join(__dirname, '..', '..', '..');
const envoy = findEnvoy();
const skip = clusterUnavailable() ?? (envoy ? undefined : NO_ENVOY);

/** The meshed server: answers with its pod's name and the client certificate its sidecar saw. */
const MESH_SERVER = `require('http').createServer((q, s) => s.end(JSON.stringify({ host: require('os').hostname(), xfcc: q.headers['x-forwarded-client-cert'] }))).listen(8080)`;

/** A tiny HTTP server the pods run (node is in every image but pause). */
const SERVER = `require('http').createServer((q, s) => { console.log('served ' + q.url); s.end(require('os').hostname()); }).listen(8080)`;

describe('cluster tier: the images', () => {
  it("Weft's image follows the Dockerfile's last stage", () => {
    const stage = dockerfileFinalStage(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
    assert.deepEqual(stage.entrypoint, ['weft']);
    assert.equal(stage.user, '65532:65532');
    for (const dest of stage.copies) {
      assert.ok(
        ['/usr/local/bin/envoy', 'node_modules', './', ...WEFT_APP_PATHS].includes(dest),
        `the Dockerfile copies to ${dest}, which images.ts does not provide`,
      );
    }
  });
});

describe('cluster tier: a real node', { skip }, () => {
  let cluster: Cluster;
  let names: ImageNames;
  let work: string;
  const kubectl = async (args: string[], input?: string): Promise<string> => {
    const r = await cluster.kubectl(args, input);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  /** Runs this checkout's `weft` as a user would. */
  const weft = (args: string[]) => runProcess(process.execPath, [join(ROOT, 'bin', 'weft.js'), ...args]);

  /** Each Weft replica's working set, from kubelet's summary API (cAdvisor). */
  const weftMemory = async (): Promise<string> => {
    // Only CPU and memory, as metrics-server asks: the node's root file system (a virtual disk
    // here) has no stats cAdvisor can read, which fails the full summary.
    const r = await cluster.kubectl([
      'get',
      '--raw',
      '/api/v1/nodes/weft-node/proxy/stats/summary?only_cpu_and_memory=true',
    ]);
    if (r.code !== 0) return `unavailable (${r.stderr.trim()})`;
    const summary = JSON.parse(r.stdout) as {
      pods: {
        podRef: { name: string; namespace: string };
        containers?: { name: string; memory?: { workingSetBytes?: number } }[];
      }[];
    };
    return summary.pods
      .filter((p) => p.podRef.namespace === 'weft-system')
      .map((p) => {
        const bytes = p.containers?.find((c) => c.name === 'weft')?.memory?.workingSetBytes ?? 0;
        return `${p.podRef.name} ${(bytes / 2 ** 20).toFixed(0)} MiB`;
      })
      .join(', ');
  };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'weft-images-'));
    const t0 = Date.now();
    const built = buildImages({
      repo: ROOT,
      work,
      envoy: envoy!,
      pause: join(kubeBinDir(), 'pause'),
    });
    names = built.names;
    const t1 = Date.now();
    cluster = await startCluster({
      imageArchive: built.archive,
      pauseImage: names.pause,
      progress: (l) => console.log(`# cluster: ${l}`),
    });
    console.log(
      `# images built in ${((t1 - t0) / 1000).toFixed(1)} s; node Ready ${((Date.now() - t1) / 1000).toFixed(1)} s later`,
    );
  });

  after(async () => {
    await cluster?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('runs a Deployment, reaches it through its ClusterIP from another pod, with logs and exec', async () => {
    const ns = 'plain';
    await kubectl(['create', 'namespace', ns]);
    const manifests = [
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: ns },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: {
              containers: [
                {
                  name: 'web',
                  image: names.weft,
                  imagePullPolicy: 'IfNotPresent',
                  command: ['node', '-e', SERVER],
                  ports: [{ containerPort: 8080 }],
                  readinessProbe: { httpGet: { port: 8080, path: '/ready' }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web', namespace: ns },
        spec: { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'client', namespace: ns },
        spec: {
          containers: [
            {
              name: 'client',
              image: names.weft,
              imagePullPolicy: 'IfNotPresent',
              command: ['sleep', 'infinity'],
            },
          ],
        },
      },
    ];
    await kubectl(['apply', '-f', '-'], manifests.map((m) => JSON.stringify(m)).join('\n'));
    await kubectl(['-n', ns, 'rollout', 'status', 'deployment/web', '--timeout=120s']);
    await kubectl(['-n', ns, 'wait', '--for=condition=Ready', 'pod/client', '--timeout=120s']);
    const clusterIp = (
      await kubectl(['-n', ns, 'get', 'service', 'web', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    assert.match(clusterIp, /^10\.221\./);
    const webPod = (
      await kubectl(['-n', ns, 'get', 'pods', '-l', 'app=web', '-o', 'jsonpath={.items[0].metadata.name}'])
    ).trim();
    // From the client pod, through kube-proxy's rules, to the web pod. kube-proxy writes its rules
    // a moment after the endpoints are ready (until then the ClusterIP refuses connections), so the
    // call is repeated until it answers, within a generous bound.
    const call = [
      '-n',
      ns,
      'exec',
      'client',
      '--',
      'node',
      '-e',
      `fetch('http://${clusterIp}/hello').then(r => r.text()).then(t => console.log(t))`,
    ];
    let got = '';
    for (const end = Date.now() + 60_000; Date.now() < end; ) {
      const r = await cluster.kubectl(call);
      if (r.code === 0) {
        got = r.stdout;
        break;
      }
      assert.match(r.stderr, /ECONNREFUSED/, 'only a ClusterIP kube-proxy has not programmed yet may fail');
      await new Promise((res) => setTimeout(res, 500));
    }
    assert.equal(got.trim(), webPod);
    const logs = await kubectl(['-n', ns, 'logs', webPod]);
    assert.match(logs, /served \/hello/);
  });

  it('installs Weft with `weft install --apply --wait`, injects a Deployment and calls through the mesh', async () => {
    const t0 = Date.now();
    const install = await weft([
      'install',
      '--apply',
      '--wait',
      '--timeout',
      '4m',
      '--kubeconfig',
      cluster.kubeconfigPath,
    ]);
    assert.equal(install.code, 0, `weft install --apply --wait:\n${install.stdout}\n${install.stderr}`);
    console.log(`# weft install --apply --wait: ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const ns = 'meshed';
    const objects = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { 'weft.dev/mesh': 'enabled' } } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'server', namespace: ns } },
      { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'client', namespace: ns } },
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'server', namespace: ns },
        spec: { selector: { app: 'server' }, ports: [{ name: 'http', port: 8080, appProtocol: 'http' }] },
      },
      {
        apiVersion: 'specs.smi-spec.io/v1alpha4',
        kind: 'HTTPRouteGroup',
        metadata: { name: 'all', namespace: ns },
        spec: { matches: [{ name: 'everything', pathRegex: '/.*', methods: ['*'] }] },
      },
      {
        apiVersion: 'access.smi-spec.io/v1alpha3',
        kind: 'TrafficTarget',
        metadata: { name: 'client-to-server', namespace: ns },
        spec: {
          destination: { kind: 'ServiceAccount', name: 'server', namespace: ns },
          rules: [{ kind: 'HTTPRouteGroup', name: 'all' }],
          sources: [{ kind: 'ServiceAccount', name: 'client', namespace: ns }],
        },
      },
    ];
    await kubectl(['apply', '-f', '-'], objects.map((o) => JSON.stringify(o)).join('\n'));
    const deployment = (name: string, command: string[], port?: number) => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ns },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels: { app: name } },
          spec: {
            serviceAccountName: name,
            containers: [
              {
                name,
                image: names.weft,
                imagePullPolicy: 'IfNotPresent',
                command,
                ...(port ? { ports: [{ name: 'http', containerPort: port }] } : {}),
              },
            ],
          },
        },
      },
    });
    // The client calls the server by its Service name every 200 ms and logs each outcome with the
    // time: the first success is the first call through both sidecars.
    const client = `const t = setInterval(() => fetch('http://server:8080/').then(r => r.text().then(b => console.log(r.status === 200 ? 'ok' : 'status ' + r.status, Date.now(), b))).catch(e => console.log('fail', Date.now(), e.cause?.code ?? e.message)), 200)`;
    const applied = Date.now();
    await kubectl(
      ['apply', '-f', '-'],
      [deployment('server', ['node', '-e', MESH_SERVER], 8080), deployment('client', ['node', '-e', client])]
        .map((o) => JSON.stringify(o))
        .join('\n'),
    );
    await kubectl([
      '-n',
      ns,
      'rollout',
      'status',
      'deployment/server',
      'deployment/client',
      '--timeout=180s',
    ]);
    // The pods as stored: injected by Weft's webhook, which the API server called.
    const pod = JSON.parse(await kubectl(['-n', ns, 'get', 'pods', '-l', 'app=server', '-o', 'json'])) as {
      items: { spec: { initContainers?: { name: string; image: string; restartPolicy?: string }[] } }[];
    };
    const inits = pod.items[0]?.spec.initContainers ?? [];
    assert.deepEqual(
      inits.map((c) => [c.name, c.restartPolicy ?? '']),
      [
        ['weft-capture', ''],
        ['weft-agent', 'Always'],
        ['weft-proxy', 'Always'],
      ],
    );
    let first: { at: number; body: string } | undefined;
    for (const end = Date.now() + 120_000; !first && Date.now() < end; ) {
      const logs = await cluster.kubectl(['-n', ns, 'logs', 'deployment/client', '-c', 'client']);
      const line = logs.stdout.split('\n').find((l) => l.startsWith('ok '));
      if (line) {
        const [, at, ...body] = line.split(' ');
        first = { at: Number(at), body: body.join(' ') };
      } else await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(first, 'no call from client reached server through the mesh within 2 minutes');
    // The server's sidecar terminated mTLS and named the caller's SPIFFE ID.
    const seen = JSON.parse(first.body) as { host: string; xfcc?: string };
    assert.match(seen.xfcc ?? '', new RegExp(`URI=spiffe://cluster\\.local/ns/${ns}/sa/client`));
    console.log(`# Weft's memory with the meshed pair: ${await weftMemory()}`);
    console.log(
      `# kubectl apply of the Deployments -> first call through the mesh: ${((first.at - applied) / 1000).toFixed(1)} s`,
    );
  });

  it('publishes the trust bundle again into a mesh namespace deleted and created again', async () => {
    // Injected agents mount weft-ca-bundle; it goes when its namespace is deleted. Weft used to
    // remember having written it and never wrote it again, so every pod of a namespace created
    // again under the same name (as each `weft conformance --driver cluster` run does) hung in
    // ContainerCreating.
    const ns = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'again', labels: { 'weft.dev/mesh': 'enabled' } },
    };
    const bundleAppears = async (): Promise<void> => {
      for (const end = Date.now() + 60_000; Date.now() < end; ) {
        if ((await cluster.kubectl(['-n', 'again', 'get', 'configmap', 'weft-ca-bundle'])).code === 0) return;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.fail('weft-ca-bundle was not published into namespace again within 60 s');
    };
    await kubectl(['create', '-f', '-'], JSON.stringify(ns));
    await bundleAppears();
    await kubectl(['delete', 'namespace', 'again', '--timeout=120s']);
    await kubectl(['create', '-f', '-'], JSON.stringify(ns));
    await bundleAppears();
  });

  it('passes the SMI conformance suite with `weft conformance --driver cluster` on both flavors', async () => {
    const report = join(work, 'conformance-report.json');
    const t0 = Date.now();
    const r = await weft([
      'conformance',
      '--driver',
      'cluster',
      '--flavor',
      'both',
      '--kubeconfig',
      cluster.kubeconfigPath,
      '--kubectl',
      join(cluster.binDir, 'kubectl'),
      '--image',
      names.echo,
      '--report',
      report,
      // Left running, so that Weft's memory is measured with them connected; the node goes anyway.
      '--keep-workloads',
    ]);
    const summary = r.stdout.split('\n').filter((l) => /passed|convergence|median/i.test(l));
    for (const l of summary) console.log(`# conformance: ${l.trim()}`);
    console.log(`# conformance --driver cluster: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    // What failed, with what was expected and what came back (the CSDS dumps are left out).
    const failures = `${r.stderr}\n${r.stdout}`
      .split('\n')
      .filter((l) => /^FAIL |expected:|got:|cannot start|^\S.*(passed|failed)/.test(l.trim()))
      .join('\n');
    assert.equal(r.code, 0, `weft conformance --driver cluster failed:\n${failures.slice(-8000)}`);
    // Each flavor's own summary line, then the closing line over both.
    assert.match(r.stdout, /^grpc: [1-9]\d* passed, 0 failed/m);
    assert.match(r.stdout, /^envoy: [1-9]\d* passed, 0 failed/m);
    assert.match(r.stdout, /^[1-9]\d* passed, 0 failed$/m);
    // Figures for the README, never asserted: split scenarios' convergence, and Weft's memory.
    const parsed = JSON.parse(readFileSync(report, 'utf8')) as {
      scenarios: { api: string; flavor: string; assertions: { convergedMs?: number }[] }[];
    };
    for (const flavor of ['grpc', 'envoy']) {
      const split = parsed.scenarios
        .filter((x) => x.api === 'split' && x.flavor === flavor)
        .flatMap((x) => x.assertions.flatMap((a) => (a.convergedMs === undefined ? [] : [a.convergedMs])))
        .sort((a, b) => a - b);
      const q = (f: number) => split[Math.min(split.length - 1, Math.floor(f * split.length))];
      console.log(
        `# split convergence in the cluster (${flavor}): median ${q(0.5)} ms, p90 ${q(0.9)} ms, max ${q(1)} ms (${split.length} changes)`,
      );
    }
    console.log(`# Weft's memory with the conformance workloads and the meshed pair: ${await weftMemory()}`);
  });
});
