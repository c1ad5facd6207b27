/**
 * `weft top [kind]`: the SMI spec's `kubectl traffic top`, a table of success rate, requests per
 * second and latency percentiles per resource, from a running Weft's TrafficMetrics API: its admin
 * server with `--admin-url`; in a cluster (`--kubernetes`, `--kubeconfig`) the aggregated API
 * through the API server, with the kubeconfig's own credentials and RBAC (what
 * `kubectl get --raw /apis/metrics.smi-spec.io/...` reads).
 */
import type { Command } from 'commander';
import { KubeClient, loadKubeConfig } from '../kube/client';
import type { TrafficMetrics } from '../metrics/api';
import { type TopRow, topRow, topTable } from '../metrics/view';
import type { CommandRegistrar } from './index';
import { connectRemote, type Remote, type RemoteFlags, runCommand, UsageError } from './remote';

/**
 * Where the TrafficMetrics API is read: in a cluster, through the API server's aggregation layer
 * (no port-forward, and a client certificate works as well as a token); else the admin server.
 */
export async function connectTraffic(f: RemoteFlags): Promise<Remote> {
  if (!f.kubernetes && !f.kubeconfig) return connectRemote(f);
  const kc = loadKubeConfig(f.kubeconfig);
  if (f.context) kc.setCurrentContext(f.context);
  const client = new KubeClient(kc);
  return {
    where: client.serverUrl,
    admin: (path) => client.request('GET', path),
    csds: () => Promise.reject(new UsageError('CSDS is not read through the API server')),
    close: async () => undefined,
  };
}

/** Kinds `weft top` and `weft topology` take, as the API names them. */
export const TOP_KINDS = [
  'pods',
  'deployments',
  'services',
  'trafficsplits',
  'namespaces',
  'statefulsets',
  'replicasets',
  'daemonsets',
  'jobs',
  'replicationcontrollers',
  'nodes',
] as const;

/** Flags of `weft top` and `weft topology`. */
export interface TrafficFlags extends RemoteFlags {
  in?: string;
  window: string;
  selector?: string;
  output: string;
  /** `weft top --routes`: a row per route under each resource. */
  routes?: boolean;
}

/** Adds the flags both commands share. */
export function trafficFlags(c: Command): Command {
  return c
    .option('--in <namespace>', 'only resources in this namespace (default: every namespace)')
    .option('-w, --window <duration>', 'how far back to look: 30s, 1m, 5m, up to 10m', '30s')
    .option('-l, --selector <selector>', 'only resources whose pods have these labels: app=web,tier!=db')
    .option('--admin-url <url>', "a running Weft's admin server (folder mode), e.g. http://127.0.0.1:15014")
    .option(
      '--kubernetes',
      'read the aggregated API of the cluster of the current kubeconfig context, with its credentials',
    )
    .option('--kubeconfig <file>', 'as --kubernetes, with this kubeconfig')
    .option('--context <name>', 'kubeconfig context (default: the current one)');
}

/** Normalizes a kind as typed (`pod`, `deploy`, `ts`) to the API's plural; throws a usage error. */
export function kindOf(typed: string): (typeof TOP_KINDS)[number] {
  const short: Record<string, string> = {
    po: 'pods',
    deploy: 'deployments',
    svc: 'services',
    ts: 'trafficsplits',
    ns: 'namespaces',
    sts: 'statefulsets',
    rs: 'replicasets',
    ds: 'daemonsets',
    rc: 'replicationcontrollers',
    no: 'nodes',
  };
  const t = typed.toLowerCase();
  const k = short[t] ?? (TOP_KINDS.find((x) => x === t || x === `${t}s`) as string | undefined);
  if (!k) throw new UsageError(`unknown kind "${typed}": one of ${TOP_KINDS.join(', ')}`);
  return k as (typeof TOP_KINDS)[number];
}

