/**
 * `weft demo`: the bookstore mesh running on this machine. It writes the demo's manifests to a
 * folder, runs `weft serve --config-dir` on it, starts the workloads (bookstore v1 and v2 servers,
 * bookbuyer and bookthief clients) and prints, every second, where bookbuyer's calls went and what
 * happened to bookthief's. Edit the split file while it runs and watch the counts move.
 *
 * - `--flavor grpc` (default): real proxyless gRPC workloads that take all their config from Weft
 *   over xDS, in plaintext, in this process.
 * - `--flavor envoy`: each workload is a pod in its own network namespace with Weft's injected
 *   sidecars (capture rules, `weft agent`, real Envoy with Weft's bootstrap; see src/netns), plain
 *   gRPC apps inside, mutual TLS between the sidecars. Needs root and an Envoy binary.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { parseAllDocuments } from 'yaml';
import { findEnvoy, NO_ENVOY } from '../envoy/binary';
import type { KubeObject } from '../kube/client';
import { setLogLevel } from '../log';
import { freePort } from '../net';
import { GRPC_ECHO_PATH } from '../netns/app-protocol';
import { EnvoyMesh, type MeshPod, POD_APP_IMAGE } from '../netns/mesh';
import { netnsUnavailable } from '../netns/system';
import { startServe } from '../serve';
import {
  DEMO_ACCESS,
  DEMO_SERVICE_PORT,
  demoAccess,
  demoEnvoyWorkloads,
  demoSplit,
  demoWorkloads,
} from '../workload/demo-mesh';
import { EchoClient, type EchoServer, proxylessBootstrap, startEchoServer } from '../workload/echo';
import type { CommandRegistrar } from './index';

interface DemoFlags {
  dir?: string;
  calls: string;
  duration?: string;
  flavor: string;
}

/** One second of traffic: calls per backend and failures, per client. */
export interface DemoTick {
  bookbuyer: Record<string, number>;
  bookbuyerFailed: number;
  bookthiefDenied: number;
  bookthiefServed: number;
}

/** One second of traffic from the demo's two clients. */
type Ticker = (calls: number) => Promise<DemoTick>;

/** A running demo mesh: where its manifests are, how to make a second of calls, how to stop it. */
interface DemoMesh {
  readonly banner: string;
  readonly tick: Ticker;
  stop(): Promise<void>;
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
      'Run the bookstore mesh on this machine: weft serve on a folder of SMI manifests, servers\n' +
        '(bookstore v1, v2) and clients (bookbuyer, bookthief), and live per-backend counts. Edit\n' +
        '20-split.yaml in the folder it prints and the counts follow.\n\n' +
        'With --flavor grpc (default) the workloads are proxyless gRPC in this process, in plaintext\n' +
        '(callers are limited by what Weft sends each proxy). With --flavor envoy each workload is a\n' +
        'pod in its own network namespace with the sidecars Weft injects (capture rules, weft agent,\n' +
        'real Envoy) and mutual TLS between them; it needs root and Envoy (scripts/setup-envoy.sh).',
    )
    .option('--dir <folder>', 'where to write the manifests (default: a new temporary folder)')
    .option('--calls <n>', 'calls bookbuyer makes per second', '20')
    .option('--duration <seconds>', 'stop after this many seconds (default: run until Ctrl-C)')
    .option(
      '--flavor <flavor>',
      'grpc: proxyless gRPC workloads; envoy: pods in network namespaces with real Envoy sidecars (needs root and Envoy)',
      'grpc',
    )
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
      const flavor = flags.flavor;
      if (flavor !== 'grpc' && flavor !== 'envoy') {
        process.stderr.write(`weft demo: --flavor must be grpc or envoy, not "${flavor}"\n`);
        setExitCode(2);
        return;
      }
      setLogLevel('warn');
      const dir = resolve(flags.dir ?? join(tmpdir(), `weft-demo-${process.pid}`));
      mkdirSync(dir, { recursive: true });
      let mesh: DemoMesh;
      try {
        mesh = flavor === 'envoy' ? await startEnvoyDemo(dir) : await startGrpcDemo(dir);
      } catch (err) {
        process.stderr.write(`weft demo: ${err instanceof Error ? err.message : String(err)}\n`);
        setExitCode(1);
        return;
      }
      process.stdout.write(mesh.banner);
      // The workloads take their config from Weft over xDS first; counting before bookbuyer's
      // first call goes through would only show start-up, so wait for it (bounded).
      const readyBy = Date.now() + 60_000;
      while (Date.now() < readyBy && Object.keys((await mesh.tick(1)).bookbuyer).length === 0) {
        await new Promise((r) => setTimeout(r, 250));
      }
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
        const t = await mesh.tick(calls);
        failed += t.bookbuyerFailed + t.bookthiefServed;
        process.stdout.write(`${line(t)}\n`);
        await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
      }
      process.removeListener('SIGINT', stop);
      process.removeListener('SIGTERM', stop);
      await mesh.stop();
      setExitCode(failed === 0 ? 0 : 1);
    });
};

