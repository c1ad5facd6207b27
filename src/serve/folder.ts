/**
 * The assembly of `weft serve` outside Kubernetes, shared by the CLI, the demo, the conformance
 * drivers and the tests: sources, compiler, cache, xDS and admin servers, identity. Sources:
 * - `--config-dir DIR`: a folder of SMI and Kubernetes manifests (the embedded default, no cluster
 *   needed), recompiled when files change;
 * - `--resources FILE`: raw xDS resources per proxy group (no SMI).
 * The admin server (health, readiness, metrics, debug views) listens on `--admin-address`.
 * xDS is mTLS with client certificates from the mesh CA (`--ca-dir` or `--ca-cert`/`--ca-key`,
 * see identity.ts); plaintext only with `--insecure-xds`.
 */
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Metrics } from '../admin/metrics';
import { buildAdmin, registerXdsMetrics } from '../admin/server';
import { parseCidrs, parsePorts } from '../inject/capture';
import type { InjectorOptions, Resources } from '../inject/mutate';
import { FolderSource } from '../inputs/folder-source';
import { logger } from '../log';
import { MeshCompiler } from '../mesh/compiler';
import { afterCompile, rollBackPatchesOnNack } from '../mesh/wiring';
import { registerTrafficMetrics, startTrafficMetrics, type TrafficMetricsRuntime } from '../metrics';
import { listenOn } from '../net';
import { judgeFor } from '../patch/envoy-judge';
import type { Condition } from '../smi/model';
import { readResourcesFile } from '../static/resources-file';
import { watchFile } from '../static/watch';
import { HelperThread } from '../worker/helper-thread';
import { envoyResourceEncoder } from '../xds/encoder';
import { AdsServer } from '../xds/server/ads-server';
import {
  envoyGroupIdentity,
  type ServeIdentity,
  type ServeIdentityOptions,
  startIdentityForServe,
} from './identity';
import { DEFAULT_PROXY_IMAGE, DEFAULT_WEFT_IMAGE } from './kube';

const log = logger('serve');
// package.json sits three levels above dist/src/serve at run time.
const WEFT_VERSION = (require('../../../package.json') as { version: string }).version;

/** Options of `weft serve`. */
export interface ServeOptions extends ServeIdentityOptions {
  configDir?: string;
  resources?: string;
  xdsAddress: string;
  adminAddress?: string;
  /** Compile with mutual TLS between proxies (default true). */
  mtls?: boolean;
  /** `--envoy`: Envoy binary judging patched config (see judgeFor); false: none. */
  envoy?: string | boolean;
  /** Read inputs from a Kubernetes API server (in-cluster credentials unless `kubeconfig`). */
  kubernetes?: boolean;
  /** kubeconfig file for Kubernetes mode (implies `kubernetes`). */
  kubeconfig?: string;
  /** Weft's own namespace in Kubernetes mode. */
  meshNamespace?: string;
  /** Kubernetes mode: the Secret (in the mesh namespace) holding the CA root. */
  caSecret?: string;
  /** Kubernetes mode: serve the sidecar injector on this address. */
  webhookAddress?: string;
  /** Kubernetes mode: serve the TrafficMetrics aggregated API on this address. */
  metricsApiAddress?: string;
  /**
   * `--prometheus-url`: read TrafficMetrics from this Prometheus, which scrapes the sidecars,
   * instead of the stats they stream to Weft (whose bootstrap then streams none).
   */
  prometheusUrl?: string;
  /** How often to poll Prometheus, in ms (default 10 s). */
  prometheusIntervalMs?: number;
  /** Injector flags (see {@link injectorFromFlags}). */
  weftImage?: string;
  sidecarImage?: string;
  sidecarResources?: string;
  captureExcludeInboundPorts?: string;
  captureExcludeOutboundPorts?: string;
  captureExcludeOutboundCidrs?: string;
}

