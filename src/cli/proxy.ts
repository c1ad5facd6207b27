/**
 * `weft proxy status` and `weft proxy config`: what a running Weft knows of its connected proxies
 * (who they are, what they run, what each was sent and ACKed, their last NACK) and the config one
 * proxy was sent, from CSDS. See remote.ts for how Weft is reached.
 */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import type { CsdsEntry, CsdsProxyConfig } from '../xds/csds-view';
import { PUSH_ORDER } from '../xds/resource-types';
import type { CommandRegistrar } from './index';
import { connectRemote, type RemoteFlags, runCommand, UsageError } from './remote';
import { renderTable } from './table';

/** One per-type entry of `/debug/proxies`, as JSON. */
interface TypeJson {
  sentVersion?: string;
  sentAt?: string;
  ackedVersion?: string;
  ackedAt?: string;
  awaiting: boolean;
  acks: number;
  nacks: number;
  lastNack?: { version: string; message: string; at: string };
}

/** One proxy of `/debug/proxies`, as JSON. */
export interface ProxyJson {
  streamId: number;
  node: { id: string; cluster: string; userAgent: string; userAgentVersion?: string };
  group?: string;
  identity?: string;
  flavor: string;
  namespace: string;
  mode: string;
  peer: string;
  connectedAt: string;
  lastSeen?: string;
  types: Record<string, TypeJson>;
}

/** What `weft proxy status -o json` prints per proxy. */
export interface ProxyStatusRow {
  proxy: string;
  identity: string;
  flavor: string;
  userAgent: string;
  version: string;
  group: string;
  mode: string;
  connectedAt: string;
  lastSeen: string;
  inSync: boolean;
  types: Record<string, { sent: string; acked: string; awaiting: boolean; nacks: number }>;
  lastNack?: { type: string; version: string; message: string; at: string };
}

const TYPES = ['cds', 'eds', 'lds', 'rds', 'sds'];
const FLAG_TYPES: Record<string, string> = {
  listeners: 'lds',
  routes: 'rds',
  clusters: 'cds',
  endpoints: 'eds',
  secrets: 'sds',
};

/** `spiffe://td/ns/<ns>/sa/<sa>` as `<ns>/<sa>`; other strings unchanged. */
export function shortIdentity(id: string | undefined): string {
  if (!id) return '-';
  const m = /^spiffe:\/\/[^/]+\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(id);
  return m ? `${m[1]}/${m[2]}` : id;
}

function ago(iso: string | undefined, now: number): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

/** Rows of `weft proxy status` from `/debug/proxies`. */
export function proxyRows(proxies: readonly ProxyJson[]): ProxyStatusRow[] {
  return proxies.map((p) => {
    const types: ProxyStatusRow['types'] = {};
    let lastNack: ProxyStatusRow['lastNack'];
    let inSync = true;
    for (const [t, s] of Object.entries(p.types)) {
      types[t] = {
        sent: s.sentVersion ?? '',
        acked: s.ackedVersion ?? '',
        awaiting: s.awaiting,
        nacks: s.nacks,
      };
      if (s.awaiting || s.lastNack || (s.sentVersion ?? '') !== (s.ackedVersion ?? '')) inSync = false;
      if (s.lastNack && (!lastNack || s.lastNack.at > lastNack.at))
        lastNack = { type: t, version: s.lastNack.version, message: s.lastNack.message, at: s.lastNack.at };
    }
    return {
      proxy: p.node.id,
      identity: p.identity ?? '',
      flavor: p.flavor,
      userAgent: p.node.userAgent,
      version: p.node.userAgentVersion ?? '',
      group: p.group ?? '',
      mode: p.mode,
      connectedAt: p.connectedAt,
      lastSeen: p.lastSeen ?? p.connectedAt,
      inSync: inSync && p.group !== undefined,
      types,
      ...(lastNack ? { lastNack } : {}),
    };
  });
}

function short(v: string): string {
  return v === '' ? '-' : v.slice(0, 8);
}

