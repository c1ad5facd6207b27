/**
 * `weft status`: every condition in the mesh, in one table. Three sources:
 * - `-f FILE...`: manifests compiled offline (as `weft render` does);
 * - `--kubernetes` / `--kubeconfig FILE`: the objects in the cluster's mesh namespaces, listed once
 *   and compiled the way `weft serve` compiles them, plus the status Weft wrote on its own kinds
 *   (EnvoyPatch `Programmed`, say);
 * - `--admin-url URL`: a running Weft's live view (conditions, and NACKs from its proxies).
 */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { type ManifestFile, readManifests } from '../inputs/folder';
import { labelFix, unmeshedMessage, unmeshedObjects } from '../kube/check';
import { KubeClient, type KubeObject, loadKubeConfig } from '../kube/client';
import { KubeSource } from '../kube/source';
import type { StatusCondition } from '../kube/status';
import { STATUS_KINDS } from '../kube/status';
import { setLogLevel } from '../log';
import { type RenderedCondition, renderMesh, renderMeshJudged } from '../mesh/render';
import { judgeFor } from '../patch/envoy-judge';
import type { NackRecord } from '../xds/proxy-state';
import type { CommandRegistrar } from './index';
import { adminGet } from './remote';

interface StatusFlags {
  file?: string[];
  kubernetes?: boolean;
  kubeconfig?: string;
  adminUrl?: string;
  token?: string;
  meshNamespace: string;
  output: string;
  all?: boolean;
  envoy: string | boolean;
}

/** One row of `weft status`. */
export interface StatusRow {
  object: string;
  type: string;
  status: string;
  severity: string;
  reason: string;
  field?: string;
  message: string;
}

/** Objects of the cluster's mesh, listed once (the informers list, then stop). */
export async function listClusterObjects(
  kubeconfig: string | undefined,
  meshNamespace: string,
): Promise<KubeObject[]> {
  const client = new KubeClient(loadKubeConfig(kubeconfig));
  await checkApiServer(client);
  const source = new KubeSource(client, {
    meshNamespace,
    maxBackoffMs: 1000,
  });
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(
      () =>
        reject(
          new Error(
            `the API server at ${client.serverUrl} did not list everything within 30 s (still waiting for ${source.unsynced().join(', ')})`,
          ),
        ),
      30_000,
    ).unref(),
  );
  try {
    await Promise.race([source.start(), timeout]);
    return source.objects();
  } finally {
    source.stop();
  }
}

/**
 * Asks the API server its version within 5 s, so an unreachable server is named with the reason
 * at once instead of after the informers' retries. Resolves to the server's `gitVersion`.
 */
