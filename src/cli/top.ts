/**
 * `weft top [kind]`: the SMI spec's `kubectl traffic top`, a table of success rate, requests per
 * second and latency percentiles per resource, from a running Weft's TrafficMetrics API (its
 * admin server with `--admin-url`, or Weft in a cluster with `--kubernetes`).
 */
import type { Command } from 'commander';
import type { TrafficMetrics } from '../metrics/api';
import { type TopRow, topRow, topTable } from '../metrics/view';
import type { CommandRegistrar } from './index';
import { remoteFlags } from './proxy';
import { connectRemote, type Remote, type RemoteFlags, UsageError } from './remote';

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
] as const;

/** Flags of `weft top` and `weft topology`. */
export interface TrafficFlags extends RemoteFlags {
  in?: string;
  window: string;
  selector?: string;
  output: string;
}

/** Adds the flags both commands share. */
export function trafficFlags(c: Command): Command {
  return remoteFlags(
    c
      .option('--in <namespace>', 'only resources in this namespace (default: every namespace)')
      .option('-w, --window <duration>', 'how far back to look: 30s, 1m, 5m, up to 10m', '30s')
      .option('-l, --selector <selector>', 'only resources whose pods have these labels: app=web,tier!=db'),
  );
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
): string {
  // TrafficSplits are in the v1alpha2 draft only; everything else in v1alpha1.
  const version = kind === 'trafficsplits' ? 'v1alpha2' : 'v1alpha1';
  const q = new URLSearchParams({ window: f.window });
  if (f.selector) q.set('labelSelector', f.selector);
  const where = kind === 'namespaces' || !f.in ? '' : `/namespaces/${encodeURIComponent(f.in)}`;
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
    if (kind !== 'trafficsplits') continue;
    const edges = await remote.admin<{ items: TrafficMetrics[] }>(
      listPath(kind, { ...f, in: t.resource.namespace ?? '' }, t.resource.name),
    );
    for (const e of edges.items)
      if (e.backend) rows.push(topRow(e, `  ${e.backend.name} (weight ${e.backend.weight})`));
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
          'Latencies come from Envoy histogram buckets: each is exact to within its bucket.',
      )
      .option('-o, --output <format>', 'table or json', 'table'),
  ).action(async (typed: string, f: TrafficFlags) => {
    let remote: Remote | undefined;
    try {
      const kind = kindOf(typed);
      if (!['table', 'json'].includes(f.output))
        throw new UsageError(`-o must be table or json, not "${f.output}"`);
      remote = await connectRemote(f);
      const rows = await topRows(remote, kind, f);
      process.stdout.write(f.output === 'json' ? `${JSON.stringify(rows, null, 2)}\n` : topTable(rows));
      setExitCode(0);
    } catch (err) {
      process.stderr.write(`weft top: ${err instanceof Error ? err.message : String(err)}\n`);
      setExitCode(err instanceof UsageError ? 2 : 1);
    } finally {
      await remote?.close();
    }
  });
};