/** One cell per type: the version sent, and the one ACKed when it differs. */
function typeCell(t: ProxyStatusRow['types'][string] | undefined): string {
  if (!t) return '';
  if (t.sent === t.acked) return short(t.sent);
  return `${short(t.sent)}${t.awaiting ? ' waiting' : ''} (ACKed ${short(t.acked)})`;
}

/** The `weft proxy status` table. */
export function proxyTable(rows: readonly ProxyStatusRow[], now = Date.now()): string {
  if (rows.length === 0) return 'No proxy is connected.\n';
  const head = [
    'PROXY',
    'IDENTITY',
    'FLAVOR',
    'VERSION',
    ...TYPES.map((t) => t.toUpperCase()),
    'LAST NACK',
    'LAST SEEN',
  ];
  const cells = rows.map((r) => [
    r.proxy,
    shortIdentity(r.identity),
    r.flavor,
    [r.userAgent, r.version].filter(Boolean).join(' ') || '-',
    ...TYPES.map((t) => typeCell(r.types[t])),
    r.lastNack ? `${r.lastNack.type} ${ago(r.lastNack.at, now)}: ${r.lastNack.message}` : '-',
    ago(r.lastSeen, now),
  ]);
  return (
    renderTable(head, cells) +
    '\nPer type: the version sent (first 8 characters), and the one the proxy ACKed when it differs.\n'
  );
}

interface StatusFlags extends RemoteFlags {
  output: string;
}

interface ConfigFlags extends RemoteFlags {
  output: string;
  type?: string;
}

/** Adds the flags that say where the running Weft is. */
export function remoteFlags(c: Command): Command {
  return c
    .option('--admin-url <url>', "a running Weft's admin server, e.g. http://127.0.0.1:15014")
    .option('--xds-address <host:port>', "a running Weft's xDS port, for CSDS (weft proxy config)")
    .option(
      '--cert-dir <dir>',
      "cert.pem, key.pem, ca.pem of Weft's own identity, to read CSDS on an mTLS xDS port (weft ca issue --identity weft-system/weft --out DIR)",
    )
    .option('--trust-domain <domain>', 'trust domain of --cert-dir', 'cluster.local')
    .option('--kubernetes', 'reach Weft in the cluster of the current kubeconfig context (port-forward)')
    .option('--kubeconfig <file>', 'as --kubernetes, with this kubeconfig')
    .option('-n, --namespace <ns>', "Weft's namespace in the cluster", 'weft-system')
    .option(
      '--token <token>',
      'bearer token for the debug views in a cluster (default: the kubeconfig user)',
    );
}

function outputOk(o: string, allowed: readonly string[], cmd: string): void {
  if (!allowed.includes(o)) throw new UsageError(`weft ${cmd}: -o must be ${allowed.join(', ')}, not "${o}"`);
}

/** Orders a proxy's entries as Envoy applies them (clusters, endpoints, listeners, routes, secrets). */
function ordered(entries: readonly CsdsEntry[]): CsdsEntry[] {
  const rank = (u: string): number => {
    const i = (PUSH_ORDER as readonly string[]).indexOf(u);
    return i < 0 ? PUSH_ORDER.length : i;
  };
  return [...entries].sort((a, b) => rank(a.typeUrl) - rank(b.typeUrl) || a.name.localeCompare(b.name));
}

/** What `weft proxy config` prints for one proxy. */
export function configView(p: CsdsProxyConfig, type?: string): Record<string, unknown> {
  const wanted = type ? FLAG_TYPES[type] : undefined;
  const byType: Record<string, unknown[]> = {};
  for (const e of ordered(p.entries)) {
    if (wanted && e.type !== wanted) continue;
    const key = Object.entries(FLAG_TYPES).find(([, s]) => s === e.type)?.[0] ?? e.type;
    const list = byType[key] ?? [];
    list.push({
      name: e.name,
      version: e.version,
      status: e.clientStatus,
      ...(e.error ? { error: e.error } : {}),
      ...(e.config !== undefined ? { config: e.config } : {}),
    });
    byType[key] = list;
  }
  return { proxy: p.node, ...byType };
}