/** The proxyless gRPC demo: echo servers and clients in this process, plaintext. */
async function startGrpcDemo(dir: string): Promise<DemoMesh> {
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
  return {
    banner:
      `weft demo: xDS on 127.0.0.1:${weft.port}; manifests in ${dir}\n` +
      `edit ${join(dir, '20-split.yaml')} (the weights) and save; Ctrl-C stops\n`,
    tick: (calls) => tick(buyer, thief, calls),
    stop: async () => {
      buyer.close();
      thief.close();
      for (const s of servers) await s.stop();
      await weft.stop();
    },
  };
}

/** The pod network of the Envoy demo (its own name and subnet, apart from the test tier's). */
const DEMO_NETWORK = { name: 'demo', subnet: '10.214.0.0/24' } as const;

/** The Envoy demo: pods in network namespaces with Weft's injected sidecars and real Envoy. */
async function startEnvoyDemo(dir: string): Promise<DemoMesh> {
  const missing = [netnsUnavailable(), findEnvoy() ? undefined : NO_ENVOY].filter((m) => m !== undefined);
  if (missing.length > 0)
    throw new Error(`--flavor envoy cannot run here: ${missing.join('; ')} (or use --flavor grpc)`);
  const config = join(dir, 'mesh');
  mkdirSync(config, { recursive: true });
  const mesh = await EnvoyMesh.create({
    network: DEMO_NETWORK.name,
    subnet: DEMO_NETWORK.subnet,
    configDir: config,
    workDir: join(dir, 'work'),
    serviceAccounts: ['bookbuyer/bookbuyer', 'bookthief/bookthief', 'bookstore/bookstore'],
    envoyBinary: findEnvoy()!,
  });
  try {
    const net = mesh.network;
    const a = {
      pods: {
        'bookstore-v1': net.podAddress(),
        'bookstore-v2': net.podAddress(),
        bookbuyer: net.podAddress(),
        bookthief: net.podAddress(),
      },
      services: {
        bookstore: net.serviceAddress(),
        'bookstore-v1': net.serviceAddress(),
        'bookstore-v2': net.serviceAddress(),
      },
    };
    writeFileSync(join(config, '10-workloads.yaml'), demoEnvoyWorkloads(a, POD_APP_IMAGE));
    writeFileSync(join(config, '20-split.yaml'), demoSplit(90, 10));
    writeFileSync(join(config, '30-access.yaml'), demoAccess(GRPC_ECHO_PATH.replace(/\./g, '\\.')));
    await mesh.start();
    const pods = parseAllDocuments(readFileSync(join(config, '10-workloads.yaml'), 'utf8'))
      .map((d) => d.toJSON() as KubeObject)
      .filter((o) => o.kind === 'Pod');
    const running = new Map<string, MeshPod>();
    for (const p of pods) running.set(p.metadata?.name ?? '', await mesh.startPod(p));
    const buyer = running.get('bookbuyer')!.app!;
    const thief = running.get('bookthief')!.app!;
    const host = a.services.bookstore;
    return {
      banner:
        `weft demo: Envoy sidecars in network namespaces on ${DEMO_NETWORK.subnet}; xDS on ${net.hostAddress}:${mesh.weft.port}\n` +
        `manifests in ${config}; pods' logs in ${join(dir, 'work', 'pods')}\n` +
        `edit ${join(config, '20-split.yaml')} (the weights) and save; Ctrl-C stops\n`,
      tick: async (calls) => {
        const t: DemoTick = { bookbuyer: {}, bookbuyerFailed: 0, bookthiefDenied: 0, bookthiefServed: 0 };
        const [bought, stolen] = await Promise.all([
          buyer.call({ op: 'grpc', host, port: DEMO_SERVICE_PORT, n: calls, timeoutMs: 900 }),
          thief.call({ op: 'grpc', host, port: DEMO_SERVICE_PORT, n: 1, timeoutMs: 500 }),
        ]);
        for (const o of bought) {
          const backend = o.ok ? (JSON.parse(o.body) as { pod?: string }).pod : undefined;
          if (backend) t.bookbuyer[backend] = (t.bookbuyer[backend] ?? 0) + 1;
          else t.bookbuyerFailed++;
        }
        for (const o of stolen) {
          if (o.ok) t.bookthiefServed++;
          else t.bookthiefDenied++;
        }
        return t;
      },
      stop: () => mesh.stop(),
    };
  } catch (err) {
    await mesh.stop();
    throw err;
  }
}
