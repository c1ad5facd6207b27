/**
 * Admission of SMI objects (src/mesh/smi-admission.ts) without an API server: what is refused
 * (findings about the object alone, with the condition's message), what only warns (findings that
 * depend on other objects), and that the stored version of the object under review is replaced,
 * not doubled.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admitSmiObject } from '../../src/mesh/smi-admission';

const NS = 'shop';

const namespace = {
  apiVersion: 'v1',
  kind: 'Namespace',
  metadata: { name: NS, labels: { 'weft.dev/mesh': 'enabled' } },
};

function service(name: string): unknown {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NS },
    spec: { clusterIP: '10.0.0.10', selector: { app: name }, ports: [{ name: 'http', port: 80 }] },
  };
}

function split(weights: readonly unknown[], apiVersion = 'split.smi-spec.io/v1alpha4'): unknown {
  return {
    apiVersion,
    kind: 'TrafficSplit',
    metadata: { name: 'ab', namespace: NS },
    spec: { service: 'web', backends: weights.map((weight, i) => ({ service: `web-v${i + 1}`, weight })) },
  };
}

function target(destinationNamespace: string): unknown {
  return {
    apiVersion: 'access.smi-spec.io/v1alpha3',
    kind: 'TrafficTarget',
    metadata: { name: 't', namespace: NS },
    spec: {
      destination: { kind: 'ServiceAccount', name: 'web', namespace: destinationNamespace },
      sources: [{ kind: 'ServiceAccount', name: 'client', namespace: NS }],
      rules: [{ kind: 'HTTPRouteGroup', name: 'missing', matches: ['all'] }],
    },
  };
}

const mesh = [namespace, service('web'), service('web-v1'), service('web-v2')];

describe('SMI admission', () => {
  it('refuses a negative or fractional weight with the InvalidSpec condition’s message', () => {
    assert.deepEqual(admitSmiObject(mesh, split([-1, 5])), {
      allowed: false,
      message:
        'TrafficSplit shop/ab: spec.backends[0].weight must be at least 0, not -1; the object is left out; fix it to match split.smi-spec.io/v1alpha4 TrafficSplit',
    });
    const fraction = admitSmiObject(mesh, split([1.5, 5]));
    assert.equal(fraction.allowed, false);
    assert.match(fraction.message ?? '', /spec\.backends\[0\]\.weight must be a whole number, not 1\.5/);
  });

  it('refuses an RE2-invalid regex and a repeated match name (InvalidMatch, DuplicateMatchName)', () => {
    const group = (matches: unknown[]) => ({
      apiVersion: 'specs.smi-spec.io/v1alpha4',
      kind: 'HTTPRouteGroup',
      metadata: { name: 'g', namespace: NS },
      spec: { matches },
    });
    const re2 = admitSmiObject(mesh, group([{ name: 'm', pathRegex: '(?=x)' }]));
    assert.equal(re2.allowed, false);
    assert.match(re2.message ?? '', /pathRegex "\(\?=x\)" is not a valid RE2 regular expression/);
    const dup = admitSmiObject(
      mesh,
      group([
        { name: 'm', pathRegex: '/a' },
        { name: 'm', pathRegex: '/b' },
      ]),
    );
    assert.equal(dup.allowed, false);
    assert.match(dup.message ?? '', /spec\.matches\[1\]\.name "m" repeats the name of spec\.matches\[0\]/);
  });

  it('refuses a bad name, an out-of-range port and a TrafficTarget for another namespace', () => {
    const tcp = admitSmiObject(mesh, {
      apiVersion: 'specs.smi-spec.io/v1alpha4',
      kind: 'TCPRoute',
      metadata: { name: 'Bad_Name', namespace: NS },
      spec: {},
    });
    assert.match(tcp.message ?? '', /^TCPRoute shop\/Bad_Name: metadata\.name must be an RFC 1123 subdomain/);
    const udp = admitSmiObject(mesh, {
      apiVersion: 'specs.smi-spec.io/v1alpha4',
      kind: 'UDPRoute',
      metadata: { name: 'u', namespace: NS },
      spec: { matches: { ports: [70000] } },
    });
    assert.match(udp.message ?? '', /spec\.matches\.ports\[0\] must be at most 65535/);
    const elsewhere = admitSmiObject(mesh, target('other'));
    assert.equal(elsewhere.allowed, false);
    assert.match(elsewhere.message ?? '', /spec\.destination\.namespace "other" differs/);
  });

  it('admits with warnings what depends on other objects: a missing backend, route or account', () => {
    const missing = admitSmiObject([namespace, service('web'), service('web-v1')], split([90, 10]));
    assert.equal(missing.allowed, true);
    assert.deepEqual(missing.warnings, [
      'TrafficSplit shop/ab: spec.backends[1].service "web-v2" is not a Service in namespace shop, so it gets no traffic; create the Service or fix the name',
    ]);
    const rootless = admitSmiObject([], split([90, 10]));
    assert.equal(rootless.allowed, true);
    assert.match(rootless.warnings?.[0] ?? '', /spec\.service "web" is not a Service/);
    const tt = admitSmiObject(mesh, target(NS));
    assert.equal(tt.allowed, true);
    assert.ok(
      tt.warnings?.some((w) => w.includes('spec.rules[0].name "missing" is not an HTTPRouteGroup')),
      JSON.stringify(tt.warnings),
    );
  });

  it('admits without a word what resolves; a stored version of the object is replaced, not doubled', () => {
    assert.deepEqual(admitSmiObject(mesh, split([90, 10])), { allowed: true });
    const stored = split([50, 50], 'split.smi-spec.io/v1alpha2');
    assert.deepEqual(admitSmiObject([...mesh, stored], split([90, 10])), { allowed: true });
    assert.equal(admitSmiObject([...mesh, stored], split([-1, 10])).allowed, false);
  });

  it('IdentityBinding: refuses what is wrong in the binding itself, warns about what depends on pods', () => {
    const binding = (schemes: unknown): unknown => ({
      apiVersion: 'access.smi-spec.io/v1alpha4',
      kind: 'IdentityBinding',
      metadata: { name: 'buyers', namespace: NS },
      spec: { schemes },
    });
    assert.deepEqual(admitSmiObject(mesh, binding({ serviceAccount: 'client' })), { allowed: true });
    const both = admitSmiObject(
      mesh,
      binding({ serviceAccount: 'client', podLabelSelectors: [{ matchLabels: { app: 'x' } }] }),
    );
    assert.equal(both.allowed, false);
    assert.match(both.message ?? '', /sets both podLabelSelectors and serviceAccount/);
    assert.equal(admitSmiObject(mesh, binding({})).allowed, false);
    const bad = admitSmiObject(
      mesh,
      binding({ spiffeIdentities: ['cluster.local/ns/other/sa/x', 'spiffe://a/./b'] }),
    );
    assert.equal(bad.allowed, false);
    assert.match(
      bad.message ?? '',
      /spiffeIdentities\[0\] "cluster.local\/ns\/other\/sa\/x" names ServiceAccount other\/x, but/,
    );
    assert.match(bad.message ?? '', /spiffeIdentities\[1\] "spiffe:\/\/a\/.\/b" is not a SPIFFE ID/);
    assert.equal(
      admitSmiObject(
        mesh,
        binding({ podLabelSelectors: [{ matchLabels: { app: 'x' }, matchExpressions: [{}] }] }),
      ).allowed,
      false,
    );
    // Whether selected pods share a ServiceAccount depends on the pods: a warning, never a refusal.
    const pod = (name: string, app: string): unknown => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: NS, labels: { app } },
      spec: { serviceAccountName: 'shared' },
    });
    const shared = admitSmiObject(
      [...mesh, pod('a', 'x'), pod('b', 'y')],
      binding({ podLabelSelectors: [{ matchLabels: { app: 'x' } }] }),
    );
    assert.equal(shared.allowed, true);
    assert.match(shared.warnings?.[0] ?? '', /SharedServiceAccount|runs as shared too/);
    // A TrafficTarget naming a binding that does not exist yet is admitted with a warning.
    const tt = admitSmiObject(mesh, {
      apiVersion: 'access.smi-spec.io/v1alpha4',
      kind: 'TrafficTarget',
      metadata: { name: 't', namespace: NS },
      spec: {
        destination: { kind: 'ServiceAccount', name: 'web' },
        sources: [{ kind: 'IdentityBinding', group: 'access.smi-spec.io', name: 'buyers' }],
        rules: [{ kind: 'HTTPRouteGroup', name: 'missing' }],
      },
    });
    assert.equal(tt.allowed, true);
    assert.ok(tt.warnings?.some((w) => w.includes('"buyers" is not an IdentityBinding in namespace shop')));
  });

  it('admits kinds that are not SMI without a look', () => {
    assert.deepEqual(
      admitSmiObject(mesh, { apiVersion: 'v1', kind: 'Service', metadata: { name: 'Bad_Name' } }),
      {
        allowed: true,
      },
    );
  });
});