/** Registers `weft proxy`. */
export const registerProxy: CommandRegistrar = (program: Command, setExitCode) => {
  const proxy = program
    .command('proxy')
    .description(
      'Inspect the proxies connected to a running Weft: their status, and the config each was sent.',
    );
  const run = (name: string, body: () => Promise<number>): Promise<void> =>
    runCommand(`proxy ${name}`, setExitCode, body);
  remoteFlags(
    proxy
      .command('status')
      .description(
        'Every connected proxy: node id, identity (from its certificate), flavor, the Envoy or gRPC\n' +
          'version it reports, per xDS type the version sent and ACKed, its last NACK, when it was last\n' +
          'seen. Exit status: 0 all in sync, 1 a proxy is behind or NACKed, 2 Weft cannot be reached.',
      )
      .option('-o, --output <format>', 'table, json or yaml', 'table'),
  ).action((f: StatusFlags) =>
    run('status', async () => {
      outputOk(f.output, ['table', 'json', 'yaml'], 'proxy status');
      let remote: Awaited<ReturnType<typeof connectRemote>>;
      try {
        remote = await connectRemote(f);
      } catch (err) {
        if (err instanceof UsageError) throw err;
        process.stderr.write(`weft proxy status: ${err instanceof Error ? err.message : String(err)}\n`);
        return 2;
      }
      try {
        const rows = proxyRows(await remote.admin<ProxyJson[]>('/debug/proxies'));
        if (f.output === 'json') process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        else if (f.output === 'yaml') process.stdout.write(stringify(rows, { lineWidth: 0 }));
        else process.stdout.write(proxyTable(rows));
        return rows.every((r) => r.inSync) ? 0 : 1;
      } catch (err) {
        process.stderr.write(`weft proxy status: ${err instanceof Error ? err.message : String(err)}\n`);
        return 2;
      } finally {
        await remote.close();
      }
    }),
  );
  remoteFlags(
    proxy
      .command('config <proxy>')
      .description(
        'The config a running Weft sent one proxy (<namespace>/<pod>, its node id), read from CSDS: each\n' +
          'resource with its version, whether the proxy ACKed or NACKed it (and its error text), and the\n' +
          'resource itself as canonical JSON. Secrets are listed by name only. Exit status: 0 found,\n' +
          '1 no such proxy is connected, 2 Weft cannot be reached or bad arguments.',
      )
      .option('--type <type>', 'only listeners, routes, clusters, endpoints or secrets')
      .option('-o, --output <format>', 'yaml or json', 'yaml'),
  ).action((name: string, f: ConfigFlags) =>
    run('config', async () => {
      outputOk(f.output, ['yaml', 'json'], 'proxy config');
      if (f.type && !(f.type in FLAG_TYPES))
        throw new UsageError(`--type must be one of ${Object.keys(FLAG_TYPES).join(', ')}, not "${f.type}"`);
      let remote: Awaited<ReturnType<typeof connectRemote>>;
      try {
        remote = await connectRemote(f);
      } catch (err) {
        if (err instanceof UsageError) throw err;
        process.stderr.write(`weft proxy config: ${err instanceof Error ? err.message : String(err)}\n`);
        return 2;
      }
      let found: CsdsProxyConfig[];
      try {
        found = await remote.csds([name]);
      } catch (err) {
        process.stderr.write(`weft proxy config: ${err instanceof Error ? err.message : String(err)}\n`);
        return 2;
      } finally {
        await remote.close();
      }
      if (found.length === 0) {
        process.stderr.write(
          `weft proxy config: no proxy with node id ${name} is connected to ${remote.where} (or you may not see it); weft proxy status lists them\n`,
        );
        return 1;
      }
      // A node id can have several streams (one per xDS client in the workload): show each.
      const views = found.map((p) => configView(p, f.type));
      const out = views.length === 1 ? views[0] : views;
      process.stdout.write(
        f.output === 'json' ? `${JSON.stringify(out, null, 2)}\n` : stringify(out, { lineWidth: 0 }),
      );
      return 0;
    }),
  );
};
