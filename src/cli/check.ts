/**
 * `weft check [--pre]`: is the cluster ready for Weft (`--pre`), and is the installed Weft working?
 * Each finding is ok, warning or error, says what was seen and, for a problem, the fix. Exit 0 all
 * good, 1 problems found, 2 nothing could be checked (no kubeconfig, no API server).
 */

import type { KubeConfig } from '@kubernetes/client-node';
import type { Command } from 'commander';
import { type Finding, postInstallChecks, preInstallChecks, proxyFindings } from '../kube/check';
import { KubeClient, loadKubeConfig } from '../kube/client';
import { installObjects } from '../kube/install';
import type { CommandRegistrar } from './index';
import { type ProxyJson, proxyRows } from './proxy';
import { connectRemote } from './remote';
import { checkApiServer } from './status';

interface CheckFlags {
  pre?: boolean;
  kubeconfig?: string;
  context?: string;
  namespace: string;
  output: string;
  token?: string;
  admin: boolean;
}

/** What `weft check -o json` prints. */
export interface CheckReport {
  /** Whether these are the pre-install checks. */
  pre: boolean;
  /** The API server's URL, when one was found. */
  server?: string;
  /** Its Kubernetes version. */
  serverVersion?: string;
  findings: Finding[];
  /** ok: no warnings or errors; problems: some; unchecked: no API server to check. */
  result: 'ok' | 'problems' | 'unchecked';
}

/**
 * Loads the kubeconfig and switches to `context` when given; throws with the contexts there are
 * when it names none of them.
 */
export function kubeConfigFor(kubeconfig: string | undefined, context: string | undefined): KubeConfig {
  const kc = loadKubeConfig(kubeconfig);
  if (context) {
    const names = kc.getContexts().map((c) => c.name);
    if (!names.includes(context))
      throw new Error(
        `context ${context} is not in the kubeconfig; it has ${names.length === 0 ? 'none' : names.join(', ')} (kubectl config get-contexts lists them)`,
      );
    kc.setCurrentContext(context);
  }
  return kc;
}

/** Whether the findings hold a problem (a warning or an error). */
export const hasProblems = (findings: readonly Finding[]): boolean =>
  findings.some((f) => f.level === 'warning' || f.level === 'error');

/** The findings as text: one line each, the fix indented under a problem. */
export function findingsText(findings: readonly Finding[]): string {
  const label: Record<Finding['level'], string> = {
    ok: 'ok',
    warning: 'WARNING',
    error: 'ERROR',
    skipped: 'skipped',
  };
  const width = Math.max(...findings.map((f) => f.check.length), 5);
  const lines: string[] = [];
  for (const f of findings) {
    lines.push(`${label[f.level].padEnd(8)} ${f.check.padEnd(width)}  ${f.message}`);
    if (f.fix && (f.level === 'warning' || f.level === 'error'))
      lines.push(`${' '.repeat(9 + width)}  fix: ${f.fix}`);
  }
  const count = (l: Finding['level']) => findings.filter((f) => f.level === l).length;
  const errors = count('error');
  const warnings = count('warning');
  lines.push(
    errors + warnings === 0
      ? 'All checks passed.'
      : `${errors} error${errors === 1 ? '' : 's'}, ${warnings} warning${warnings === 1 ? '' : 's'}.`,
  );
  return `${lines.join('\n')}\n`;
}

/**
 * Asks a running Weft (through a port-forward to a ready pod) about its proxies; a Weft that cannot
 * be reached gives one `skipped` finding with the reason, as this part is optional.
 */
async function adminFindings(f: CheckFlags): Promise<Finding[]> {
  let remote: Awaited<ReturnType<typeof connectRemote>> | undefined;
  try {
    remote = await connectRemote({
      kubeconfig: f.kubeconfig,
      kubernetes: true,
      namespace: f.namespace,
      ...(f.context ? { context: f.context } : {}),
      ...(f.token ? { token: f.token } : {}),
    });
    const proxies = await remote.admin<ProxyJson[]>('/debug/proxies');
    return proxyFindings(
      proxyRows(proxies).map((r) => ({
        proxy: r.proxy,
        inSync: r.inSync,
        ...(r.lastNack ? { lastNack: r.lastNack } : {}),
      })),
      remote.where,
    );
  } catch (err) {
    return [
      {
        level: 'skipped',
        check: 'proxies',
        message: `proxies not checked: Weft's admin server cannot be reached (${err instanceof Error ? err.message : String(err)})`,
      },
    ];
  } finally {
    await remote?.close();
  }
}

/** Runs the checks the flags ask for; rejects only when the API server cannot be asked at all. */
export async function runCheck(f: CheckFlags): Promise<CheckReport> {
  const client = new KubeClient(kubeConfigFor(f.kubeconfig, f.context));
  const version = await checkApiServer(client);
  const findings: Finding[] = [
    {
      level: 'ok',
      check: 'api-server',
      message: `the API server at ${client.serverUrl} answers: Kubernetes ${version}`,
    },
  ];
  if (f.pre) findings.push(...(await preInstallChecks(client, installObjects())));
  else {
    findings.push(...(await postInstallChecks(client, { namespace: f.namespace })));
    if (f.admin) findings.push(...(await adminFindings(f)));
  }
  return {
    pre: f.pre === true,
    server: client.serverUrl,
    serverVersion: version,
    findings,
    result: hasProblems(findings) ? 'problems' : 'ok',
  };
}

/** Registers `weft check`. */
export const registerCheck: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('check')
    .description(
      'Check a cluster before installing Weft (--pre) or the installed Weft, and say how to fix what\n' +
        'is wrong.\n\n' +
        '--pre: the API server answers (and its version), you may create every kind the install\n' +
        'holds (SelfSubjectAccessReview), which CRDs exist already.\n' +
        "Without --pre: Weft's Deployment is ready, the injector and EnvoyPatch webhooks have a\n" +
        'caBundle and their Service has endpoints, the CA Secret and the weft-ca-bundle ConfigMap in\n' +
        'every mesh namespace exist, which namespaces are in the mesh, SMI objects in namespaces\n' +
        "without weft.dev/mesh=enabled (Weft ignores them), and, when Weft's admin server can be\n" +
        'reached, proxies out of sync and NACKs.\n\n' +
        'Exit status: 0 all good, 1 problems found, 2 nothing could be checked (no API server).',
    )
    .option('--pre', 'check the cluster before installing')
    .option('--kubeconfig <file>', 'kubeconfig of the cluster (default: KUBECONFIG, ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use (default: the current one)')
    .option('-n, --namespace <ns>', "Weft's namespace", 'weft-system')
    .option('--token <token>', "bearer token for Weft's debug views (default: the kubeconfig user's)")
    .option('--no-admin', "do not ask Weft's admin server about proxies")
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (f: CheckFlags) => {
      if (!['text', 'json'].includes(f.output)) {
        process.stderr.write(`weft check: -o must be text or json, not "${f.output}"\n`);
        setExitCode(2);
        return;
      }
      let report: CheckReport;
      try {
        report = await runCheck(f);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        if (f.output === 'json') {
          const out: CheckReport = { pre: f.pre === true, findings: [], result: 'unchecked' };
          process.stdout.write(`${JSON.stringify({ ...out, error: message }, null, 2)}\n`);
        }
        process.stderr.write(`weft check: cannot check: ${message}\n`);
        setExitCode(2);
        return;
      }
      if (f.output === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      else process.stdout.write(findingsText(report.findings));
      setExitCode(report.result === 'ok' ? 0 : 1);
    });
};
