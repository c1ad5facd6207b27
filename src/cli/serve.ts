/**
 * `weft serve`: runs the control plane. Sources:
 * - `--config-dir DIR`: a folder of SMI and Kubernetes manifests (the embedded default, no cluster
 *   needed), recompiled when files change;
 * - `--resources FILE`: raw xDS resources per proxy group (no SMI).
 * The admin server (health, readiness, metrics, debug views) listens on `--admin-address`.
 * xDS is mTLS with client certificates from the mesh CA (`--ca-dir` or `--ca-cert`/`--ca-key`,
 * see serve-identity.ts); plaintext only with `--insecure-xds`.
 */
import { resolve } from 'node:path';
import type { Command } from 'commander';
import type { FastifyInstance } from 'fastify';
import { Metrics } from '../admin/metrics';
import { buildAdmin, registerXdsMetrics } from '../admin/server';
import { parseCidrs, parsePorts } from '../inject/capture';
import type { InjectorOptions, Resources } from '../inject/mutate';
import { FolderSource } from '../inputs/folder-source';
import { logger } from '../log';
import { MeshCompiler } from '../mesh/compiler';
import { afterCompile, rollBackPatchesOnNack } from '../mesh/wiring';
import type { Condition } from '../smi/model';
import { readResourcesFile } from '../static/resources-file';
import { watchFile } from '../static/watch';
import { envoyResourceEncoder } from '../xds/encoder';
import { AdsServer } from '../xds/server/ads-server';
import type { CommandRegistrar } from './index';
import {
  envoyGroupIdentity,
  identityFlags,
  type ServeIdentity,
  type ServeIdentityOptions,
  startIdentityForServe,
} from './serve-identity';
import { DEFAULT_PROXY_IMAGE, DEFAULT_WEFT_IMAGE, startKubeServe } from './serve-kube';

const log = logger('serve');

/** Options of `weft serve`. */
export interface ServeOptions extends ServeIdentityOptions {
  configDir?: string;
  resources?: string;
  xdsAddress: string;
  adminAddress?: string;
  /** Compile with mutual TLS between proxies (default true). */
  mtls?: boolean;
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
  /** Resolves after the next recompile (tests use it to wait for a change to land). */
  nextCompile(): Promise<void>;
  stop(): Promise<void>;
}

