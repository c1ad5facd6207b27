/**
 * Envoy as the judge of patched config, measured:
 *
 * 1. Validate mode (what Weft does): the bookstore example's bookbuyer proxy with N distinct valid
 *    patches, each set judged once (no cache hits), and N distinct refused patches, each judged
 *    and blamed (one Envoy run for the set, more to find the patch and the operation).
 * 2. The alternative: one long-lived Envoy connected to an ADS server on loopback, fed the same
 *    patched sets; the time from setting a snapshot to Envoy's ACK (or NACK) of it.
 * 3. What a compile costs with a judge attached when nothing is patched (it should be nothing:
 *    no set is hashed and Envoy never runs), against the same compiles without one.
 *
 * Plaintext proxies (no mTLS), so the long-lived Envoy needs no certificates over SDS.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ServerCredentials } from '@grpc/grpc-js';
import { findEnvoy } from '../src/envoy/binary';
import { EnvoyChecker, percentile } from '../src/envoy/validate-mode';
import type { ManifestFile } from '../src/inputs/folder';
import { setLogLevel } from '../src/log';
import { MeshCompiler } from '../src/mesh/compiler';
import { serviceTargetResolver } from '../src/mesh/patch-targets';
import { parseManifests, renderMesh } from '../src/mesh/render';
import type { PatchableResources } from '../src/patch/apply';
import { PatchJudge, patchMeshJudged } from '../src/patch/envoy-judge';
import { extractPatches, type MeshProxy, patchMesh } from '../src/patch/mesh';
import { SnapshotCache } from '../src/xds/cache/cache';
import { envoyResourceEncoder } from '../src/xds/encoder';
import { CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET } from '../src/xds/resource-types';
import { AdsServer } from '../src/xds/server/ads-server';
import { compileInputs } from './compile';

const ROOT = join(__dirname, '..', '..');

/** Figures of {@link runPatchJudgeBench}. */
export interface PatchJudgeFigures {
  readonly acceptP50: number;
  readonly acceptP99: number;
  readonly refuseP50: number;
  readonly refuseP99: number;
  /** Envoy runs per refused patch, blame included. */
  readonly runsPerRefusal: number;
  readonly xdsAckP50: number;
  readonly xdsAckP99: number;
  readonly xdsNackP50: number;
  readonly xdsNackP99: number;
  /** Median ms of a one-split change without and with a judge, nothing patched; Envoy runs. */
  readonly compileWithout: number;
  readonly compileWith: number;
  readonly compileEnvoyRuns: number;
}

function bookstore(): ManifestFile[] {
  const dir = join(ROOT, 'examples', 'bookstore');
  return readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort()
    .map((f) => ({ source: f, text: readFileSync(join(dir, f), 'utf8') }));
}

function patch(name: string, patches: unknown[]): ManifestFile {
  return {
    source: name,
    text: JSON.stringify({
      apiVersion: 'weft.dev/v1alpha1',
      kind: 'EnvoyPatch',
      metadata: { name, namespace: 'bookbuyer' },
      spec: { patches },
    }),
  };
}

const ROUTE_TARGET = {
  type: 'RouteConfiguration',
  service: { name: 'bookstore', namespace: 'bookstore', port: 14001 },
};

function validPatch(i: number): ManifestFile {
  return patch(`retries-${i}`, [
    {
      target: ROUTE_TARGET,
      merge: {
        virtual_hosts: [
          {
            name: 'bookstore/bookstore|14001',
            retry_policy: { retry_on: 'unavailable', num_retries: i + 1 },
          },
        ],
      },
    },
  ]);
}

function refusedPatch(i: number): ManifestFile {
  const vh = (name: string) => ({
    name,
    domains: [`dup-${i}.example`],
    routes: [{ match: { prefix: '/' }, route: { cluster: 'outbound|14001|bookstore/bookstore-v1' } }],
  });
  return patch(`dup-${i}`, [
    {
      target: ROUTE_TARGET,
      merge: { virtual_hosts: [{ name: 'bookstore/bookstore|14001', retry_policy: { num_retries: 1 } }] },
    },
    {
      target: ROUTE_TARGET,
      jsonPatch: [
        { op: 'add', path: '/virtual_hosts/-', value: vh('a') },
        { op: 'add', path: '/virtual_hosts/-', value: vh('b') },
      ],
    },
  ]);
}

