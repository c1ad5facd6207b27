/**
 * The `weft` command line. Each subcommand lives in its own file under `src/cli/` and registers
 * itself on the program built here; `main` returns the process exit code instead of exiting so
 * tests can drive the CLI in-process.
 */
import { Command, CommanderError, Help } from 'commander';

/** A subcommand module: adds one command to the program; its action returns an exit code. */
export type CommandRegistrar = (program: Command, setExitCode: (code: number) => void) => void;

import { registerAgent } from './agent';
import { registerCa } from './ca';
import { registerCheck } from './check';
import { registerCompletion } from './completion';
import { registerConformance } from './conformance';
import { registerDashboard } from './dashboard';
import { registerDemo } from './demo';
import { registerDiff } from './diff';
import { registerExplain } from './explain';
import { registerInstall } from './install';
import { registerProxy } from './proxy';
import { registerRender } from './render';
import { registerServe } from './serve';
import { registerStatus } from './status';
import { registerTop } from './top';
import { registerTopology } from './topology';
import { registerUninstall } from './uninstall';
import { registerVersion } from './version';

const registrars: CommandRegistrar[] = [
  registerServe,
  registerRender,
  registerInstall,
  registerUninstall,
  registerCheck,
  registerCa,
  registerAgent,
  registerStatus,
  registerProxy,
  registerTop,
  registerTopology,
  registerDashboard,
  registerDemo,
  registerConformance,
  registerDiff,
  registerExplain,
  registerVersion,
  registerCompletion,
];

/** Builds the `weft` program with every registered subcommand. */
export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('weft')
    .description(
      'Weft: a Service Mesh Interface (SMI) control plane. It compiles SMI objects into Envoy ' +
        'configuration and serves it to Envoy sidecars and proxyless gRPC workloads over xDS.',
    )
    .version(version(), '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .configureHelp({
      // Descriptions broken into lines by hand are shown as written: wrapping them again to the
      // terminal's width broke every line in two.
      boxWrap(this: Help, str: string, width: number): string {
        return str.includes('\n') ? str : Help.prototype.boxWrap.call(this, str, width);
      },
    })
    .exitOverride();
  for (const register of registrars) register(program, setExitCode);
  // The command list shows each command's first sentence; `weft <command> --help` shows it all.
  for (const cmd of program.commands) {
    if (cmd.summary()) continue;
    const first = cmd.description().split(/\n\n|(?<=\.)\s/)[0] ?? '';
    cmd.summary(first.replace(/\s*\n\s*/g, ' ').replace(/[.:]$/, ''));
  }
  return program;
}

/** Runs the CLI with `argv` (as in `process.argv`) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  let code = 0;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; usage errors exit 2 as documented.
      return err.exitCode === 0 ? 0 : 2;
    }
    throw err;
  }
  return code;
}

function version(): string {
  // package.json sits two levels above dist/src/cli at run time.
  const pkg = require('../../../package.json') as { version: string };
  return pkg.version;
}