function describeConditions(list: readonly Condition[], seen: Set<string>): void {
  const now = new Set<string>();
  for (const c of list) {
    if (c.status === 'True' && c.type !== 'Conflicted') continue;
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
    c = new MeshCompiler(server.cache, encoder, { mtls: o.mtls ?? true });
    if ((o.mtls ?? true) && !identity.running.ca) {
      log.warn(
        'proxies are compiled for mutual TLS but Weft has no CA (--ca-dir): they get no certificates, so calls between them fail; pass --ca-dir, or --no-mtls for plaintext development',
      );
    }
    compiler = c;
    const source = new FolderSource(dir);
    const seen = new Set<string>();
    const recompile = (): void => {
      const { objects, conditions } = source.snapshot();
      const r = c.update(objects, conditions);
      identity.checkModel(c.currentModel);
      afterCompile(metrics, server, r, objects.length);
      describeConditions(r.conditions, seen);
      compiled();
    };
    source.on('change', recompile);
    rollBackPatchesOnNack(server, c);
    await source.start();
    stopSource = () => source.stop();
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
  registerXdsMetrics(metrics, server);
  const mismatches = (): number => compiler?.identityMismatches ?? 0;
  identity.registerMetrics(metrics, mismatches);
  const port = await server.listen(o.xdsAddress, identity.running.xdsCredentials);
  let admin: FastifyInstance | undefined;
  let adminUrl: string | undefined;
  if (o.adminAddress) {
    admin = buildAdmin({
      metrics,
      xds: server,
      ready: () => ready,
      notReadyReason: () => 'inputs not loaded yet',
      conditions: () => compiler?.currentConditions ?? [],
    });
    const i = o.adminAddress.lastIndexOf(':');
    adminUrl = await admin.listen({
      host: o.adminAddress.slice(0, i).replace(/^\[|\]$/g, ''),
      port: Number(o.adminAddress.slice(i + 1)),
    });
    log.info('admin server listening', { url: adminUrl });
  }
  return {
    server,
    port,
    adminUrl,
    compiler,
    identity,
    nextCompile: () => new Promise<void>((r) => waiters.push(r)),
    stop: async () => {
      stopSource();
      await admin?.close();
      await server.shutdown();
      await identity.stop();
    },
  };
}

/** Registers `weft serve`. */
export const registerServe: CommandRegistrar = (program: Command, setExitCode) => {
  const serve = program
    .command('serve')
    .description(
      'Run the control plane: compile the mesh and serve it over xDS (ADS, state of the world and delta).\n\n' +
        'With --config-dir DIR, read every YAML/JSON manifest under DIR (SMI objects, Services,\n' +
        'EndpointSlices, Pods or Deployments, ServiceAccounts, MeshConfig, EnvoyPatch) and recompile\n' +
        'when files change; a file that fails to parse keeps its last good version. Proxies name their\n' +
        'workload in node.id (<namespace>/<pod-or-deployment>) or node.metadata.\n\n' +
        'With --kubernetes (in a cluster) or --kubeconfig FILE, watch the API server instead: every SMI\n' +
        'kind, Services, EndpointSlices, Pods, Deployments, ServiceAccounts, MeshConfig and EnvoyPatch\n' +
        'in namespaces labelled weft.dev/mesh=enabled. Conditions become Events (and status on Weft\n' +
        'kinds), written by the replica holding the weft-leader Lease.\n\n' +
        'With --resources FILE, serve raw Envoy resources per proxy group (a "groups" map) instead.\n\n' +
        'xDS is mutual TLS: proxies present a workload certificate from the mesh CA (--ca-dir), and\n' +
        'their identity comes from it, not from node metadata. Envoy proxies get their certificates\n' +
        'over SDS; proxyless gRPC workloads from weft agent (--ca-address, --bootstrap-tokens), whose\n' +
        '--xds-relay forwards their xDS over mTLS. --insecure-xds serves plaintext for development.',
    )
    .option('--config-dir <dir>', 'folder of manifests to compile and serve')
    .option('--resources <file>', 'file of raw xDS resources per proxy group')
    .option('--xds-address <host:port>', 'address the xDS server listens on', '127.0.0.1:15010')
    .option(
      '--admin-address <host:port>',
      'address of the admin server (health, metrics, debug)',
      '127.0.0.1:15014',
    )
    .option('--no-mtls', 'compile without mutual TLS between proxies (plaintext development mode)')
    .option(
      '--kubernetes',
      'read inputs from the Kubernetes API server (in-cluster credentials, or KUBECONFIG / ~/.kube/config)',
    )
    .option('--kubeconfig <file>', 'kubeconfig of the API server to watch (implies --kubernetes)')
    .option(
      '--mesh-namespace <ns>',
      "Weft's own namespace: MeshConfig, mesh-wide EnvoyPatches, leader Lease",
      'weft-system',
    )
    .option(
      '--ca-secret <name>',
      'Kubernetes mode: Secret in the mesh namespace holding the CA root, created on first start (default weft-ca; not used with --insecure-xds alone)',
    )
    .option(
      '--webhook-address <host:port>',
      'Kubernetes mode: serve the sidecar injector (HTTPS, AdmissionReview at /inject) here; off when unset',
    )
    .option(
      '--weft-image <image>',
      `image of the injected capture init container and weft agent (default ${DEFAULT_WEFT_IMAGE})`,
    )
    .option('--sidecar-image <image>', `image of the injected Envoy sidecar (default ${DEFAULT_PROXY_IMAGE})`)
    .option(
      '--sidecar-resources <json>',
      'resources of the injected Envoy sidecar, e.g. {"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"512Mi"}}',
    )
    .option(
      '--capture-exclude-inbound-ports <ports>',
      'inbound ports of every injected pod left uncaptured, e.g. 22,9000',
    )
    .option(
      '--capture-exclude-outbound-ports <ports>',
      'outbound ports of every injected pod left uncaptured',
    )
    .option(
      '--capture-exclude-outbound-cidrs <cidrs>',
      'outbound IPv4 CIDRs left uncaptured, e.g. 169.254.169.254/32 (cloud metadata)',
    );
  identityFlags(serve).action(async (opts: ServeOptions) => {
    let running: { port: number; stop(): Promise<void> };
    try {
      running =
        opts.kubernetes || opts.kubeconfig
          ? await startKubeServe({ ...opts, kubeconfig: opts.kubeconfig, injector: injectorFromFlags(opts) })
          : await startServe(opts);
    } catch (err) {
      // Start-up errors (a broken CA, a missing flag) name the file and the fix: print just that.
      process.stderr.write(`weft serve: ${err instanceof Error ? err.message : String(err)}\n`);
      setExitCode(1);
      return;
    }
    log.info('weft serving xDS', { port: running.port });
    await new Promise<void>((done) => {
      const stop = (): void => {
        running.stop().then(done, done);
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    setExitCode(0);
  });
};
