/**
 * `weft install`: prints what Weft installs into a cluster (the manifests rendered from the Helm
 * chart), or applies it with server-side apply.
 */
import type { Command } from 'commander';
import { allCrdsYaml } from '../crds/render';
import { loadKubeConfig } from '../kube/client';
import { applyInstall, installManifestsText, installObjects } from '../kube/install';
import type { CommandRegistrar } from './index';

interface InstallFlags {
  crds?: boolean;
  apply?: boolean;
  kubeconfig?: string;
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
        'MeshConfig: it is created when missing and otherwise left as you set it.',
    )
    .option('--crds', 'only the CustomResourceDefinitions')
    .option('--apply', 'apply to the cluster (server-side apply) instead of printing')
    .option(
      '--kubeconfig <file>',
      'kubeconfig of the cluster for --apply (default: KUBECONFIG, ~/.kube/config)',
    )
    .action(async (opts: InstallFlags) => {
      try {
        if (!opts.apply) {
          if (opts.kubeconfig) throw new Error('--kubeconfig needs --apply (printing needs no cluster)');
          process.stdout.write(opts.crds ? allCrdsYaml() : installManifestsText());
          setExitCode(0);
          return;
        }
        const objects = installObjects().filter((o) => !opts.crds || o.kind === 'CustomResourceDefinition');
        await applyInstall(loadKubeConfig(opts.kubeconfig), objects, {
          report: (line) => process.stdout.write(`${line}\n`),
        });
        setExitCode(0);
      } catch (err) {
        process.stderr.write(`weft install: ${err instanceof Error ? err.message : String(err)}\n`);
        setExitCode(1);
      }
    });
};
