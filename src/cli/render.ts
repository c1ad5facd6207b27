/**
 * `weft render`: compiles manifests offline, with no cluster, through exactly the production path,
 * and prints every proxy's resources (canonical proto3 JSON, as Envoy's config dump shows them)
 * and every condition. Exit 0 without error conditions, 1 with, 2 on unusable arguments.
 */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { readManifests } from '../inputs/folder';
import { renderMesh, renderMeshJudged } from '../mesh/render';
import { judgeFor } from '../patch/envoy-judge';
import type { CommandRegistrar } from './index';

interface RenderFlags {
  file: string[];
  proxy?: string;
  flavor: string;
  output: string;
  mtls: boolean;
  envoy: string | boolean;
}

/** Registers `weft render`. */
export const registerRender: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('render')
    .description(
      'Compile SMI manifests offline and print the Envoy configuration of every proxy.\n\n' +
        'Reads YAML/JSON files or folders (recursively), builds the mesh exactly as `weft serve` does,\n' +
        'and prints {"proxies": [{name, identity, flavor, resources}], "conditions": [...]}. EnvoyPatch\n' +
        'objects in the input are applied, each patched proxy judged by Envoy when a binary is found. Exit status: 0 no error conditions, 1 error conditions, 2 bad arguments.',
    )
    .requiredOption(
      '-f, --file <path>',
      'a manifest file or folder (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--proxy <namespace/workload>', 'render only this workload')
    .option('--flavor <flavor>', 'envoy, grpc or both', 'envoy')
    .option('-o, --output <format>', 'json or yaml', 'json')
    .option('--no-mtls', 'compile without mutual TLS (plaintext development mode)')
    .option(
      '--envoy <path>',
      'Envoy binary judging patched proxies (default: WEFT_ENVOY_BIN, the setup cache, then PATH)',
    )
    .option('--no-envoy', "judge patches with Weft's own checks only")
    .action(async (flags: RenderFlags) => {
      const flavors: string[] = flags.flavor === 'both' ? ['envoy', 'grpc'] : [flags.flavor];
      if (!flavors.every((f) => f === 'envoy' || f === 'grpc')) {
        process.stderr.write(`weft render: --flavor must be envoy, grpc or both, not "${flags.flavor}"\n`);
        setExitCode(2);
        return;
      }
      if (flags.output !== 'json' && flags.output !== 'yaml') {
        process.stderr.write(`weft render: -o must be json or yaml, not "${flags.output}"\n`);
        setExitCode(2);
        return;
      }
      if (flags.proxy !== undefined && !/^[^/]+\/[^/]+$/.test(flags.proxy)) {
        process.stderr.write(`weft render: --proxy must be <namespace>/<workload>, not "${flags.proxy}"\n`);
        setExitCode(2);
        return;
      }
      let out: ReturnType<typeof renderMesh>;
      try {
        const files = await readManifests(flags.file);
        const opts = { proxy: flags.proxy, flavors: flavors as ('envoy' | 'grpc')[], mtls: flags.mtls };
        const judge = judgeFor(flags.envoy);
        out = judge ? await renderMeshJudged(files, opts, judge) : renderMesh(files, opts);
      } catch (err) {
        process.stderr.write(`weft render: ${err instanceof Error ? err.message : String(err)}\n`);
        setExitCode(2);
        return;
      }
      process.stdout.write(
        flags.output === 'json' ? `${JSON.stringify(out, null, 2)}\n` : stringify(out, { lineWidth: 0 }),
      );
      for (const c of out.conditions) {
        if (c.severity === 'Error' && c.status !== 'True') process.stderr.write(`error: ${c.message}\n`);
      }
      setExitCode(out.conditions.some((c) => c.severity === 'Error' && c.status !== 'True') ? 1 : 0);
    });
};
