/**
 * `weft serve`: runs the xDS server. Today's source is `--resources FILE`, a file of raw xDS
 * resources per proxy group, reloaded on change; SMI sources (`--config-dir`, Kubernetes) plug in
 * as their stages land.
 */
import { resolve } from 'node:path';
import { ServerCredentials } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { logger } from '../log';
import { readResourcesFile } from '../static/resources-file';
import { watchFile } from '../static/watch';
import { envoyResourceEncoder } from '../xds/encoder';
import { AdsServer } from '../xds/server/ads-server';
import type { CommandRegistrar } from './index';

const log = logger('serve');

/** Options of `weft serve`. */
export interface ServeOptions {
  resources?: string;
  xdsAddress: string;
}

/** A running `weft serve`; `stop()` shuts it down gracefully. */
export interface RunningServe {
  server: AdsServer;
  port: number;
  stop(): Promise<void>;
}

/** Starts serving; resolves once the xDS port is bound. */
export async function startServe(o: ServeOptions): Promise<RunningServe> {
  if (!o.resources) throw new Error('nothing to serve: pass --resources FILE (see weft serve --help)');
  const file = resolve(o.resources);
  const encoder = envoyResourceEncoder();
  let groupNames = new Set<string>();
  const server = new AdsServer({
    // A proxy's group is its node.cluster when the file has such a group, else "default".
    groupOf: (node) => (groupNames.has(node.cluster) ? node.cluster : 'default'),
  });
  const port = await server.listen(o.xdsAddress, ServerCredentials.createInsecure());
  const stopWatching = watchFile(
    file,
    (text) => {
      const result = readResourcesFile(text, o.resources ?? file);
      if (!result.ok) {
        for (const e of result.errors) log.error(e);
        log.error('resources file rejected; still serving the last good version', {
          file: o.resources,
          errors: result.errors.length,
        });
        return;
      }
      groupNames = new Set(result.groups.keys());
      let changed = 0;
      for (const [group, input] of result.groups) {
        if (server.cache.set(group, encoder.snapshot(input))) changed++;
      }
      for (const group of server.cache.groups()) if (!groupNames.has(group)) server.cache.delete(group);
      log.info('resources loaded', { file: o.resources, groups: result.groups.size, changed });
    },
    (err) =>
      log.error('cannot read resources file; still serving the last good version', {
        file: o.resources,
        error: err.message,
      }),
  );
  return {
    server,
    port,
    stop: async () => {
      stopWatching();
      await server.shutdown();
    },
  };
}

/** Registers `weft serve`. */
export const registerServe: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('serve')
    .description(
      'Run the xDS (ADS) server.\n\n' +
        'With --resources FILE, serve the raw Envoy resources in FILE (YAML or JSON, a "groups" map of\n' +
        'group name to listeners/routes/clusters/endpoints/secrets). A proxy gets the group named by its\n' +
        'node.cluster, or "default". The file is checked strictly and reloaded when it changes; a file\n' +
        'with errors is rejected whole and the last good version keeps serving.',
    )
    .option('--resources <file>', 'file of raw xDS resources per proxy group')
    .option('--xds-address <host:port>', 'address the xDS server listens on', '127.0.0.1:15010')
    .action(async (opts: ServeOptions) => {
      const running = await startServe(opts);
      log.info('weft serving xDS', { port: running.port });
      await new Promise<void>((done) => {
        const stop = (): void => {
          running.stop().then(done, done);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      setExitCode(0);
    });
};