/** The list path of `kind` in the TrafficMetrics API, with the flags' query. */
export function listPath(
  kind: string,
  f: Pick<TrafficFlags, 'in' | 'window' | 'selector'>,
  name?: string,
  version: 'v1alpha1' | 'v1alpha2' = 'v1alpha1',
): string {
  // TrafficSplits are in the v1alpha2 draft only; everything else in v1alpha1 unless asked.
  if (kind === 'trafficsplits') version = 'v1alpha2';
  const q = new URLSearchParams({ window: f.window });
  if (f.selector) q.set('labelSelector', f.selector);
  const where =
    kind === 'namespaces' || kind === 'nodes' || !f.in ? '' : `/namespaces/${encodeURIComponent(f.in)}`;
  const tail = name ? `/${encodeURIComponent(name)}/edges` : '';
  return `/apis/metrics.smi-spec.io/${version}${where}/${kind}${tail}?${q}`;
}

/** The rows of `weft top kind`: trafficsplits get a row per backend under their own. */
export async function topRows(remote: Remote, kind: string, f: TrafficFlags): Promise<TopRow[]> {
  const list = await remote.admin<{ items: TrafficMetrics[] }>(listPath(kind, f));
  const rows: TopRow[] = [];
  for (const t of list.items) {
    if (f.in && kind === 'namespaces' && t.resource.name !== f.in) continue;
    rows.push(topRow(t));
    if (f.routes && kind !== 'trafficsplits') {
      // Routes are the v1alpha2 draft's: one edge item per HTTPRouteGroup match.
      const edges = await remote.admin<{ items: TrafficMetrics[] }>(
        listPath(kind, { ...f, in: t.resource.namespace ?? '' }, t.resource.name, 'v1alpha2'),
      );
      for (const e of edges.items) if (e.route) rows.push(topRow(e, `  route ${e.route}`));
    }
    if (kind !== 'trafficsplits') continue;
    const edges = await remote.admin<{ items: TrafficMetrics[] }>(
      listPath(kind, { ...f, in: t.resource.namespace ?? '' }, t.resource.name),
    );
    for (const e of edges.items) {
      if (e.backend) rows.push(topRow(e, `  ${e.backend.name} (weight ${e.backend.weight})`));
      else if (f.routes && e.route) rows.push(topRow(e, `  route ${e.route}`));
    }
  }
  return rows;
}

/** Registers `weft top`. */
export const registerTop: CommandRegistrar = (program: Command, setExitCode) => {
  trafficFlags(
    program
      .command('top')
      .argument('[kind]', `${TOP_KINDS.join(', ')}`, 'pods')
      .description(
        'Traffic per resource, from the stats the sidecars send Weft (SMI TrafficMetrics):\n' +
          'success rate (answers that were not 5xx), requests per second and p50/p90/p99 latency\n' +
          'over the window. Pods and what is made of pods count what their sidecars received;\n' +
          'services and trafficsplits what client sidecars sent them (a split: one row per backend too).\n' +
          'Latencies come from Envoy histogram buckets: each is exact to within its bucket.\n' +
          '--routes adds a row per HTTPRouteGroup match under each resource (what its pods received\n' +
          'through that match, server side; for an A/B TrafficSplit, what callers sent through each match).\n\n' +
          'Reads --admin-url (folder mode), or in a cluster (--kubernetes, --kubeconfig) the aggregated\n' +
          'API metrics.smi-spec.io through the API server, with your own credentials and RBAC.',
      )
      .option('-o, --output <format>', 'table or json', 'table')
      .option('--routes', 'a row per route (HTTPRouteGroup match) under each resource'),
  ).action(async (typed: string, f: TrafficFlags) => {
    await runCommand('top', setExitCode, async () => {
      const kind = kindOf(typed);
      if (!['table', 'json'].includes(f.output))
        throw new UsageError(`-o must be table or json, not "${f.output}"`);
      const remote = await connectTraffic(f);
      try {
        const rows = await topRows(remote, kind, f);
        process.stdout.write(f.output === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : topTable(rows));
        return 0;
      } finally {
        await remote.close();
      }
    });
  });
};