function median(v: readonly number[]): number {
  return percentile(v, 50);
}

function buyer(): MeshProxy {
  const p = renderMesh(bookstore(), { proxy: 'bookbuyer/bookbuyer', mtls: false }).proxies[0]!;
  return {
    id: 'envoy/bookbuyer/bookbuyer',
    subject: {
      namespace: 'bookbuyer',
      labels: { app: 'bookbuyer' },
      serviceAccount: 'bookbuyer',
      flavor: 'envoy',
    },
    resources: p.resources as unknown as PatchableResources,
  };
}

const patchesOf = (m: ManifestFile) => extractPatches(parseManifests([m]).objects).patches;
const OPTS = { meshNamespace: 'weft-system', resolve: serviceTargetResolver, nativeRules: false };

async function validateMode(envoy: string, n: number) {
  const proxy = buyer();
  const accept: number[] = [];
  const refuse: number[] = [];
  const checker = new EnvoyChecker({ envoy, concurrency: 1 });
  const judge = new PatchJudge(checker);
  // A first run warms the throwaway certificates and the page cache; not counted.
  await patchMeshJudged([proxy], patchesOf(validPatch(1000)), OPTS, judge);
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await patchMeshJudged([proxy], patchesOf(validPatch(i)), OPTS, judge);
    accept.push(performance.now() - t);
  }
  const runsBefore = checker.stats().runs;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await patchMeshJudged([proxy], patchesOf(refusedPatch(i)), OPTS, judge);
    refuse.push(performance.now() - t);
  }
  return { accept, refuse, runsPerRefusal: (checker.stats().runs - runsBefore) / n };
}

async function longLivedEnvoy(envoy: string, n: number): Promise<{ ack: number[]; nack: number[] }> {
  const proxy = buyer();
  const server = new AdsServer();
  const port = await server.listen('127.0.0.1:0', ServerCredentials.createInsecure());
  const dir = mkdtempSync(join(tmpdir(), 'weft-bench-envoy-'));
  const bootstrap = {
    node: { id: 'bookbuyer/bookbuyer', cluster: 'g' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    dynamic_resources: {
      ads_config: {
        api_type: 'DELTA_GRPC',
        transport_api_version: 'V3',
        grpc_services: [{ envoy_grpc: { cluster_name: 'xds' } }],
      },
      cds_config: { ads: {}, resource_api_version: 'V3' },
      lds_config: { ads: {}, resource_api_version: 'V3' },
    },
    static_resources: {
      clusters: [
        {
          name: 'xds',
          type: 'STATIC',
          connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: {
            cluster_name: 'xds',
            endpoints: [
              {
                lb_endpoints: [
                  { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } },
                ],
              },
            ],
          },
        },
      ],
    },
  };
  writeFileSync(join(dir, 'bootstrap.json'), JSON.stringify(bootstrap));
  const encoder = envoyResourceEncoder();
  const snapshot = (r: PatchableResources) =>
    encoder.snapshot({
      [LISTENER]: r.listeners,
      [ROUTE]: r.routes,
      [CLUSTER]: r.clusters,
      [ENDPOINT]: r.endpoints,
      [SECRET]: r.secrets,
    });
  // Listeners bind 15001 and 15003 on 0.0.0.0 in the set; bind nothing: the question is only
  // whether Envoy accepts the config.
  const unbound = (r: PatchableResources): PatchableResources => ({
    ...r,
    listeners: r.listeners.map((l) => ({ ...l, bind_to_port: false })),
  });
  server.cache.set('g', snapshot(unbound(proxy.resources)));
  const child = spawn(
    envoy,
    [
      '-c',
      join(dir, 'bootstrap.json'),
      '--disable-hot-restart',
      '--log-level',
      'error',
      '--base-id',
      String(process.pid % 60000),
    ],
    { stdio: 'ignore' },
  );
  const settled = (): 'ack' | 'nack' | undefined => {
    const p = server.registry.proxies().find((x) => x.node.id === 'bookbuyer/bookbuyer');
    if (!p) return undefined;
    const types = Object.values(p.types);
    if (types.some((t) => t.awaiting)) return undefined;
    return types.every((t) => t.ackedVersion === t.sentVersion) ? 'ack' : 'nack';
  };
  const waitFor = async (want: 'ack' | 'nack', sinceNacks: number): Promise<void> => {
    const end = Date.now() + 20_000;
    for (;;) {
      if (want === 'nack' && server.registry.totals().nacks > sinceNacks) return;
      if (want === 'ack' && settled() === 'ack') return;
      if (Date.now() > end) throw new Error(`long-lived Envoy: no ${want} within 20 s`);
      await new Promise((r) => setImmediate(r));
    }
  };
  const ack: number[] = [];
  const nack: number[] = [];
  // Every hostile set is NACKed on purpose: those warnings are the measurement, not news.
  setLogLevel('error');
  try {
    await waitFor('ack', 0);
    for (let i = 0; i < n; i++) {
      const r = patchMesh([proxy], patchesOf(validPatch(i)), OPTS).resources.get(proxy.id)!;
      const t = performance.now();
      server.cache.set('g', snapshot(unbound(r)));
      await new Promise((res) => setImmediate(res));
      await waitFor('ack', server.registry.totals().nacks);
      ack.push(performance.now() - t);
    }
    for (let i = 0; i < n; i++) {
      const r = patchMesh([proxy], patchesOf(refusedPatch(i)), OPTS).resources.get(proxy.id)!;
      const before = server.registry.totals().nacks;
      const t = performance.now();
      server.cache.set('g', snapshot(unbound(r)));
      await waitFor('nack', before);
      nack.push(performance.now() - t);
      // Back to good config before the next one.
      server.cache.set('g', snapshot(unbound(proxy.resources)));
      await waitFor('ack', server.registry.totals().nacks);
    }
  } finally {
    setLogLevel('warn');
    child.kill('SIGTERM');
    await server.shutdown();
    rmSync(dir, { recursive: true, force: true });
  }
  return { ack, nack };
}

