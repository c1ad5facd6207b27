/**
 * `weft serve`: the command line of the control plane. The assembly itself (sources, compiler,
 * cache, servers, identity) lives in src/serve, shared with the demo and the conformance drivers.
 */
import type { Command } from 'commander';
import { formatDuration } from '../identity/duration';
import { logger } from '../log';
import { injectorFromFlags, type ServeOptions, startServe } from '../serve/folder';
import { DEFAULT_PROXY_IMAGE, DEFAULT_WEFT_IMAGE, startKubeServe } from '../serve/kube';
import type { CommandRegistrar } from './index';

const log = logger('serve');

/** Adds the identity flags to `weft serve`. */
export function identityFlags(c: Command): Command {
  return c
    .option('--ca-dir <dir>', 'the mesh CA folder (created on first start; see weft ca)')
    .option('--ca-cert <file>', 'a root certificate you bring (PEM), with --ca-key')
    .option('--ca-key <file>', 'the private key of --ca-cert (PEM)')
    .option('--ca-trust <file>', 'extra roots to keep trusting (PEM), with --ca-cert')
    .option('--trust-domain <domain>', "SPIFFE trust domain (default: the root's, else cluster.local)")
    .option('--cert-ttl <duration>', 'lifetime of workload certificates', formatDuration(24 * 3600_000))
    .option(
      '--ca-address <host:port>',
      'serve the certificate endpoint for weft agent here (folder mode checks --bootstrap-tokens; Kubernetes mode checks ServiceAccount tokens of audience weft with TokenReview)',
    )
    .option('--bootstrap-tokens <file>', 'tokens entitling agents to identities (weft ca token)')
    .option(
      '--insecure-xds',
      'DEVELOPMENT ONLY: serve xDS in plaintext; proxies are not authenticated and can ask for any config',
    );
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
      '--envoy <path>',
      "Envoy binary that judges every patched proxy config before it is served (default: WEFT_ENVOY_BIN, the setup cache, then PATH; none found: Weft's own checks only)",
    )
    .option('--no-envoy', "judge EnvoyPatches with Weft's own checks only")
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
      '--metrics-api-address <host:port>',
      'Kubernetes mode: serve the SMI TrafficMetrics API (metrics.smi-spec.io) as an aggregated API here (HTTPS, for the APIServices of the chart); off when unset',
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
