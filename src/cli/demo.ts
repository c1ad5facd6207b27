/**
 * `weft demo`: the bookstore mesh running on this machine. It writes the demo's manifests to a
 * folder, runs `weft serve --config-dir` on it, starts real proxyless gRPC workloads (bookstore v1
 * and v2 servers, bookbuyer and bookthief clients) that take all their config from Weft over xDS,
 * and prints, every second, where bookbuyer's calls went and what happened to bookthief's. Edit
 * the split file while it runs and watch the counts move.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { setLogLevel } from '../log';
import { freePort } from '../net';
import { startServe } from '../serve';
import { DEMO_ACCESS, DEMO_SERVICE_PORT, demoSplit, demoWorkloads } from '../workload/demo-mesh';
import { EchoClient, type EchoServer, proxylessBootstrap, startEchoServer } from '../workload/echo';
import type { CommandRegistrar } from './index';

interface DemoFlags {
  dir?: string;
  calls: string;
  duration?: string;
}

/** One second of traffic: calls per backend and failures, per client. */
export interface DemoTick {
  bookbuyer: Record<string, number>;
  bookbuyerFailed: number;
  bookthiefDenied: number;
  bookthiefServed: number;
}

async function tick(buyer: EchoClient, thief: EchoClient, calls: number): Promise<DemoTick> {
  const t: DemoTick = { bookbuyer: {}, bookbuyerFailed: 0, bookthiefDenied: 0, bookthiefServed: 0 };
  await Promise.all(
    Array.from({ length: calls }, async () => {
      try {
        const r = await buyer.call('Get', {}, 900);
        t.bookbuyer[r.backend] = (t.bookbuyer[r.backend] ?? 0) + 1;
      } catch {
        t.bookbuyerFailed++;
      }
    }),
  );
  try {
    await thief.call('Get', {}, 500);
    t.bookthiefServed++;
  } catch {
    t.bookthiefDenied++;
  }
  return t;
}

function line(t: DemoTick): string {
  const counts = ['bookstore-v1', 'bookstore-v2']
    .map((b) => `${b}: ${String(t.bookbuyer[b] ?? 0).padStart(3)}`)
    .join('  ');
  const thief = t.bookthiefServed > 0 ? 'bookthief: SERVED (unexpected)' : 'bookthief: denied';
  return `bookbuyer -> ${counts}  failed: ${t.bookbuyerFailed}   ${thief}`;
}

/** Registers `weft demo`. */
export const registerDemo: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('demo')
    .description(
      'Run the bookstore mesh on this machine: weft serve on a folder of SMI manifests, real\n' +
        'proxyless gRPC servers (bookstore v1, v2) and clients (bookbuyer, bookthief), and live\n' +
        'per-backend counts. Edit 20-split.yaml in the folder it prints and the counts follow.\n' +
        'The demo runs in plaintext (--no-mtls): callers are limited by what Weft sends each proxy.',
    )
    .option('--dir <folder>', 'where to write the manifests (default: a new temporary folder)')
    .option('--calls <n>', 'calls bookbuyer makes per second', '20')
    .option('--duration <seconds>', 'stop after this many seconds (default: run until Ctrl-C)')
    .action(async (flags: DemoFlags) => {
      const calls = Number(flags.calls);
      const duration = flags.duration === undefined ? undefined : Number(flags.duration);
      if (!Number.isInteger(calls) || calls < 1 || calls > 1000) {
        process.stderr.write(`weft demo: --calls must be an integer from 1 to 1000, not "${flags.calls}"\n`);
        setExitCode(2);
        return;
      }
      if (duration !== undefined && !(duration > 0)) {
        process.stderr.write(
          `weft demo: --duration must be a positive number of seconds, not "${flags.duration}"\n`,
        );
        setExitCode(2);
        return;
      }
      setLogLevel('warn');
      const dir = resolve(flags.dir ?? join(tmpdir(), `weft-demo-${process.pid}`));
      mkdirSync(dir, { recursive: true });
      const a = {
        v1: { ip: '127.0.10.11', port: await freePort() },
        v2: { ip: '127.0.10.12', port: await freePort() },
        // Loopback connections come from 127.0.0.1, so that is the client pods' address.
        bookbuyer: '127.0.0.1',
        bookthief: '127.0.10.22',
      };
      writeFileSync(join(dir, '10-workloads.yaml'), demoWorkloads(a));
      writeFileSync(join(dir, '20-split.yaml'), demoSplit(90, 10));
      writeFileSync(join(dir, '30-access.yaml'), DEMO_ACCESS);
      const weft = await startServe({
        configDir: dir,
        xdsAddress: '127.0.0.1:0',
        mtls: false,
        insecureXds: true,
      });
      const boot = (id: string) => proxylessBootstrap({ xdsServer: `127.0.0.1:${weft.port}`, nodeId: id });
      const servers: EchoServer[] = await Promise.all([
        startEchoServer({
          name: 'bookstore-v1',
          address: `${a.v1.ip}:${a.v1.port}`,
          bootstrap: boot('bookstore/bookstore-v1'),
        }),
        startEchoServer({
          name: 'bookstore-v2',
          address: `${a.v2.ip}:${a.v2.port}`,
          bootstrap: boot('bookstore/bookstore-v2'),
        }),
      ]);
      const target = `xds:///bookstore.bookstore:${DEMO_SERVICE_PORT}`;
      const buyer = new EchoClient(target, boot('bookbuyer/bookbuyer'));
      const thief = new EchoClient(target, boot('bookthief/bookthief'));
      process.stdout.write(
        `weft demo: xDS on 127.0.0.1:${weft.port}; manifests in ${dir}\n` +
          `edit ${join(dir, '20-split.yaml')} (the weights) and save; Ctrl-C stops\n`,
      );
      let stopped = false;
      const stop = (): void => {
        stopped = true;
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      const end = duration === undefined ? Number.POSITIVE_INFINITY : Date.now() + duration * 1000;
      let failed = 0;
      while (!stopped && Date.now() < end) {
        const started = Date.now();
        const t = await tick(buyer, thief, calls);
        failed += t.bookbuyerFailed + t.bookthiefServed;
        process.stdout.write(`${line(t)}\n`);
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
      }
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
      buyer.close();
      thief.close();
      for (const s of servers) await s.stop();
      await weft.stop();
      setExitCode(failed === 0 ? 0 : 1);
    });
};
