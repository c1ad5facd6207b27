/**
 * Pod mutation without a cluster: the injected pod and the capture rules as golden files, applied
 * with an RFC 6902 implementation; idempotence, opt-out, the proxyless gRPC flavor, probe rewriting
 * and the pods the injector refuses to touch.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { stringify } from 'yaml';
import { SIDECAR } from '../../src/inject/bootstrap';
import { captureRules } from '../../src/inject/capture';
import { ANNOTATION, type InjectorOptions, injectPod } from '../../src/inject/mutate';
import type { KubeObject } from '../../src/kube/client';
import { applyJsonPatch, type JsonPatchOp } from '../../src/patch/json-patch';
import { injectorFromFlags } from '../../src/serve';
import { golden } from './golden';
import { webPod } from './pods';

const options: InjectorOptions = {
  weftImage: 'ghcr.io/weft-mesh/weft:0.1.0',
  proxyImage: 'envoyproxy/envoy:v1.40.0',
  excludeOutboundCidrs: ['169.254.169.254/32'],
};

function pod(
  extra: { metadata?: { annotations?: Record<string, string> } } = {},
  spec: Record<string, unknown> = {},
): KubeObject {
  return webPod({
    ...(extra.metadata?.annotations ? { annotations: extra.metadata.annotations } : {}),
    probes: {
      livenessProbe: { httpGet: { port: 'http', path: '/healthz' }, periodSeconds: 10 },
      readinessProbe: { tcpSocket: { port: 8080 } },
    },
    spec,
  });
}

function inject(p: KubeObject): KubeObject {
  const r = injectPod(p, options);
  assert.equal(r.outcome, 'inject', JSON.stringify(r));
  if (r.outcome !== 'inject') throw new Error('unreachable');
  return applyJsonPatch(structuredClone(p) as never, r.patch as JsonPatchOp[]) as unknown as KubeObject;
}

interface Spec {
  containers: { name: string; livenessProbe?: unknown; readinessProbe?: unknown; volumeMounts?: unknown[] }[];
  initContainers: { name: string; restartPolicy?: string; env?: { name: string; value?: string }[] }[];
  volumes: { name: string }[];
}

describe('pod mutation', () => {
  it('adds capture, agent and Envoy as native sidecars (golden file)', () => {
    const out = inject(pod());
    golden('injected-pod.yaml', stringify(out, { lineWidth: 0, aliasDuplicateObjects: false }));
    const spec = out.spec as Spec;
    assert.deepEqual(
      spec.initContainers.map((c) => [c.name, c.restartPolicy ?? '']),
      [
        ['weft-capture', ''],
        ['weft-agent', 'Always'],
        ['weft-proxy', 'Always'],
      ],
    );
    assert.equal(out.metadata?.annotations?.[ANNOTATION.injected], 'true');
  });

  it('generates the capture rules (golden file)', () => {
    const rules = captureRules({
      excludeInboundPorts: [22],
      excludeOutboundPorts: [5432],
      excludeOutboundCidrs: ['10.0.0.0/8'],
    });
    golden('capture.rules', rules);
    assert.match(rules, /--uid-owner 1337 -j RETURN/);
  });

  it('rewrites httpGet probes to the health port and routes them in the bootstrap', () => {
    const spec = inject(pod()).spec as Spec;
    const web = spec.containers[0]!;
    assert.deepEqual(web.livenessProbe, {
      httpGet: { port: SIDECAR.healthPort, path: '/app-health/web/livez', scheme: 'HTTP' },
      periodSeconds: 10,
    });
    assert.deepEqual(web.readinessProbe, { tcpSocket: { port: 8080 } }, 'tcpSocket probes are left alone');
    const bootstrap = spec.initContainers[2]!.env!.find((e) => e.name === 'WEFT_BOOTSTRAP')!.value!;
    assert.match(
      bootstrap,
      /"path":"\/app-health\/web\/livez"},"route":\{"cluster":"weft-probe\|8080","prefix_rewrite":"\/healthz"/,
    );
  });

  it('is idempotent: an injected pod is not injected again', () => {
    const once = inject(pod());
    assert.equal(injectPod(once, options).outcome, 'skip');
    // Even without the annotation, Weft's containers mark the pod as injected.
    const stripped = structuredClone(once);
    delete stripped.metadata!.annotations;
    assert.equal(injectPod(stripped, options).outcome, 'skip');
  });

  it('respects the opt-out annotation', () => {
    const r = injectPod(pod({ metadata: { annotations: { [ANNOTATION.inject]: 'false' } } }), options);
    assert.equal(r.outcome, 'skip');
  });

  it('keeps existing init containers and volumes after its own', () => {
    const out = inject(
      pod(
        {},
        {
          initContainers: [{ name: 'migrate', image: 'example/migrate' }],
          volumes: [{ name: 'data', emptyDir: {} }],
        },
      ),
    );
    const spec = out.spec as Spec;
    assert.deepEqual(spec.initContainers.map((c) => c.name).at(-1), 'migrate');
    assert.equal(spec.volumes[0]!.name, 'data');
  });

  it('gives a proxyless gRPC pod only the agent, with its xDS relay', () => {
    const out = inject(pod({ metadata: { annotations: { [ANNOTATION.flavor]: 'grpc' } } }));
    const spec = out.spec as Spec;
    assert.deepEqual(
      spec.initContainers.map((c) => c.name),
      ['weft-agent'],
    );
    assert.ok(JSON.stringify(spec.initContainers[0]).includes('--xds-relay'));
    assert.deepEqual(spec.containers[0]!.volumeMounts, [
      { name: 'weft-certs', mountPath: SIDECAR.certDir, readOnly: true },
    ]);
    assert.ok(!spec.volumes.some((v) => v.name === 'weft-envoy'));
  });

  it('refuses pods it cannot handle, naming the field and the fix', () => {
    const bad = (annotations: Record<string, string>, spec: Record<string, unknown> = {}) => {
      const r = injectPod(pod({ metadata: { annotations } }, spec), options);
      assert.equal(r.outcome, 'error');
      return r.outcome === 'error' ? r.reason : '';
    };
    assert.match(
      bad({ [ANNOTATION.excludeOutboundPorts]: '80,http' }),
      /shop\/web: annotation weft.dev\/exclude-outbound-ports: "http" is not a port/,
    );
    assert.match(bad({ [ANNOTATION.excludeOutboundCidrs]: '10.0.0.0/33' }), /not an IPv4 CIDR/);
    assert.match(bad({ [ANNOTATION.flavor]: 'linkerd' }), /use "envoy" \(the default\) or "grpc"/);
    assert.match(bad({}, { hostNetwork: true }), /spec.hostNetwork is true/);
    assert.match(
      bad({}, { volumes: [{ name: 'weft-certs', emptyDir: {} }] }),
      /volume name "weft-certs" is reserved/,
    );
  });
});

describe('injector flags of weft serve', () => {
  it('reads images, resources and capture exclusions, and names a bad flag', () => {
    const o = injectorFromFlags({
      xdsAddress: '127.0.0.1:0',
      sidecarImage: 'envoy:dev',
      sidecarResources: '{"limits":{"memory":"1Gi"}}',
      captureExcludeOutboundCidrs: '169.254.169.254/32',
    });
    assert.equal(o.proxyImage, 'envoy:dev');
    assert.match(o.weftImage, /^ghcr\.io\/weft-mesh\/weft:\d/);
    assert.deepEqual(o.proxyResources, { limits: { memory: '1Gi' } });
    assert.deepEqual(o.excludeOutboundCidrs, ['169.254.169.254/32']);
    assert.throws(
      () => injectorFromFlags({ xdsAddress: '127.0.0.1:0', sidecarResources: '{"limits":{"memory":1}}' }),
      /--sidecar-resources .*expected JSON like/,
    );
    assert.throws(
      () => injectorFromFlags({ xdsAddress: '127.0.0.1:0', captureExcludeInboundPorts: '0' }),
      /--capture-exclude-inbound-ports: "0" is not a port/,
    );
  });
});