/** The injector's settings from `weft serve` flags; throws naming the flag and the fix. */
export function injectorFromFlags(o: ServeOptions): InjectorOptions {
  let proxyResources: Resources | undefined;
  if (o.sidecarResources) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(o.sidecarResources);
    } catch {
      parsed = undefined;
    }
    const ok = (v: unknown): boolean =>
      v === undefined ||
      (typeof v === 'object' && v !== null && Object.values(v).every((x) => typeof x === 'string'));
    const r = parsed as Resources | undefined;
    if (!r || typeof r !== 'object' || !ok(r.requests) || !ok(r.limits))
      throw new Error(
        `--sidecar-resources ${o.sidecarResources}: expected JSON like {"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"512Mi"}}`,
      );
    proxyResources = r;
  }
  return {
    weftImage: o.weftImage ?? DEFAULT_WEFT_IMAGE,
    proxyImage: o.sidecarImage ?? DEFAULT_PROXY_IMAGE,
    ...(proxyResources ? { proxyResources } : {}),
    ...(o.trustDomain ? { trustDomain: o.trustDomain } : {}),
    excludeInboundPorts: parsePorts(o.captureExcludeInboundPorts ?? '', '--capture-exclude-inbound-ports'),
    excludeOutboundPorts: parsePorts(o.captureExcludeOutboundPorts ?? '', '--capture-exclude-outbound-ports'),
    excludeOutboundCidrs: parseCidrs(o.captureExcludeOutboundCidrs ?? '', '--capture-exclude-outbound-cidrs'),
    ...(o.prometheusUrl ? { statsSink: false } : {}),
  };
}

/** A running `weft serve`. */
export interface RunningServe {
  server: AdsServer;
  port: number;
  adminUrl?: string;
  compiler?: MeshCompiler;
  /** The identity stage (CA, certificate endpoint); folder and resources modes. */
  identity: ServeIdentity;
  /** Traffic metrics from the sidecars (config-dir mode). */
  trafficMetrics?: TrafficMetricsRuntime;
  /** Resolves after the next recompile (tests use it to wait for a change to land). */
  nextCompile(): Promise<void>;
  stop(): Promise<void>;
}

function describeConditions(list: readonly Condition[], seen: Set<string>): void {
  const now = new Set<string>();
  for (const c of list) {
    if (c.status === 'True' && c.type !== 'Conflicted') continue;
    // The folder source logs parse failures itself, with line and column, once per failure.
    if (c.reason === 'YamlParseError') continue;
    const key = `${c.object}|${c.reason}|${c.message}`;
    now.add(key);
    if (seen.has(key)) continue;
    (c.severity === 'Error' ? log.error : log.warn)(c.message, { object: c.object, reason: c.reason });
  }
  seen.clear();
  for (const k of now) seen.add(k);
}

