/**
 * `weft agent`: runs beside a proxyless gRPC workload and keeps `cert.pem`, `key.pem` and
 * `ca.pem` fresh in a folder for grpc's `file_watcher` certificate provider. The key is made
 * locally; Weft's certificate endpoint signs a CSR for the identity the token entitles.
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { WorkloadAgent } from '../identity/agent';
import { formatDuration, parseDuration } from '../identity/duration';
import { controlPlaneIdentity } from '../identity/tls';
import { startAgentRelay, type XdsRelay } from '../identity/xds-relay';
import { logger } from '../log';
import type { CommandRegistrar } from './index';

const log = logger('agent');

interface AgentFlags {
  caServer: string;
  tokenFile: string;
  caFile: string;
  out: string;
  identity?: string;
  serverIdentity?: string;
  bundleRefresh: string;
  once?: boolean;
  xdsRelay?: string;
  xdsServer?: string;
}

/** Registers `weft agent`. */
export const registerAgent: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('agent')
    .description(
      'Keep a workload certificate, its key and the trust bundle fresh in a folder (cert.pem, key.pem,\n' +
        'ca.pem) for proxyless gRPC file_watcher certificate providers. The key never leaves this\n' +
        'machine: the agent sends Weft a CSR with a token, and Weft signs it for the identity the token\n' +
        'entitles. Certificates are renewed at 2/3 of their lifetime; files are replaced atomically.',
    )
    .requiredOption('--ca-server <host:port>', "Weft's certificate endpoint (weft serve --ca-address)")
    .requiredOption('--token-file <file>', 'file holding the bearer token (re-read for every request)')
    .requiredOption('--ca-file <file>', 'PEM roots to trust for the first contact (the CA folder bundle.pem)')
    .requiredOption('--out <dir>', 'folder to write cert.pem, key.pem and ca.pem to')
    .option(
      '--identity <id>',
      "identity to ask for: <namespace>/<service-account> or spiffe://... (default: the token's only one)",
    )
    .option(
      '--server-identity <id>',
      'SPIFFE ID Weft presents (default spiffe://<td>/ns/weft-system/sa/weft)',
    )
    .option('--bundle-refresh <duration>', 'how often to refresh the trust bundle', formatDuration(60_000))
    .option('--once', 'get a certificate, write the files and exit')
    .option(
      '--xds-relay <host:port>',
      "listen here (loopback only) and relay the workload's xDS to --xds-server over mTLS with its certificate;\n" +
        'point the bootstrap of a proxyless gRPC workload here (grpc-js-xds speaks only plaintext xDS)',
    )
    .option('--xds-server <host:port>', "Weft's xDS address, for --xds-relay")
    .action(async (f: AgentFlags) => {
      let bootstrapBundlePem: string;
      let bundleRefreshMs: number;
      try {
        bootstrapBundlePem = await readFile(f.caFile, 'utf8');
        bundleRefreshMs = parseDuration(f.bundleRefresh, '--bundle-refresh');
      } catch (err) {
        process.stderr.write(`weft agent: ${err instanceof Error ? err.message : String(err)}\n`);
        setExitCode(2);
        return;
      }
      const agent = new WorkloadAgent({
        server: f.caServer,
        token: async () => (await readFile(f.tokenFile, 'utf8')).trim(),
        outDir: f.out,
        bootstrapBundlePem,
        bundleRefreshMs,
        ...(f.identity ? { identity: f.identity } : {}),
        ...(f.serverIdentity ? { serverIdentity: f.serverIdentity } : {}),
      });
      try {
        await agent.start();
      } catch (err) {
        agent.stop();
        process.stderr.write(
          `weft agent: cannot get a certificate from ${f.caServer}: ${err instanceof Error ? err.message : String(err)}\n`,
        );
        setExitCode(1);
        return;
      }
      if (f.once) {
        agent.stop();
        setExitCode(0);
        return;
      }
      let relay: XdsRelay | undefined;
      if (f.xdsRelay) {
        const td = agent.state.identity?.split('/')[2];
        try {
          if (!f.xdsServer) throw new Error('--xds-relay needs --xds-server <host:port> of Weft');
          relay = await startAgentRelay({
            agent,
            outDir: f.out,
            listen: f.xdsRelay,
            upstream: f.xdsServer,
            serverIdentity: f.serverIdentity ?? controlPlaneIdentity(td ?? 'cluster.local'),
          });
        } catch (err) {
          agent.stop();
          process.stderr.write(`weft agent: ${err instanceof Error ? err.message : String(err)}\n`);
          setExitCode(2);
          return;
        }
      }
      log.info('agent running', { identity: agent.state.identity, out: f.out });
      await new Promise<void>((done) => {
        const stop = (): void => {
          agent.stop();
          (relay ? relay.stop() : Promise.resolve()).then(done, done);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        process.on('SIGHUP', () => {
          agent.renewNow().catch(() => undefined);
        });
      });
      setExitCode(0);
    });
};
