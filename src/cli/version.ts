/**
 * `weft version`: this CLI's version, the running Weft's (its admin server's `/version`, in a
 * cluster through a port-forward) and the versions the connected proxies report.
 */
import type { Command } from 'commander';
import type { CommandRegistrar } from './index';
import type { ProxyJson } from './proxy';
import { connectRemote, type RemoteFlags, UsageError } from './remote';

/** This CLI's version (package.json three levels above dist/src/cli). */
export function clientVersion(): string {
  return (require('../../../package.json') as { version: string }).version;
}

interface VersionFlags extends RemoteFlags {
  output: string;
}

/** Registers `weft version`. */
export const registerVersion: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('version')
    .description(
      "Print this CLI's version; with --admin-url or --kubernetes/--kubeconfig also the running Weft's\n" +
        'and the Envoy and gRPC versions its connected proxies report. Exit status: 0, or 1 when the\n' +
        'running Weft cannot be reached (the client version is still printed).',
    )
    .option('--admin-url <url>', "a running Weft's admin server")
    .option('--kubernetes', 'reach Weft in the cluster of the current kubeconfig context (port-forward)')
    .option('--kubeconfig <file>', 'as --kubernetes, with this kubeconfig')
    .option('-n, --namespace <ns>', "Weft's namespace in the cluster", 'weft-system')
    .option('--token <token>', 'bearer token for the debug views in a cluster (default: the kubeconfig user)')
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (f: VersionFlags) => {
      if (!['text', 'json'].includes(f.output)) {
        process.stderr.write(`weft version: -o must be text or json, not "${f.output}"\n`);
        setExitCode(2);
        return;
      }
      const out: { client: string; server?: string; proxies?: Record<string, number>; error?: string } = {
        client: clientVersion(),
      };
      if (f.adminUrl || f.kubernetes || f.kubeconfig) {
        try {
          const remote = await connectRemote(f);
          try {
            out.server = (await remote.admin<{ weft?: string }>('/version')).weft ?? 'unknown';
            const counts: Record<string, number> = {};
            try {
              for (const p of await remote.admin<ProxyJson[]>('/debug/proxies')) {
                const v = [p.node.userAgent || 'unknown', p.node.userAgentVersion].filter(Boolean).join(' ');
                counts[v] = (counts[v] ?? 0) + 1;
              }
              out.proxies = counts;
            } catch (err) {
              // Proxies' versions are debug data: a caller without the rights still gets the rest.
              out.error = `proxies: ${err instanceof Error ? err.message : String(err)}`;
            }
          } finally {
            await remote.close();
          }
        } catch (err) {
          if (err instanceof UsageError) throw err;
          out.error = err instanceof Error ? err.message : String(err);
        }
      }
      if (f.output === 'json') process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
      else {
        process.stdout.write(`client: ${out.client}\n`);
        if (out.server) process.stdout.write(`server: ${out.server}\n`);
        if (out.proxies) {
          const entries = Object.entries(out.proxies).sort();
          process.stdout.write(`proxies: ${entries.length === 0 ? 'none connected' : ''}\n`);
          for (const [v, n] of entries) process.stdout.write(`  ${v}: ${n}\n`);
        }
        if (out.error) process.stderr.write(`weft version: ${out.error}\n`);
      }
      setExitCode(out.error && !out.server ? 1 : 0);
    });
};