export async function checkApiServer(client: KubeClient, timeoutMs = 5000): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`the API server at ${client.serverUrl} did not answer within ${timeoutMs / 1000} s`),
        ),
      timeoutMs,
    );
  });
  try {
    const v = await Promise.race([client.request<{ gitVersion?: string }>('GET', '/version'), timeout]);
    return v.gitVersion ?? 'unknown';
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ECONNREFUSED')
      throw new Error(`nothing listens at the API server ${client.serverUrl} (connection refused)`);
    if (e.code === 'ENOTFOUND') throw new Error(`cannot resolve the API server ${client.serverUrl}`);
    if (err instanceof Error && err.message.startsWith('the API server at')) throw err;
    throw new Error(
      `the API server at ${client.serverUrl}: ${err instanceof Error ? err.message : String(err)}`,
    );
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Warning rows for SMI objects (and EnvoyPatches) in namespaces without `weft.dev/mesh=enabled`:
 * Weft ignores them, and nothing else would say so.
 */
export async function unmeshedRows(
  kubeconfig: string | undefined,
  meshNamespace: string,
): Promise<StatusRow[]> {
  const client = new KubeClient(loadKubeConfig(kubeconfig));
  return (await unmeshedObjects(client, meshNamespace)).map((u) => ({
    object: u.object,
    type: 'InMesh',
    status: 'False',
    severity: 'Warning',
    reason: 'NamespaceNotInMesh',
    message: `${unmeshedMessage(u)}; fix: ${labelFix(u.namespace)}`,
  }));
}

/** Conditions of Weft's own kinds as their status says (what the leader wrote). */
function statusRows(objects: readonly KubeObject[]): StatusRow[] {
  const rows: StatusRow[] = [];
  for (const o of objects) {
    if (!o.kind || !(o.kind in STATUS_KINDS)) continue;
    const conditions = (o as { status?: { conditions?: StatusCondition[] } }).status?.conditions ?? [];
    for (const c of conditions) {
      if (c.type === 'Accepted') continue; // recomputed from the object itself
      rows.push({
        object: `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name ?? ''}`,
        type: c.type,
        status: c.status,
        severity: c.status === 'True' ? 'Info' : 'Error',
        reason: c.reason,
        message: c.message,
      });
    }
  }
  return rows;
}

function problem(r: StatusRow): boolean {
  return !(r.status === 'True' && r.type !== 'Conflicted');
}

function table(rows: readonly StatusRow[]): string {
  if (rows.length === 0) return 'No conditions: every object is accepted and fully resolved.\n';
  const head = ['OBJECT', 'TYPE', 'STATUS', 'REASON', 'MESSAGE'];
  const cells = rows.map((r) => [r.object, r.type, r.status, r.reason, r.message]);
  const width = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (i < 4 ? c[i]!.length : 0))));
  const line = (c: string[]): string =>
    c
      .map((v, i) => (i < 4 ? v.padEnd(width[i]!) : v))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...cells.map(line)].join('\n')}\n`;
}

async function fromAdmin(url: string, token?: string): Promise<StatusRow[]> {
  // In Kubernetes mode Weft's debug views answer only a bearer token the API server vouches for.
  const get = <T>(path: string): Promise<T> => adminGet<T>(url, path, token ? `Bearer ${token}` : undefined);
  const rows = (await get<RenderedCondition[]>('/debug/conditions')).map((c) => ({ ...c }));
  for (const n of await get<NackRecord[]>('/debug/nacks')) {
    rows.push({
      // A proxy's node id is already `<namespace>/<pod>`.
      object: `Proxy/${n.proxy}`,
      type: 'Programmed',
      status: 'False',
      severity: 'Error',
      reason: 'Nacked',
      message: `proxy ${n.proxy} (group ${n.group}) rejected ${n.typeUrl.split('.').pop()} version ${n.version}: ${n.message}`,
    });
  }
  return rows;
}

/** Registers `weft status`. */
export const registerStatus: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('status')
    .description(
      'List every condition in the mesh: objects left out or partly used, dangling references,\n' +
        'EnvoyPatch outcomes, and (from a running Weft) NACKs from proxies. Each message names the\n' +
        'object, the field and the fix. Problems only unless --all.\n\n' +
        'Sources: -f FILE (offline), --kubernetes or --kubeconfig FILE (the cluster), --admin-url URL\n' +
        '(a running weft serve, e.g. http://127.0.0.1:15014). In a cluster, --all also names SMI objects\n' +
        'in namespaces without weft.dev/mesh=enabled, which Weft ignores.\n' +
        'Exit status: 0 no errors, 1 errors, 2 bad arguments.',
    )
    .option(
      '-f, --file <path>',
      'a manifest file or folder (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .option('--kubernetes', 'read the cluster of the current kubeconfig context (or in-cluster credentials)')
    .option('--kubeconfig <file>', 'kubeconfig of the cluster to read (implies --kubernetes)')
    .option('--admin-url <url>', "a running Weft's admin address")
    .option(
      '--token <token>',
      'with --admin-url to a Weft in a cluster: a bearer token the API server vouches for, of an account that may list pods in the mesh namespaces',
    )
    .option('--mesh-namespace <ns>', "Weft's own namespace", 'weft-system')
    .option('-o, --output <format>', 'table, json or yaml', 'table')
    .option('--all', 'also list conditions that hold (Accepted=True and the like)')
    .option(
      '--envoy <path>',
      'offline and cluster sources: Envoy binary judging patched proxies (default: WEFT_ENVOY_BIN, the setup cache, then PATH)',
    )
    .option('--no-envoy', "judge patches with Weft's own checks only")
    .action(async (flags: StatusFlags) => {
      const sources = [flags.file?.length, flags.kubernetes || flags.kubeconfig, flags.adminUrl].filter(
        Boolean,
      );
      if (sources.length !== 1) {
        process.stderr.write(
          'weft status: give exactly one of -f FILE, --kubernetes/--kubeconfig FILE, --admin-url URL\n',
        );
        setExitCode(2);
        return;
      }
      if (!['table', 'json', 'yaml'].includes(flags.output)) {
        process.stderr.write(`weft status: -o must be table, json or yaml, not "${flags.output}"\n`);
        setExitCode(2);
        return;
      }
      let rows: StatusRow[];
      try {
        if (flags.adminUrl) {
          rows = await fromAdmin(flags.adminUrl, flags.token);
        } else {
          let files: ManifestFile[];
          let extra: StatusRow[] = [];
          if (flags.file?.length) {
            files = await readManifests(flags.file);
          } else {
            setLogLevel('error');
            const objects = await listClusterObjects(flags.kubeconfig, flags.meshNamespace);
            files = [{ source: 'cluster', text: objects.map((o) => JSON.stringify(o)).join('\n---\n') }];
            extra = statusRows(objects);
            // Outside the mesh is not an error (a namespace may hold SMI objects on purpose), so
            // these rows come with --all, the view of everything.
            if (flags.all) extra.push(...(await unmeshedRows(flags.kubeconfig, flags.meshNamespace)));
          }
          const opts = { flavors: ['envoy' as const], meshNamespace: flags.meshNamespace };
          const judge = judgeFor(flags.envoy);
          const out = judge ? await renderMeshJudged(files, opts, judge) : renderMesh(files, opts);
          const recomputed = out.conditions.map((c) => ({ ...c }));
          // What the leader wrote and what was just recomputed say the same thing in different
          // words (a group's name vs. a proxy's): where both have a row, keep the recomputed one.
          const have = new Set(recomputed.map((r) => `${r.object}\0${r.type}`));
          rows = [...recomputed, ...extra.filter((r) => !have.has(`${r.object}\0${r.type}`))];
        }
      } catch (err) {
        process.stderr.write(`weft status: ${err instanceof Error ? err.message : String(err)}\n`);
        setExitCode(2);
        return;
      }
      rows.sort((a, b) =>
        a.object === b.object ? a.type.localeCompare(b.type) : a.object.localeCompare(b.object),
      );
      // One condition can come from several proxies' translations: show it once.
      const seen = new Set<string>();
      rows = rows.filter((r) => {
        const k = `${r.object}\0${r.type}\0${r.reason}\0${r.message}`;
        if (seen.has(k)) return false;
        seen.add(k);
        return true;
      });
      const shown = flags.all ? rows : rows.filter(problem);
      if (flags.output === 'json') process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
      else if (flags.output === 'yaml') process.stdout.write(stringify(shown, { lineWidth: 0 }));
      else process.stdout.write(table(shown));
      setExitCode(rows.some((r) => r.severity === 'Error' && problem(r)) ? 1 : 0);
    });
};
