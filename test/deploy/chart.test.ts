/**
 * The Helm chart without a cluster: helm lint, the checked-in plain manifests equal to what the
 * chart renders, every `weft serve` flag the Deployment passes known to the CLI, and every value
 * documented.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { servedVersions } from '../../src/smi/normalize';
import { CHART, helmBin, helmTemplate, MANIFESTS, ROOT, run, weft } from './helm';

interface Container {
  name: string;
  args?: string[];
}

function deploymentArgs(text: string): string[] {
  const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind?: string; spec?: unknown } | null);
  const dep = docs.find((d) => d?.kind === 'Deployment') as
    | { spec: { template: { spec: { containers: Container[] } } } }
    | undefined;
  assert.ok(dep, 'the manifests hold a Deployment');
  const weftContainer = dep.spec.template.spec.containers.find((c) => c.name === 'weft');
  assert.ok(weftContainer?.args, 'the Deployment has a weft container with args');
  return weftContainer.args;
}

describe('deploy/helm/weft', () => {
  it('passes helm lint --strict', async () => {
    const r = await run(helmBin(), ['lint', CHART, '--strict', '--namespace', 'weft-system']);
    assert.equal(r.code, 0, `helm lint failed:\n${r.stdout}${r.stderr}`);
    assert.match(r.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('renders exactly deploy/manifests/weft.yaml with default values (run scripts/render-deploy.sh after changing the chart)', async () => {
    const file = readFileSync(MANIFESTS, 'utf8');
    // The file is a two-line comment header, then helm's output unchanged.
    const body = file.slice(file.indexOf('---\n'));
    assert.equal(body, await helmTemplate());
  });

  it('is what `weft install` prints', async () => {
    const r = await weft(['install']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, readFileSync(MANIFESTS, 'utf8'));
    const needsApply = await weft(['install', '--kubeconfig', 'kubeconfig']);
    assert.equal(needsApply.code, 1);
    assert.match(needsApply.stderr, /--kubeconfig needs --apply/);
  });

  it('keeps the chart version and appVersion at the package version', () => {
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as {
      version: string;
      appVersion: string;
    };
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(chart.appVersion, pkg.version);
    assert.equal(chart.version, pkg.version);
  });

  it('passes Weft only flags `weft serve --help` lists', async () => {
    const help = await weft(['serve', '--help']);
    assert.equal(help.code, 0, help.stderr);
    // An option line of commander's help starts with two spaces and the flags, then two or more
    // spaces and the text ("  -h, --help  display help"); wrapped text lines start further in.
    const known = new Set(
      help.stdout
        .split('\n')
        .filter((l) => /^ {2}-/.test(l))
        .flatMap((l) =>
          [
            ...l
              .trim()
              .split(/\s{2,}/)[0]!
              .matchAll(/--[a-z0-9-]+/g),
          ].map((m) => m[0]),
        ),
    );
    assert.ok(known.has('--kubernetes'), `parsed the help's options: ${[...known].join(' ')}`);
    const args = deploymentArgs(readFileSync(MANIFESTS, 'utf8'));
    assert.equal(args[0], 'serve');
    const unknown = args.filter((a) => a.startsWith('--') && !known.has(a.split('=')[0]!));
    assert.deepEqual(unknown, [], `weft serve does not know ${unknown.join(', ')}`);
    // Every address flag binds all interfaces: the Service must reach it.
    for (const flag of ['--xds-address', '--ca-address', '--admin-address', '--webhook-address'])
      assert.match(args[args.indexOf(flag) + 1] ?? '', /^0\.0\.0\.0:\d+$/, flag);
  });

  it('documents every value in its README', () => {
    const values = parse(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Record<string, unknown>;
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
    const missing: string[] = [];
    // A value is documented as `path`; an undocumented map is fine when each of its keys is.
    const check = (path: string, v: unknown): void => {
      if (readme.includes(`\`${path}\``)) return;
      if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length > 0) {
        for (const [k, child] of Object.entries(v)) check(`${path}.${k}`, child);
      } else missing.push(path);
    };
    for (const [k, v] of Object.entries(values)) check(k, v);
    assert.deepEqual(missing, [], `values missing from deploy/helm/weft/README.md: ${missing.join(', ')}`);
  });

  it('renders its optional parts when values turn them on', async () => {
    const text = await helmTemplate([
      '--set',
      'podDisruptionBudget.enabled=false,mesh.create=false,image.tag=dev,priorityClassName=weft-critical',
      '--set',
      'extraArgs[0]=--no-mtls,imagePullSecrets[0].name=pull,nodeSelector.pool=system',
    ]);
    const kinds = parseAllDocuments(text).map((d) => (d.toJS() as { kind?: string } | null)?.kind);
    assert.ok(!kinds.includes('PodDisruptionBudget'));
    assert.ok(!kinds.includes('MeshConfig'));
    assert.match(text, /image: ghcr\.io\/weft-mesh\/weft:dev/);
    assert.match(text, /priorityClassName: weft-critical/);
    assert.match(text, /imagePullSecrets:\n\s+- name: pull/);
    assert.equal(deploymentArgs(text).at(-1), '--no-mtls');
  });

  it('serves TrafficMetrics as an aggregated API by default, and can read them from Prometheus', async () => {
    const docs = parseAllDocuments(await helmTemplate([])).map(
      (d) =>
        d.toJS() as { kind?: string; metadata?: { name?: string }; spec?: Record<string, unknown> } | null,
    );
    const apis = docs.filter((d) => d?.kind === 'APIService');
    assert.deepEqual(
      apis.map((a) => a?.metadata?.name),
      ['v1alpha1.metrics.smi-spec.io', 'v1alpha2.metrics.smi-spec.io'],
    );
    assert.deepEqual(apis[0]?.spec?.service, { name: 'weft', namespace: 'weft-system', port: 8443 });
    assert.equal(apis[0]?.spec?.caBundle, undefined, 'Weft writes the caBundle itself');
    const text = await helmTemplate([]);
    const args = deploymentArgs(text);
    assert.equal(args[args.indexOf('--metrics-api-address') + 1], '0.0.0.0:8443');
    assert.ok(!args.includes('--prometheus-url'));
    const off = await helmTemplate([
      '--set',
      'trafficMetrics.apiService=false,trafficMetrics.prometheusUrl=http://prometheus.monitoring:9090',
    ]);
    assert.ok(!/kind: APIService/.test(off));
    const offArgs = deploymentArgs(off);
    assert.ok(!offArgs.includes('--metrics-api-address'));
    assert.equal(offArgs[offArgs.indexOf('--prometheus-url') + 1], 'http://prometheus.monitoring:9090');
  });

  it('lets each replica find the others to merge TrafficMetrics: Service, port, POD_IP and RBAC', async () => {
    type Obj = {
      kind?: string;
      metadata?: { name?: string; namespace?: string };
      spec?: Record<string, unknown>;
      rules?: { apiGroups?: string[]; resources?: string[]; verbs?: string[] }[];
      roleRef?: { kind: string; name: string };
      subjects?: { kind: string; name: string; namespace?: string }[];
    };
    const docs = parseAllDocuments(await helmTemplate([])).map((d) => d.toJS() as Obj | null);
    const svc = docs.find((d) => d?.kind === 'Service' && d.metadata?.name === 'weft');
    const dep = docs.find((d) => d?.kind === 'Deployment') as
      | {
          spec: {
            selector: { matchLabels: Record<string, string> };
            template: {
              metadata: { labels: Record<string, string> };
              spec: {
                containers: {
                  name: string;
                  ports: { name: string }[];
                  env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
                }[];
              };
            };
          };
        }
      | undefined;
    assert.ok(svc && dep);
    // The Service's endpoints are every replica: its selector picks the Deployment's pods.
    const selector = svc.spec?.selector as Record<string, string>;
    assert.deepEqual(selector, dep.spec.selector.matchLabels);
    for (const [k, v] of Object.entries(selector)) assert.equal(dep.spec.template.metadata.labels[k], v);
    const ports = svc.spec?.ports as { name: string; targetPort: string }[];
    assert.equal(ports.find((p) => p.name === 'metrics-api')?.targetPort, 'metrics-api');
    const c = dep.spec.template.spec.containers.find((x) => x.name === 'weft')!;
    assert.ok(c.ports.some((p) => p.name === 'metrics-api'));
    assert.equal(c.env.find((e) => e.name === 'POD_IP')?.valueFrom?.fieldRef?.fieldPath, 'status.podIP');
    // Listing EndpointSlices in weft-system, granted to Weft's ServiceAccount by some binding.
    const bound = docs.filter(
      (d) =>
        (d?.kind === 'ClusterRoleBinding' ||
          (d?.kind === 'RoleBinding' && d.metadata?.namespace === 'weft-system')) &&
        d.subjects?.some(
          (s) => s.kind === 'ServiceAccount' && s.name === 'weft' && s.namespace === 'weft-system',
        ),
    );
    const roles = bound.map((b) =>
      docs.find(
        (d) =>
          d?.kind === b!.roleRef!.kind &&
          d.metadata?.name === b!.roleRef!.name &&
          (d.kind === 'ClusterRole' || d.metadata?.namespace === 'weft-system'),
      ),
    );
    assert.ok(
      roles.some((r) =>
        r?.rules?.some(
          (x) =>
            x.apiGroups?.includes('discovery.k8s.io') &&
            x.resources?.includes('endpointslices') &&
            x.verbs?.includes('list') &&
            x.verbs.includes('watch'),
        ),
      ),
      "Weft's ServiceAccount may list and watch EndpointSlices in weft-system",
    );
  });

  it('validates SMI objects of mesh namespaces at every version Weft reads, failing open', async () => {
    const docs = parseAllDocuments(await helmTemplate([])).map(
      (d) => d.toJS() as { kind?: string; metadata?: { name?: string }; webhooks?: unknown[] } | null,
    );
    const cfg = docs.find(
      (d) => d?.kind === 'ValidatingWebhookConfiguration' && d.metadata?.name === 'weft-smi-validator',
    );
    const hook = cfg?.webhooks?.[0] as
      | {
          failurePolicy: string;
          timeoutSeconds: number;
          sideEffects: string;
          namespaceSelector: unknown;
          clientConfig: { service: { path: string } };
          rules: { apiGroups: string[]; apiVersions: string[]; resources: string[] }[];
        }
      | undefined;
    assert.ok(hook, 'the weft-smi-validator configuration is rendered');
    assert.equal(hook.failurePolicy, 'Ignore');
    assert.equal(hook.timeoutSeconds, 5);
    assert.equal(hook.sideEffects, 'None');
    assert.equal(hook.clientConfig.service.path, '/validate-smi');
    assert.deepEqual(hook.namespaceSelector, { matchLabels: { 'weft.dev/mesh': 'enabled' } });
    const served = new Map<string, string[]>();
    for (const r of hook.rules)
      for (const res of r.resources) served.set(res, [...(served.get(res) ?? []), ...r.apiVersions]);
    for (const [kind, plural] of [
      ['TrafficSplit', 'trafficsplits'],
      ['TrafficTarget', 'traffictargets'],
      ['HTTPRouteGroup', 'httproutegroups'],
      ['TCPRoute', 'tcproutes'],
      ['UDPRoute', 'udproutes'],
    ] as const) {
      for (const v of servedVersions(kind))
        assert.ok(served.get(plural)?.includes(v.split('/')[1]!), `${kind} ${v} is validated`);
    }
    const off = await helmTemplate(['--set', 'smiValidation.enabled=false,smiValidation.timeoutSeconds=9']);
    assert.doesNotMatch(off, /weft-smi-validator\n/);
    assert.doesNotMatch(off, /path: \/validate-smi/);
  });
});
