/**
 * `weft install`: prints what Weft installs into a cluster (the manifests rendered from the Helm
 * chart), or applies it with server-side apply.
 */
import type { Command } from 'commander';
import { allCrdsYaml } from '../crds/render';
import { type Finding, installSettled, postInstallChecks } from '../kube/check';
import { KubeClient, loadKubeConfig } from '../kube/client';
import { applyInstall, installManifestsText, installObjects } from '../kube/install';
import { findingsText } from './check';
import type { CommandRegistrar } from './index';

interface InstallFlags {
  crds?: boolean;
  apply?: boolean;
  kubeconfig?: string;
  wait?: boolean;
  timeout: string;
}

/** Parses a duration such as `5m`, `90s`, `1m30s`, `500ms` or `120` (seconds) into milliseconds. */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let rest = t;
  while (rest !== '') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!m) throw new Error(`--timeout ${text} is not a duration; write it like 5m, 90s or 1m30s`);
    total += Number(m[1]) * unit[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  if (t === '') throw new Error('--timeout is empty; write it like 5m, 90s or 1m30s');
  return total;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the post-install checks until they pass ({@link installSettled}) or `timeoutMs` runs out;
 * resolves to the last findings and whether they passed. A check that fails to run (the API
 * server briefly away) counts as not passed yet.
 */
export async function waitForInstall(
  client: KubeClient,
  timeoutMs: number,
  namespace = 'weft-system',
  intervalMs = 2000,
): Promise<{ passed: boolean; findings: Finding[] }> {
  const deadline = Date.now() + timeoutMs;
  let findings: Finding[] = [];
  for (;;) {
    try {
      findings = await postInstallChecks(client, { namespace });
      if (installSettled(findings)) return { passed: true, findings };
    } catch (err) {
      // Keep what the last round that ran found: it says more than one failed request does.
      const failed: Finding = {
        level: 'error',
        check: 'api-server',
        message: `checking failed: ${err instanceof Error ? err.message : String(err)}`,
      };
      findings = [...findings.filter((f) => f.check !== 'api-server'), failed];
    }
    const left = deadline - Date.now();
    if (left <= 0) return { passed: false, findings };
    await sleep(Math.min(intervalMs, left));
  }
}

/** Registers `weft install`. */
export const registerInstall: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('install')
    .description(
      "Print Weft's Kubernetes manifests as YAML, or apply them.\n\n" +
        'Everything goes into the weft-system namespace: the CRDs, the weft ServiceAccount with its\n' +
        'RBAC, the weft Deployment (2 replicas), Service and PodDisruptionBudget, the MeshConfig and\n' +
        'the weft-sidecar-injector webhook. It is the Helm chart deploy/helm/weft with default values.\n\n' +
        'weft install | kubectl apply --server-side -f -   install Weft\n' +
        'weft install --apply                              the same, without kubectl\n' +
        'weft install --crds | kubectl apply -f -          only the SMI and Weft CRDs\n\n' +
        '--apply uses server-side apply (field manager weft-install): running it again changes\n' +
        'nothing, and it takes back fields someone else changed on these objects, except the\n' +
        'MeshConfig: it is created when missing and otherwise left as you set it.\n\n' +
        '--wait then waits until the post-install checks pass (weft check: the Deployment ready,\n' +
        'the webhooks configured with a caBundle and served, the CA published) or --timeout runs\n' +
        'out; on timeout it prints the failing checks and exits 1.',
    )
    .option('--crds', 'only the CustomResourceDefinitions')
    .option('--apply', 'apply to the cluster (server-side apply) instead of printing')
    .option(
      '--kubeconfig <file>',
      'kubeconfig of the cluster for --apply (default: KUBECONFIG, ~/.kube/config)',
    )
    .option('--wait', 'with --apply: wait until the post-install checks pass')
    .option('--timeout <duration>', 'how long --wait waits (5m, 90s, 1m30s)', '5m')
    .action(async (opts: InstallFlags) => {
      try {
        if (!opts.apply) {
          if (opts.kubeconfig) throw new Error('--kubeconfig needs --apply (printing needs no cluster)');
          if (opts.wait) throw new Error('--wait needs --apply (it waits for what --apply installed)');
          process.stdout.write(opts.crds ? allCrdsYaml() : installManifestsText());
          setExitCode(0);
          return;
        }
        if (opts.wait && opts.crds)
          throw new Error('--wait checks a running Weft, which --crds does not install; drop one of them');
        const timeoutMs = parseDuration(opts.timeout);
        const objects = installObjects().filter((o) => !opts.crds || o.kind === 'CustomResourceDefinition');
        const kc = loadKubeConfig(opts.kubeconfig);
        await applyInstall(kc, objects, {
          report: (line) => process.stdout.write(`${line}\n`),
        });
        if (opts.wait) {
          process.stdout.write(`waiting up to ${opts.timeout} for the post-install checks to pass\n`);
          const r = await waitForInstall(new KubeClient(kc), timeoutMs);
          if (!r.passed) {
            const failing = r.findings.filter(
              (f) => f.level === 'error' || (f.check === 'deployment' && f.level !== 'ok'),
            );
            process.stderr.write(
              `weft install: Weft is installed but not working after ${opts.timeout}:\n${findingsText(failing)}`,
            );
            setExitCode(1);
            return;
          }
          process.stdout.write(findingsText(r.findings));
        }
        setExitCode(0);
      } catch (err) {
        process.stderr.write(`weft install: ${err instanceof Error ? err.message : String(err)}\n`);
        setExitCode(1);
      }
    });
};