function compileCost(services: number, changes: number) {
  const run = (judge: PatchJudge | undefined): number => {
    const compiler = new MeshCompiler(new SnapshotCache(), envoyResourceEncoder(), judge ? { judge } : {});
    const inputs = compileInputs(services);
    compiler.update(inputs);
    for (const w of compiler.currentModel.workloads) compiler.activate({ workload: w, flavor: 'envoy' });
    const at = inputs.findIndex((o) => (o as { metadata?: { name?: string } }).metadata?.name === 'split-20');
    const times: number[] = [];
    for (let k = 0; k <= changes; k++) {
      const changed = compileInputs(services, 10 + k)[at];
      const next = inputs.map((o, i) => (i === at ? changed : o));
      const t = performance.now();
      compiler.update(next);
      if (k > 0) times.push(performance.now() - t);
    }
    return median(times);
  };
  const checker = new EnvoyChecker();
  const judge = new PatchJudge(checker);
  // ABBA order with a collection before each run, so neither the order nor the previous run's
  // garbage favours one side.
  const gc = (globalThis as { gc?: () => void }).gc;
  const without: number[] = [];
  const withJudge: number[] = [];
  for (let r = 0; r < 4; r++) {
    for (const side of r % 2 === 0 ? [false, true] : [true, false]) {
      gc?.();
      (side ? withJudge : without).push(run(side ? judge : undefined));
    }
  }
  return {
    without: median(without),
    with: median(withJudge),
    runs: checker.stats().runs + judge.stats().judged,
  };
}

/** Runs the three measurements; undefined without an Envoy binary. */
export async function runPatchJudgeBench(n = 20): Promise<PatchJudgeFigures | undefined> {
  const envoy = findEnvoy();
  if (!envoy) return undefined;
  const v = await validateMode(envoy, n);
  const x = await longLivedEnvoy(envoy, n);
  const c = compileCost(300, 11);
  return {
    acceptP50: percentile(v.accept, 50),
    acceptP99: percentile(v.accept, 99),
    refuseP50: percentile(v.refuse, 50),
    refuseP99: percentile(v.refuse, 99),
    runsPerRefusal: v.runsPerRefusal,
    xdsAckP50: percentile(x.ack, 50),
    xdsAckP99: percentile(x.ack, 99),
    xdsNackP50: percentile(x.nack, 50),
    xdsNackP99: percentile(x.nack, 99),
    compileWithout: c.without,
    compileWith: c.with,
    compileEnvoyRuns: c.runs,
  };
}
