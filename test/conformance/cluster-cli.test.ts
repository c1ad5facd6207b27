/**
 * The cluster driver's parts that need no cluster: reading `kubectl port-forward`'s output, the
 * manifests with `--image`, and `weft conformance --driver` refusing what it cannot run with exit
 * status 2 and a message instead of a stack.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { clusterManifests, parseForwardedPorts } from '../../src/conformance/cluster-driver';
import { loadWorkloads } from '../../src/conformance/schema';

const ROOT = join(__dirname, '..', '..', '..');
const weft = (...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'bin', 'weft.js'), 'conformance', ...args], {
    encoding: 'utf8',
    timeout: 30_000,
  });

describe('cluster driver without a cluster', () => {
  it("reads the local ports from kubectl port-forward's output", () => {
    const out =
      'Forwarding from 127.0.0.1:39215 -> 15014\nForwarding from 127.0.0.1:41873 -> 15012\nHandling connection for 39215\n';
    assert.deepEqual(
      [...parseForwardedPorts(out)],
      [
        [15014, 39215],
        [15012, 41873],
      ],
    );
    // IPv6 lines (kubectl without --address) are not used.
    assert.equal(parseForwardedPorts('Forwarding from [::1]:39215 -> 8080\n').size, 0);
  });

  it('sets --image on every workload and checks the manifests deploy every scenario workload', () => {
    const text = readFileSync(join(ROOT, 'e2e', 'cluster', 'workloads.yaml'), 'utf8');
    const w = loadWorkloads(join(ROOT, 'e2e', 'scenarios', 'workloads.yaml'));
    const objects = clusterManifests(text, 'registry.example/weft-echo:1', w) as {
      kind: string;
      spec?: { template?: { spec: { containers: { image: string }[] } } };
    }[];
    const images = objects
      .filter((o) => o.kind === 'Deployment')
      .flatMap((o) => o.spec!.template!.spec.containers.map((c) => c.image));
    assert.equal(images.length, 5);
    assert.ok(images.every((i) => i === 'registry.example/weft-echo:1'));
    assert.throws(
      () =>
        clusterManifests(text, 'x', {
          ...w,
          clients: [...w.clients, { name: 'other', serviceAccount: 'x' }],
        }),
      /no Deployment in namespace conformance for workload\(s\) other/,
    );
  });

  it('on the Envoy flavor, deploys the same workloads as plain gRPC apps for the injected Envoy', () => {
    const text = readFileSync(join(ROOT, 'e2e', 'cluster', 'workloads.yaml'), 'utf8');
    const w = loadWorkloads(join(ROOT, 'e2e', 'scenarios', 'workloads.yaml'));
    type D = {
      kind: string;
      metadata: { name: string };
      spec: {
        template: {
          metadata: { annotations?: Record<string, string> };
          spec: { containers: { env: { name: string; value?: string }[] }[] };
        };
      };
    };
    const deployments = (flavor: 'grpc' | 'envoy') =>
      (clusterManifests(text, 'img', w, flavor) as unknown as D[]).filter((o) => o.kind === 'Deployment');
    const grpc = deployments('grpc');
    const envoy = deployments('envoy');
    assert.deepEqual(
      envoy.map((d) => d.metadata.name),
      grpc.map((d) => d.metadata.name),
    );
    for (const [g, e] of grpc.map((d, i) => [d, envoy[i]!] as const)) {
      assert.equal(g.spec.template.metadata.annotations?.['weft.dev/flavor'], 'grpc');
      assert.equal(e.spec.template.metadata.annotations?.['weft.dev/flavor'], undefined, e.metadata.name);
      const names = e.spec.template.spec.containers[0]!.env.map((x) => x.name);
      assert.ok(!names.includes('XDS_SERVER') && !names.includes('WEFT_CERT_DIR'), e.metadata.name);
      assert.ok(
        e.spec.template.spec.containers[0]!.env.some((x) => x.name === 'WEFT_FLAVOR' && x.value === 'envoy'),
      );
    }
  });

  it('weft conformance: an unknown driver and a cluster driver that cannot start exit 2 with a message', () => {
    const unknown = weft('--driver', 'docker');
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /unknown driver "docker"; use local or cluster/);
    const noKubectl = weft(
      '--driver',
      'cluster',
      '--kubectl',
      '/nonexistent/kubectl',
      '--only',
      'default-deny',
    );
    assert.equal(noKubectl.status, 2, noKubectl.stderr);
    // The default flavor is both: the first, grpc, is the one that could not start.
    assert.match(
      noKubectl.stderr,
      /the cluster driver \(grpc flavor\) cannot start: cannot run \/nonexistent\/kubectl/,
    );
    assert.doesNotMatch(noKubectl.stderr, /\n\s+at /, 'no stack trace');
  });

  it('weft conformance --help explains each cluster flag', () => {
    const help = weft('--help').stdout;
    for (const flag of [
      '--driver',
      '--kubeconfig',
      '--context',
      '--kubectl',
      '--image',
      '--weft-namespace',
    ]) {
      assert.ok(help.includes(flag), flag);
    }
    assert.match(help.replace(/\s+/g, ' '), /weft install --apply/);
  });
});
