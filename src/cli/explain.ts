/**
 * `weft explain`: is a call allowed, by which TrafficTarget and rule (or why not), and which split
 * backends it goes to; offline on manifests or on the cluster's objects, through the production
 * model. The decision itself is src/explain.
 */
import type { Command } from 'commander';
import { ExplainError, type Explanation, explain } from '../explain';
import { type ManifestFile, readManifests } from '../inputs/folder';
import { setLogLevel } from '../log';
import { parseManifests } from '../mesh/render';
import { extractPatches } from '../patch/mesh';
import { buildModel } from '../smi/build';
import type { CommandRegistrar } from './index';
import { listClusterObjects } from './status';

interface ExplainFlags {
  file?: string[];
  kubernetes?: boolean;
  kubeconfig?: string;
  meshNamespace: string;
  from?: string;
  to?: string;
  method?: string;
  path?: string;
  header?: string[];
  output: string;
}

/** The text `weft explain` prints. */
export function explanationText(e: Explanation): string {
  const out: string[] = [];
  out.push(`${e.allowed ? 'ALLOWED' : 'DENIED'}: ${e.source} -> ${e.destination}`);
  const hdrs = Object.entries(e.request.headers)
    .map(([k, v]) => ` ${k}=${v}`)
    .join('');
  out.push(`request: ${e.request.protocol} ${e.request.method} ${e.request.path}${hdrs}`);
  out.push(`routing: ${e.routing}`);
  for (const b of e.backends) {
    out.push(`  ${b.service}  weight ${b.weight} (${b.percent}%)`);
    if (b.access.length === 0) out.push('    no workload backs this service: nothing answers');
    for (const a of b.access) {
      out.push(
        `    ${a.allowed ? 'allowed' : 'denied'} at ${a.destination} (inbound port ${a.inboundPort ?? '?'})`,
      );
      if (a.allowedBy?.permissive) out.push('      by permissive mode');
      else if (a.allowedBy)
        out.push(
          `      by TrafficTarget ${a.allowedBy.trafficTarget}, rule ${a.allowedBy.rule}${a.allowedBy.match ? `, match ${a.allowedBy.match}` : ''}`,
        );
      else if (a.closest) {
        out.push(
          `      closest: TrafficTarget ${a.closest.trafficTarget}, rule ${a.closest.rule}; not matched:`,
        );
        for (const f of a.closest.failed) out.push(`        - ${f}`);
      } else out.push(`      ${a.reason}`);
    }
  }
  return `${out.join('\n')}\n`;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** Registers `weft explain`. */
export const registerExplain: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('explain')
    .description(
      'Explain one call: allowed or denied, by which TrafficTarget and rule, or why nothing allows it\n' +
        '(the closest rule and what did not match), and which split backends with which weights it goes\n' +
        "to. Decided on the production model with the translators' semantics. Exit status: 0 allowed,\n" +
        '1 denied, 2 bad arguments or an unknown destination.',
    )
    .option('-f, --file <path>', 'a manifest file or folder (repeatable)', collect)
    .option('--kubernetes', 'read the cluster of the current kubeconfig context')
    .option('--kubeconfig <file>', 'as --kubernetes, with this kubeconfig')
    .option('--mesh-namespace <ns>', "Weft's own namespace", 'weft-system')
    .option('--from <ns/sa>', "the caller's ServiceAccount")
    .option('--to <ns/svc:port>', 'the Service and port it dials')
    .option('--method <method>', 'HTTP method (default GET; POST on grpc ports)')
    .option('--path <path>', 'request path (default /)')
    .option('--header <k=v>', 'a request header (repeatable)', collect)
    .option('-o, --output <format>', 'text or json', 'text')
    .action(async (f: ExplainFlags) => {
      const usage = (msg: string): void => {
        process.stderr.write(`weft explain: ${msg}\n`);
        setExitCode(2);
      };
      const from = /^([^/\s]+)\/([^/\s]+)$/.exec(f.from ?? '');
      const to = /^([^/\s]+)\/([^/:\s]+):(\d+)$/.exec(f.to ?? '');
      if (!from) return usage('--from must be <namespace>/<service-account>');
      if (!to) return usage('--to must be <namespace>/<service>:<port>');
      if (!['text', 'json'].includes(f.output)) return usage(`-o must be text or json, not "${f.output}"`);
      if (Boolean(f.file?.length) === Boolean(f.kubernetes || f.kubeconfig))
        return usage('give either -f FILE (repeatable) or --kubernetes/--kubeconfig FILE');
      const headers: Record<string, string> = {};
      for (const h of f.header ?? []) {
        const i = h.indexOf('=');
        if (i <= 0) return usage(`--header ${h}: expected NAME=VALUE`);
        headers[h.slice(0, i)] = h.slice(i + 1);
      }
      let files: ManifestFile[];
      try {
        if (f.file?.length) files = await readManifests(f.file);
        else {
          setLogLevel('error');
          const objects = await listClusterObjects(f.kubeconfig, f.meshNamespace);
          files = [{ source: 'cluster', text: objects.map((o) => JSON.stringify(o)).join('\n---\n') }];
        }
      } catch (err) {
        return usage(err instanceof Error ? err.message : String(err));
      }
      const { rest } = extractPatches(parseManifests(files).objects);
      const { model } = buildModel(rest);
      let e: Explanation;
      try {
        e = explain(model, {
          from: { namespace: from[1]!, serviceAccount: from[2]! },
          to: { namespace: to[1]!, service: to[2]!, port: Number(to[3]) },
          ...(f.method ? { method: f.method } : {}),
          ...(f.path ? { path: f.path } : {}),
          headers,
        });
      } catch (err) {
        if (err instanceof ExplainError) return usage(err.message);
        throw err;
      }
      process.stdout.write(f.output === 'json' ? `${JSON.stringify(e, null, 2)}\n` : explanationText(e));
      setExitCode(e.allowed ? 0 : 1);
    });
};
