/**
 * SMI validation at `kubectl apply`, on a real kube-apiserver: Weft (Kubernetes mode, with
 * --webhook-address) writes its CA bundle into the `weft-smi-validator` configuration; an object
 * invalid in itself (a negative or fractional weight, an RE2-invalid regex, an IdentityBinding with
 * exclusive schemes) is refused with its condition's message, a split whose backend Service does
 * not exist yet is stored with a warning kubectl prints (and without one once the Service exists),
 * and with Weft down failurePolicy Ignore lets anything through.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { allCrdsYaml } from '../../src/crds/render';
import { SMI_WEBHOOK_CONFIGURATION } from '../../src/inject/webhook';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import {
  eventually,
  injectorWebhookByUrl,
  type KubeEnv,
  kubectlOk,
  patchValidatorByUrl,
  smiValidatorByUrl,
  startKubeEnv,
  validatingWebhookCaBundle,
  WAIT_FOR_WEFT_CRDS,
} from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

const NS = 'shop';

function service(name: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS },
    spec: { selector: { app: name }, ports: [{ name: 'http', port: 80 }] },
  });
}

function split(name: string, weights: readonly unknown[], apiVersion = 'split.smi-spec.io/v1alpha4'): string {
  return JSON.stringify({
    apiVersion,
    kind: 'TrafficSplit',
    metadata: { name, namespace: NS },
    spec: {
      service: 'web',
      backends: weights.map((weight, i) => ({ service: `web-v${i + 1}`, weight })),
    },
  });
}

/**
 * Weft's CRDs, but with the TrafficSplit weight left untyped at every version, as SMI CRDs of
 * other installs ship it: Weft's own CRDs have the API server refuse a negative or fractional
 * integer weight itself (before any webhook), so only the webhook stands between such a weight
 * and the mesh when the CRDs are looser.
 */
function looseSplitCrds(): string {
  const docs = parseAllDocuments(allCrdsYaml()).map((d) => d.toJS() as Record<string, unknown>);
  type Versions = {
    spec: {
      versions: {
        schema: {
          openAPIV3Schema: {
            properties: {
              spec: { properties: { backends: { items: { properties: { weight: unknown } } } } };
            };
          };
        };
      }[];
    };
  };
  for (const d of docs) {
    if ((d.metadata as { name?: string } | undefined)?.name !== 'trafficsplits.split.smi-spec.io') continue;
    for (const v of (d as unknown as Versions).spec.versions) {
      v.schema.openAPIV3Schema.properties.spec.properties.backends.items.properties.weight = {
        'x-kubernetes-preserve-unknown-fields': true,
      };
    }
  }
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: docs });
}

