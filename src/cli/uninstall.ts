/** `weft uninstall`: removes what `weft install` created, and nothing of the user's. */
import type { Command } from 'commander';
import { loadKubeConfig } from '../kube/client';
import { installObjects, uninstall } from '../kube/install';
import type { CommandRegistrar } from './index';

/** Registers `weft uninstall`. */
export const registerUninstall: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('uninstall')
    .description(
      'Remove what weft install created: the weft Deployment, Service, PodDisruptionBudget,\n' +
        'ServiceAccount and RBAC, the weft-sidecar-injector, weft-envoypatch-validator and\n' +
        'weft-smi-validator webhooks, and the TrafficMetrics APIServices (left behind, they would\n' +
        'keep every deleted namespace Terminating).\n\n' +
        'Your objects stay: the MeshConfig with your mesh settings (unless --delete-config),\n' +
        'TrafficSplits, TrafficTargets, routes and EnvoyPatches, and the CRDs that\n' +
        'hold them (unless --crds). The weft-system namespace stays too, with what Weft created in it\n' +
        'at run time (the weft-ca Secret holding the mesh CA, the weft-leader Lease), and so do the\n' +
        'weft-ca-bundle ConfigMaps in mesh namespaces; delete them with kubectl once you are sure.\n' +
        'Pods already injected keep their sidecars until they are re-created.',
    )
    .option('--crds', 'also delete the CRDs, and with them every SMI object in the cluster')
    .option('--delete-config', 'also delete the MeshConfig weft-system/mesh (your mesh settings)')
    .option('--kubeconfig <file>', 'kubeconfig of the cluster (default: KUBECONFIG, ~/.kube/config)')
    .action(async (opts: { crds?: boolean; deleteConfig?: boolean; kubeconfig?: string }) => {
      if (opts.crds)
        process.stderr.write(
          'weft uninstall: warning: --crds deletes the SMI and Weft CRDs, and the API server then deletes ' +
            'every TrafficSplit, TrafficTarget, IdentityBinding, HTTPRouteGroup, TCPRoute, UDPRoute, MeshConfig and EnvoyPatch ' +
            'in every namespace\n',
        );
      try {
        await uninstall(loadKubeConfig(opts.kubeconfig), installObjects(), {
          crds: opts.crds,
          deleteConfig: opts.deleteConfig,
          report: (line) => process.stdout.write(`${line}\n`),
        });
        const keptConfig =
          opts.deleteConfig || opts.crds ? '' : ', the MeshConfig (--delete-config deletes it)';
        process.stdout.write(
          `kept: namespace weft-system (kubectl delete namespace weft-system removes it and all in it)${keptConfig}` +
            (opts.crds ? '\n' : ', and the CRDs with your SMI objects (--crds deletes them)\n'),
        );
        setExitCode(0);
      } catch (err) {
        process.stderr.write(`weft uninstall: ${err instanceof Error ? err.message : String(err)}\n`);
        setExitCode(1);
      }
    });
};
