/**
 * `weft conformance`: runs the SMI conformance suite (`e2e/scenarios`) and prints a table per SMI
 * API with pass/fail per assertion, ending with `N passed, N failed`; writes the JSON report.
 * The local driver brings up a real kube-apiserver, Weft and proxyless gRPC workloads on this
 * machine; see `e2e/cluster/README.md` for running the scenarios' workloads on a cluster.
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { LocalDriver } from '../conformance/local-driver';
import { formatReport } from '../conformance/report';
import { runSuite } from '../conformance/runner';
import { loadSuite, ScenarioError } from '../conformance/schema';
import { setLogLevel } from '../log';
import type { CommandRegistrar } from './index';

interface ConformanceFlags {
  scenarios: string;
  only?: string[];
  report: string;
  driver: string;
  output: string;
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
        'proxyless gRPC workloads and check every outcome. Prints a table per SMI API and ' +
        '"N passed, N failed"; exit status 0 when all pass, 1 when any fails, 2 on unusable input.',
    )
    .option(
      '--scenarios <dir>',
      'scenarios folder (workloads.yaml and access/, specs/, split/)',
      defaultScenariosDir(),
    )
    .option('--only <id...>', 'run only scenarios whose id (e.g. split/exact) contains one of these')
    .option('--report <file>', 'where to write the JSON report', 'conformance-report.json')
    .option('--driver <name>', 'local (this machine: kube-apiserver, Weft and workloads in process)', 'local')
    .option('-o, --output <format>', 'table or json (the report on stdout)', 'table')
    .action(async (f: ConformanceFlags) => {
      setLogLevel('silent');
      if (f.driver !== 'local') {
        console.error(
          `weft conformance: driver "${f.driver}" cannot be run by this command; only "local" is. ` +
            'To check a cluster, deploy e2e/cluster/ as e2e/cluster/README.md describes.',
        );
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
      const driver = new LocalDriver();
      try {
        await driver.start(suite.workloads);
        const report = await runSuite(driver, suite, {
          onScenario: (r) => {
            if (f.output === 'table') {
              process.stderr.write(
                `${r.passed ? 'ok  ' : 'FAIL'} ${r.id} (${(r.durationMs / 1000).toFixed(1)} s)\n`,
              );
            }
          },
        });
        writeFileSync(f.report, `${JSON.stringify(report, null, 2)}\n`);
        if (f.output === 'json') console.log(JSON.stringify(report, null, 2));
        else console.log(formatReport(report, f.report));
        setExitCode(report.failed === 0 ? 0 : 1);
      } finally {
        await driver.stop();
        // grpc-js's file_watcher certificate providers keep an interval running when a channel
        // closes before releasing them (seen with grpc-js 1.14), which would keep this one-shot
        // command alive after its work is done; the exit code is already set.
        setTimeout(() => process.exit(), 2000).unref();
      }
    });
};