describe('SMI validation on a real kube-apiserver', () => {
  let env: KubeEnv;
  let weft: RunningKubeServe | undefined;

  const kubectl = (args: string[], input?: string): Promise<{ stdout: string; stderr: string }> =>
    kubectlOk(env, args, input);

  const refused = async (yaml: string, text: string): Promise<void> => {
    const r = await env.kubectl(['apply', '-f', '-'], yaml);
    assert.notEqual(r.code, 0, `stored: ${r.stdout}`);
    assert.match(r.stderr, /admission webhook "smi\.weft\.dev" denied the request/);
    assert.ok(r.stderr.includes(text), `${r.stderr}\n  should say: ${text}`);
    const name = (JSON.parse(yaml) as { metadata: { name: string } }).metadata.name;
    const kind = (JSON.parse(yaml) as { kind: string }).kind;
    assert.notEqual((await env.kubectl(['get', kind, name, '-n', NS])).code, 0, 'nothing was stored');
  };

  before(async () => {
    env = await startKubeEnv();
    await kubectl(['apply', '-f', '-'], looseSplitCrds());
    await kubectl([...WAIT_FOR_WEFT_CRDS]);
    await kubectl(['create', 'namespace', 'weft-system']);
    await kubectl(['create', 'namespace', NS]);
    await kubectl(['label', 'namespace', NS, 'weft.dev/mesh=enabled']);
    await kubectl(['apply', '-f', '-'], service('web'));
    await kubectl(['apply', '-f', '-'], service('web-v1'));
    const port = await freePort();
    await kubectl(['apply', '-f', '-'], injectorWebhookByUrl(`https://127.0.0.1:${port}/inject`));
    await kubectl(['apply', '-f', '-'], patchValidatorByUrl(`https://127.0.0.1:${port}/validate-envoypatch`));
    await kubectl(['apply', '-f', '-'], smiValidatorByUrl(`https://127.0.0.1:${port}/validate-smi`));
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
    // of a bad split is refused (dry runs store nothing).
    let last = '';
    await eventually('the API server calls the validator', async () => {
      const r = await env.kubectl(['create', '--dry-run=server', '-f', '-'], split('probe', [-1]));
      last = `${r.code} ${r.stdout} ${r.stderr}`;
      return r.code !== 0 && /denied the request/.test(r.stderr) ? true : undefined;
    }).catch((err: unknown) => {
      throw new Error(`${String(err)}; kubectl said: ${last}; stats ${JSON.stringify(weft?.webhook?.stats)}`);
    });
  });

  after(async () => {
    await weft?.stop();
    await env?.stop();
  });

  it("writes the mesh CA's bundle into the SMI validator's configuration", async () => {
    assert.equal(
      await validatingWebhookCaBundle(env, SMI_WEBHOOK_CONFIGURATION),
      weft!.identity.running.ca!.bundlePem(),
    );
  });

  it('refuses a TrafficSplit with a negative weight, with the condition’s text', async (t) => {
    await refused(
      split('negative', [-1]),
      `TrafficSplit ${NS}/negative: spec.backends[0].weight must be at least 0, not -1; the object is left out`,
    );
    const r = await env.kubectl(['apply', '-f', '-'], split('negative', [-1]));
    t.diagnostic(`kubectl says: ${r.stderr.trim()}`);
  });

  it('refuses a TrafficSplit with a fractional weight', async () => {
    await refused(
      split('fraction', [50, 2.5]),
      `TrafficSplit ${NS}/fraction: spec.backends[1].weight must be a whole number, not 2.5; the object is left out`,
    );
  });

  it('refuses a v1alpha1 TrafficSplit whose weight is a negative quantity', async () => {
    await refused(
      split('quantity', ['-500m'], 'split.smi-spec.io/v1alpha1'),
      `TrafficSplit ${NS}/quantity: spec.backends[0].weight must be a non-negative Kubernetes quantity`,
    );
  });

  it('refuses with --dry-run=server too, storing nothing', async () => {
    const r = await env.kubectl(['apply', '--dry-run=server', '-f', '-'], split('dry', [-5]));
    assert.notEqual(r.code, 0);
    assert.ok(r.stderr.includes(`TrafficSplit ${NS}/dry: spec.backends[0].weight`), r.stderr);
  });

  it('refuses an HTTPRouteGroup whose pathRegex RE2 rejects', async () => {
    await refused(
      JSON.stringify({
        apiVersion: 'specs.smi-spec.io/v1alpha4',
        kind: 'HTTPRouteGroup',
        metadata: { name: 'lookahead', namespace: NS },
        spec: { matches: [{ name: 'api', pathRegex: '/api(?=/v1)' }] },
      }),
      `HTTPRouteGroup ${NS}/lookahead: spec.matches[0].pathRegex "/api(?=/v1)" is not a valid RE2 regular expression`,
    );
  });

  it('refuses an IdentityBinding with exclusive schemes; admits the fixed one and a target naming it', async () => {
    const binding = (schemes: unknown): string =>
      JSON.stringify({
        apiVersion: 'access.smi-spec.io/v1alpha4',
        kind: 'IdentityBinding',
        metadata: { name: 'buyers', namespace: NS },
        spec: { schemes },
      });
    await refused(
      binding({ serviceAccount: 'buyer', podLabelSelectors: [{ matchLabels: { app: 'buyer' } }] }),
      `IdentityBinding ${NS}/buyers: spec.schemes sets both podLabelSelectors and serviceAccount`,
    );
    await kubectl(['apply', '-f', '-'], binding({ serviceAccount: 'buyer' }));
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'access.smi-spec.io/v1alpha4',
        kind: 'TrafficTarget',
        metadata: { name: 'buyers-to-web', namespace: NS },
        spec: {
          destination: { kind: 'ServiceAccount', name: 'web' },
          sources: [{ kind: 'IdentityBinding', group: 'access.smi-spec.io', name: 'buyers' }],
          rules: [{ kind: 'TCPRoute', name: 'any' }],
        },
      }),
    );
  });

  it('admits a split whose backend Service does not exist yet, with a warning kubectl prints; none once it exists', async () => {
    const r = await kubectl(['apply', '-f', '-'], split('canary', [90, 10]));
    assert.match(r.stderr, /Warning: TrafficSplit shop\/canary: spec\.backends\[1\]\.service "web-v2"/);
    await kubectl(['get', 'trafficsplit', 'canary', '-n', NS]);
    // The other order converges too: the Service comes after, and the warning goes once Weft sees it.
    await kubectl(['apply', '-f', '-'], service('web-v2'));
    await eventually('no warning once the Service exists', async () => {
      const again = await kubectl(['apply', '-f', '-'], split('canary', [80, 20]));
      return again.stderr.includes('Warning:') ? undefined : true;
    });
  });

  it('leaves namespaces outside the mesh alone', async () => {
    await kubectl(['create', 'namespace', 'elsewhere']);
    await kubectl(
      ['apply', '-f', '-'],
      split('negative', [-1]).replace(`"namespace":"${NS}"`, '"namespace":"elsewhere"'),
    );
  });

  it('with Weft down, failurePolicy Ignore admits any SMI object', async () => {
    await weft?.stop();
    weft = undefined;
    await kubectl(['apply', '-f', '-'], split('while-down', [-1]));
    await kubectl(['get', 'trafficsplit', 'while-down', '-n', NS]);
  });
});
