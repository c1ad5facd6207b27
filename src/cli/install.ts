/** `weft install`: prints what Weft installs into a cluster, for `kubectl apply -f -`. */
import type { Command } from 'commander';
import { allCrdsYaml } from '../crds/render';
import type { CommandRegistrar } from './index';

/** Registers `weft install`. */
export const registerInstall: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('install')
    .description(
      "Print Weft's Kubernetes manifests as YAML for kubectl.\n\n" +
        'weft install --crds | kubectl apply -f -     installs every SMI and Weft CRD',
    )
    .option('--crds', 'print the CustomResourceDefinitions')
    .action((opts: { crds?: boolean }) => {
      if (!opts.crds) {
        process.stderr.write('weft install: choose what to print: --crds\n');
        setExitCode(2);
        return;
      }
      process.stdout.write(allCrdsYaml());
      setExitCode(0);
    });
};