/** Starts serving; resolves once the xDS port is bound and the first inputs are compiled. */
export async function startServe(o: ServeOptions): Promise<RunningServe> {
  if (!o.configDir && !o.resources)
    throw new Error('nothing to serve: pass --config-dir DIR or --resources FILE (see weft serve --help)');
  const encoder = envoyResourceEncoder();
  const metrics = new Metrics();
  let waiters: (() => void)[] = [];
  const compiled = (): void => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  let ready = false;
  let compiler: MeshCompiler | undefined;
  let stopSource: () => void = () => undefined;
  let server: AdsServer;
  // Before anything listens: a CA that cannot be loaded stops the start, naming the fix.
  const identity = await startIdentityForServe(o, encoder);

  if (o.configDir) {
    const dir = resolve(o.configDir);
    let c: MeshCompiler | undefined;
    server = new AdsServer(
      identity.serverOptions(
        (node, id) => c?.groupOf(node, id),
        (group) => (c ? envoyGroupIdentity(c.currentModel, group) : undefined),
      ),
    );
    const judge = judgeFor(o.envoy);
    // One helper thread parses big files and encodes big resources, so neither stalls serving.
    const helper = new HelperThread();
    c = new MeshCompiler(server.cache, encoder, {
      mtls: o.mtls ?? true,
      ...(judge ? { judge } : {}),
      encodeElsewhere: (typeUrl, text) => helper.encode(typeUrl, text),
    });
    if ((o.mtls ?? true) && !identity.running.ca) {
      log.warn(
        'proxies are compiled for mutual TLS but Weft has no CA (--ca-dir): they get no certificates, so calls between them fail; pass --ca-dir, or --no-mtls for plaintext development',
      );
    }
    compiler = c;
    const source = new FolderSource(dir, undefined, undefined, undefined, helper);
    const seen = new Set<string>();
    // The compile in progress (or the last one): startup waits for the first.
    let compiling: Promise<void> = Promise.resolve();
    const recompile = async (): Promise<void> => {
      const { objects, conditions } = source.snapshot();
      try {
        // In slices, one proxy group per turn of the event loop: a big compile (a 10,000-match
        // route group takes seconds on a busy machine) must not stop xDS and admin answering.
        const r = await c.updateInSlices(objects, conditions);
        identity.checkModel(c.currentModel);
        afterCompile(metrics, server, r, objects.length);
        describeConditions(r.conditions, seen);
      } catch (err) {
        // Whatever the inputs hold, serving goes on: proxies keep the snapshots they have.
        log.error('compiling the config folder failed; proxies keep their last config', {
          error: err instanceof Error ? err.message : String(err),
        });
      }
      compiled();
    };
    source.on('change', () => {
      compiling = recompile();
    });
    c.onJudged(() => {
      describeConditions(c.currentConditions, seen);
      compiled();
    });
    rollBackPatchesOnNack(server, c);
    await source.start();
    await compiling;
    stopSource = () => {
      source.stop();
      helper.stop();
    };
    ready = true;
  } else {
    const file = resolve(o.resources!);
    let groupNames = new Set<string>();
    const { groupOf, identityOf, csdsScope } = identity.serverOptions((node) =>
      groupNames.has(node.cluster) ? node.cluster : 'default',
    );
    server = new AdsServer({ groupOf, identityOf, ...(csdsScope ? { csdsScope } : {}) });
    const srv = server;
    stopSource = watchFile(
      file,
      (text) => {
        const result = readResourcesFile(text, o.resources ?? file);
        if (!result.ok) {
          for (const e of result.errors) log.error(e);
          log.error('resources file rejected; still serving the last good version', {
            file: o.resources,
            errors: result.errors.length,
          });
          compiled();
          return;
        }
        groupNames = new Set(result.groups.keys());
        let changed = 0;
        for (const [group, input] of result.groups)
          if (srv.cache.set(group, encoder.snapshot(input))) changed++;
        for (const group of srv.cache.groups()) if (!groupNames.has(group)) srv.cache.delete(group);
        log.info('resources loaded', { file: o.resources, groups: result.groups.size, changed });
        ready = true;
        compiled();
      },
      (err) =>
        log.error('cannot read resources file; still serving the last good version', {
          file: o.resources,
          error: err.message,
        }),
    );
  }
  // The sidecars' stats arrive on the xDS port; resources mode has no model to name them by.
  const traffic = compiler
    ? startTrafficMetrics(server, () => compiler?.currentModel, {
        mtls: identity.running.ca !== undefined && !o.insecureXds,
        ...(o.prometheusUrl ? { prometheusUrl: o.prometheusUrl } : {}),
        ...(o.prometheusIntervalMs ? { prometheusIntervalMs: o.prometheusIntervalMs } : {}),
      })
    : undefined;
  if (traffic) registerTrafficMetrics(metrics, traffic);
  registerXdsMetrics(metrics, server);
  const mismatches = (): number => compiler?.identityMismatches ?? 0;
  identity.registerMetrics(metrics, mismatches);
  let admin: FastifyInstance | undefined;
  let adminUrl: string | undefined;
  let port: number;
  try {
    port = await listenOn('--xds-address', o.xdsAddress, () =>
      server.listen(o.xdsAddress, identity.running.xdsCredentials),
    );
    if (o.adminAddress) {
      const adminAddress = o.adminAddress;
      const app = buildAdmin({
        metrics,
        xds: server,
        ready: () => ready,
        notReadyReason: () => 'inputs not loaded yet',
        conditions: () => compiler?.currentConditions ?? [],
        version: WEFT_VERSION,
        ...(traffic ? { trafficMetrics: { store: traffic.store, model: traffic.model } } : {}),
      });
      admin = app;
      const i = adminAddress.lastIndexOf(':');
      adminUrl = await listenOn('--admin-address', adminAddress, () =>
        app.listen({
          host: adminAddress.slice(0, i).replace(/^\[|\]$/g, ''),
          port: Number(adminAddress.slice(i + 1)),
        }),
      );
      log.info('admin server listening', { url: adminUrl });
    }
  } catch (err) {
    // Close what already runs (file watchers, the xDS server, the CA's timers), so the process
    // can exit with the error instead of running on without serving.
    stopSource();
    traffic?.stop();
    await admin?.close();
    await server.shutdown(0);
    await identity.stop();
    throw err;
  }
  return {
    server,
    port,
    adminUrl,
    compiler,
    identity,
    ...(traffic ? { trafficMetrics: traffic } : {}),
    nextCompile: () => new Promise<void>((r) => waiters.push(r)),
    stop: async () => {
      stopSource();
      traffic?.stop();
      await admin?.close();
      await server.shutdown();
      await identity.stop();
    },
  };
}
