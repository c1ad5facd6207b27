/**
 * `weft conformance`: runs the SMI conformance suite (`e2e/scenarios`) on one or both data-plane
 * flavors and prints a table per SMI API with pass/fail per assertion and the flavor it ran on,
 * ending with `N passed, N failed` over everything that ran; writes the JSON report.
 * The local driver brings up a real kube-apiserver, Weft and the workloads on this machine
 * (proxyless gRPC workloads; for the Envoy flavor, pods in network namespaces with Weft's injected
 * Envoy sidecars); the cluster driver deploys the workloads into the current kubectl context,
 * where Weft is installed (see `e2e/cluster/README.md`), proxyless gRPC only for now.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ClusterDriver, DEFAULT_ECHO_IMAGE } from '../conformance/cluster-driver';
import { type Driver, FLAVORS, type Flavor } from '../conformance/driver';
import { LocalDriver } from '../conformance/local-driver';
import { envoyFlavorUnavailable, LocalEnvoyDriver } from '../conformance/local-envoy-driver';
import { formatReport } from '../conformance/report';
import { mergeReports, type Report, runSuite } from '../conformance/runner';
import { loadSuite, ScenarioError } from '../conformance/schema';
import { setLogLevel } from '../log';
import type { CommandRegistrar } from './index';

interface ConformanceFlags {
  scenarios: string;
  only?: string[];
  report: string;
  driver: string;
  flavor: string;
  output: string;
  kubeconfig?: string;
  context?: string;
  kubectl?: string;
  image: string;
  weftNamespace: string;
  keepWorkloads?: boolean;
}

/** The drivers `--driver` accepts. */
export const DRIVERS = ['local', 'cluster'] as const;

/** What `--flavor` accepts. */
export const FLAVOR_CHOICES = ['both', ...FLAVORS] as const;

/**
 * The driver the flags ask for, on one flavor. `last`: no flavor runs after this one. Only the last
 * flavor's workloads may be kept: the next flavor deploys the same Deployments differently, and
 * would find the previous flavor's pods still running.
 */
function makeDriver(f: ConformanceFlags, flavor: Flavor, last: boolean): Driver {
  if (f.driver === 'local') return flavor === 'envoy' ? new LocalEnvoyDriver() : new LocalDriver();
  return new ClusterDriver({
    flavor,
    ...(f.kubeconfig ? { kubeconfig: f.kubeconfig } : {}),
    ...(f.context ? { context: f.context } : {}),
    ...(f.kubectl ? { kubectl: f.kubectl } : {}),
    image: f.image,
    weftNamespace: f.weftNamespace,
    ...(f.keepWorkloads && last ? { keepWorkloads: true } : {}),
  });
}

/** The scenarios shipped with Weft (the package root's `e2e/scenarios`). */
export function defaultScenariosDir(): string {
  // This file runs from dist/src/cli; the scenarios stay in the source tree.
  return join(__dirname, '..', '..', '..', 'e2e', 'scenarios');
}

