/**
 * ADS load generator: K simulated proxies on real gRPC streams that subscribe like Envoy does
 * (wildcard listeners and clusters, then the routes and endpoints those name) and ACK every
 * response. Point it at any ADS server:
 *
 *   node dist/bench/ads-load.js --target 127.0.0.1:15010 --clients 100 --mode delta
 *
 * Run standalone it prints progress and, once every client holds a full config, a line
 * `synced clients=K ms=T`; then it keeps the streams open (Ctrl-C to stop) and prints a line per
 * change it sees. Forked by `npm run bench`, it reports the same over IPC.
 */
import { performance } from 'node:perf_hooks';
import { messageType } from '../src/envoy/protos';
import { setLogLevel } from '../src/log';
import { AdsClient, type ReceivedResponse } from '../src/xds/client';
import { CLUSTER, ENDPOINT, LISTENER, ROUTE } from '../src/xds/resource-types';

/** Options of {@link startLoad}. */
export interface LoadOptions {
  target: string;
  clients: number;
  mode: 'sotw' | 'delta';
  cluster: string;
  /** Connections to spread the clients over (each HTTP/2 connection carries many streams). */
  connections: number;
}

/** Route names per listener name and version: every simulated proxy gets the same listeners. */
const routeNameMemo = new Map<string, string[]>();

function routeNamesCached(name: string, version: string, bytes: Uint8Array): string[] {
  const key = `${name}\0${version}`;
  let names = routeNameMemo.get(key);
  if (!names) {
    names = routeNamesOf(bytes);
    routeNameMemo.set(key, names);
  }
  return names;
}

function routeNamesOf(listenerBytes: Uint8Array): string[] {
  const L = messageType('envoy.config.listener.v3.Listener');
  const HCM = messageType(
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  );
  const l = L.toObject(L.decode(listenerBytes)) as {
    api_listener?: { api_listener?: { type_url?: string; value?: Uint8Array } };
    filter_chains?: { filters?: { typed_config?: { type_url?: string; value?: Uint8Array } }[] }[];
  };
  const anys = [
    l.api_listener?.api_listener,
    ...(l.filter_chains ?? []).flatMap((fc) => (fc.filters ?? []).map((f) => f.typed_config)),
  ];
  const names: string[] = [];
  for (const a of anys) {
    if (!a?.value || !a.type_url?.endsWith('HttpConnectionManager')) continue;
    const h = HCM.toObject(HCM.decode(a.value)) as { rds?: { route_config_name?: string } };
    if (h.rds?.route_config_name) names.push(h.rds.route_config_name);
  }
  return names;
}

/** One simulated proxy following Envoy's subscription pattern. */
function proxy(o: LoadOptions, i: number): AdsClient {
  const c = new AdsClient({
    target: o.target,
    nodeId: `load-${i}`,
    cluster: o.cluster,
    mode: o.mode,
    ownConnection: i < o.connections,
  });
  c.on('error', () => undefined);
  c.on('response', (r: ReceivedResponse) => {
    if (r.typeUrl === CLUSTER) c.subscribe(ENDPOINT, [...c.resources(CLUSTER).keys()]);
    if (r.typeUrl === LISTENER) {
      const names = new Set<string>();
      for (const l of c.resources(LISTENER).values()) {
        for (const n of routeNamesCached(l.name, l.version, l.value)) names.add(n);
      }
      c.subscribe(ROUTE, [...names]);
    }
  });
  c.subscribe(CLUSTER, []);
  c.subscribe(LISTENER, []);
  return c;
}

/** Clients connected at a time; each batch syncs before the next connects. */
const BATCH = 100;

/** Starts K proxies; resolves once each holds clusters, endpoints, listeners and routes. */
export async function startLoad(o: LoadOptions, progress?: (n: number) => void): Promise<AdsClient[]> {
  const clients: AdsClient[] = [];
  let done = 0;
  for (let start = 0; start < o.clients; start += BATCH) {
    const batch: AdsClient[] = [];
    for (let i = start; i < Math.min(o.clients, start + BATCH); i++) batch.push(proxy(o, i));
    clients.push(...batch);
    await syncAll(batch, () => progress?.(++done));
  }
  return clients;
}

async function syncAll(clients: AdsClient[], onSynced: () => void): Promise<void> {
  await Promise.all(
    clients.map((c) =>
      c
        .waitFor(
          () =>
            c.resources(CLUSTER).size > 0 &&
            c.resources(ENDPOINT).size === c.resources(CLUSTER).size &&
            c.resources(LISTENER).size > 0 &&
            c.resources(ROUTE).size > 0,
          600_000,
          'initial sync',
        )
        .then(onSynced),
    ),
  );
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : fallback;
}

async function cli(): Promise<void> {
  setLogLevel('warn');
  if (process.argv.includes('--help')) {
    console.log(
      'usage: ads-load --target host:port [--clients K] [--mode sotw|delta] [--cluster NAME] [--connections N]\n' +
        'Connects K simulated proxies to an ADS server, subscribes like Envoy and ACKs every response.',
    );
    return;
  }
  const o: LoadOptions = {
    target: arg('target', '127.0.0.1:15010'),
    clients: Number(arg('clients', '10')),
    mode: arg('mode', 'delta') === 'sotw' ? 'sotw' : 'delta',
    cluster: arg('cluster', 'bench'),
    connections: Number(arg('connections', '1000000')),
  };
  const t0 = performance.now();
  const send = (m: object): void => {
    if (process.send) process.send(m);
  };
  const clients = await startLoad(o, (n) => {
    if (!process.send && (n % 100 === 0 || n === o.clients)) console.log(`synced ${n}/${o.clients}`);
  });
  const ms = Math.round(performance.now() - t0);
  if (process.send) send({ kind: 'synced', clients: clients.length, ms });
  else console.log(`synced clients=${clients.length} ms=${ms}`);
  process.on('message', (m: { kind?: string }) => {
    if (m.kind === 'stop') {
      for (const c of clients) c.close();
      process.exit(0);
    }
  });
}

if (require.main === module) {
  cli().catch((e: unknown) => {
    console.error(`ads-load: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