/** Registers `weft conformance`. */
export const registerConformance: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('conformance')
    .description(
      "Run the SMI conformance suite: apply each scenario's objects, send real calls between " +
        'workloads and check every outcome, on proxyless gRPC, on Envoy sidecars, or both. Prints a table ' +
        'per SMI API and "N passed, N failed"; exit status 0 when all pass, 1 when any fails, 2 on unusable input or a ' +
        'driver that cannot start.',
    )
    .option(
      '--scenarios <dir>',
      'scenarios folder (workloads.yaml and access/, specs/, split/)',
      defaultScenariosDir(),
    )
    .option('--only <id...>', 'run only scenarios whose id (e.g. split/exact) contains one of these')
    .option('--report <file>', 'where to write the JSON report', 'conformance-report.json')
    .option(
      '--driver <name>',
      'local: this machine runs a kube-apiserver, Weft and the workloads in process (nothing to install). ' +
        'cluster: the current kubectl context; needs Weft installed there with its injector (weft install --apply, its image pullable by the ' +
        'nodes) and the echo image built and loaded (see e2e/cluster/README.md); deploys e2e/cluster/workloads.yaml into ' +
        'namespace conformance, reaches the callers and Weft with kubectl port-forward, and deletes the ' +
        'workloads at the end',
      'local',
    )
    .option(
      '--flavor <name>',
      'grpc: proxyless gRPC workloads (grpc-js-xds) with weft agent. envoy: plain gRPC apps behind ' +
        "Weft's injected Envoy sidecar; the local driver runs each pod in a network namespace (needs root, ip, " +
        'iptables, unshare, setpriv and Envoy: scripts/setup-envoy.sh or WEFT_ENVOY_BIN), the cluster driver ' +
        'deploys the same Deployments without the weft.dev/flavor: grpc annotation. both: grpc, then envoy',
      'both',
    )
    .option(
      '--kubeconfig <file>',
      'cluster driver: kubeconfig for kubectl (default: KUBECONFIG, ~/.kube/config)',
    )
    .option(
      '--context <name>',
      "cluster driver: kubeconfig context (default: the kubeconfig's current context)",
    )
    .option('--kubectl <file>', 'cluster driver: kubectl binary (default: KUBECTL, else kubectl on PATH)')
    .option(
      '--image <ref>',
      'cluster driver: image of the echo workloads; it must be pullable by the nodes (kind load docker-image, ' +
        'or a registry the cluster can pull from)',
      DEFAULT_ECHO_IMAGE,
    )
    .option(
      '--weft-namespace <ns>',
      "cluster driver: Weft's namespace (its Service weft and its pods)",
      'weft-system',
    )
    .option(
      '--keep-workloads',
      "cluster driver: leave the workloads deployed at the end (a rerun skips the rollout); with both flavors, the last flavor's",
    )
    .option('-o, --output <format>', 'table or json (the report on stdout)', 'table')
    .action(async (f: ConformanceFlags) => {
      setLogLevel('silent');
      if (!(DRIVERS as readonly string[]).includes(f.driver)) {
        console.error(`weft conformance: unknown driver "${f.driver}"; use ${DRIVERS.join(' or ')}`);
        setExitCode(2);
        return;
      }
      if (f.output !== 'table' && f.output !== 'json') {
        console.error(`weft conformance: --output must be table or json, not "${f.output}"`);
        setExitCode(2);
        return;
      }
      let suite: ReturnType<typeof loadSuite>;
      try {
        suite = loadSuite(resolve(f.scenarios), f.only ?? []);
      } catch (err) {
        if (!(err instanceof ScenarioError)) throw err;
        console.error(`weft conformance: invalid scenarios:\n${err.message}`);
        setExitCode(2);
        return;
      }
      if (suite.scenarios.length === 0) {
        console.error('weft conformance: no scenario matches');
        setExitCode(2);
        return;
      }
      if (!(FLAVOR_CHOICES as readonly string[]).includes(f.flavor)) {
        console.error(`weft conformance: unknown flavor "${f.flavor}"; use ${FLAVOR_CHOICES.join(', ')}`);
        setExitCode(2);
        return;
      }
      const flavors: Flavor[] = f.flavor === 'both' ? [...FLAVORS] : [f.flavor as Flavor];
      if (f.driver === 'local' && flavors.includes('envoy')) {
        const missing = envoyFlavorUnavailable();
        if (missing) {
          console.error(
            `weft conformance: the Envoy flavor cannot run here: ${missing}; or use --flavor grpc`,
          );
          setExitCode(2);
          return;
        }
      }
      try {
        const reports: Report[] = [];
        for (const flavor of flavors) {
          const driver = makeDriver(f, flavor, flavor === flavors[flavors.length - 1]);
          try {
            try {
              await driver.start(suite.workloads);
            } catch (err) {
              // A world that cannot be brought up (no cluster, Weft not installed, the image not
              // pullable) is not a conformance failure: say what is missing, not a stack.
              console.error(
                `weft conformance: the ${driver.name} driver${flavors.length > 1 ? ` (${flavor} flavor)` : ''} cannot start: ${(err as Error).message}`,
              );
              setExitCode(2);
              return;
            }
            reports.push(
              await runSuite(driver, suite, {
                onScenario: (r) => {
                  if (f.output === 'table') {
                    const verdict = r.skipped !== undefined ? 'skip' : r.passed ? 'ok  ' : 'FAIL';
                    process.stderr.write(
                      `${verdict} ${r.id} [${r.flavor}] (${(r.durationMs / 1000).toFixed(1)} s)\n`,
                    );
                  }
                },
              }),
            );
          } finally {
            await driver.stop();
          }
        }
        const report = mergeReports(reports);
        writeFileSync(f.report, `${JSON.stringify(report, null, 2)}\n`);
        if (f.output === 'json') console.log(JSON.stringify(report, null, 2));
        else console.log(formatReport(report, f.report));
        setExitCode(report.failed === 0 ? 0 : 1);
      } finally {
        // grpc-js's file_watcher certificate providers keep an interval running when a channel
        // closes before releasing them (seen with grpc-js 1.14), which would keep this one-shot
        // command alive after its work is done; the exit code is already set.
        setTimeout(() => process.exit(), 2000).unref();
      }
    });
};
