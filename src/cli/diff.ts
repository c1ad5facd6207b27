/**
 * `weft diff`: what a change of inputs, or an EnvoyPatch, does to every proxy's Envoy config.
 * Both sides are compiled exactly as `weft render` compiles them; the output lists, per proxy and
 * per resource, the RFC 6902 operations that turn the old config into the new one.
 */
import type { Command } from 'commander';
import { stringify } from 'yaml';
import { readManifests } from '../inputs/folder';
import { type RenderedProxy, renderMesh, renderMeshJudged } from '../mesh/render';
import { diffJson, unifiedDiff } from '../patch/diff';
import { judgeFor } from '../patch/envoy-judge';
import type { JsonPatchOp } from '../patch/json-patch';
import type { CommandRegistrar } from './index';

interface DiffFlags {
  file: string[];
  patch?: string[];
  flavor: string;
  output: string;
  mtls: boolean;
  envoy: string | boolean;
}

/** The changes to one resource of one proxy. */
export interface ResourceDiff {
  proxy: string;
  flavor: string;
  type: string;
  name: string;
  change: 'added' | 'removed' | 'changed';
  /** JSON Patch from the old resource to the new one (for `changed`). */
  ops: JsonPatchOp[];
  /** The resource before and after, for the readable form; not part of the JSON output. */
  before?: unknown;
  after?: unknown;
}

const TYPES = ['listeners', 'routes', 'clusters', 'endpoints', 'secrets'] as const;

function byName(list: readonly unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (const r of list) {
    const o = r as { name?: string; cluster_name?: string };
    m.set(o.name ?? o.cluster_name ?? '', r);
  }
  return m;
}

/** Compares two renders proxy by proxy and resource by resource. */
export function diffRenders(
  before: readonly RenderedProxy[],
  after: readonly RenderedProxy[],
): ResourceDiff[] {
  const key = (p: RenderedProxy): string => `${p.flavor}/${p.name}`;
  const old = new Map(before.map((p) => [key(p), p]));
  const neu = new Map(after.map((p) => [key(p), p]));
  const out: ResourceDiff[] = [];
  for (const k of [...new Set([...old.keys(), ...neu.keys()])].sort()) {
    const a = old.get(k);
    const b = neu.get(k);
    const proxy = (a ?? b)!.name;
    const flavor = (a ?? b)!.flavor;
    for (const type of TYPES) {
      const ra = byName((a?.resources[type] ?? []) as unknown[]);
      const rb = byName((b?.resources[type] ?? []) as unknown[]);
      for (const name of [...new Set([...ra.keys(), ...rb.keys()])].sort()) {
        const x = ra.get(name);
        const y = rb.get(name);
        if (x === undefined)
          out.push({
            proxy,
            flavor,
            type,
            name,
            change: 'added',
            ops: [{ op: 'add', path: '', value: y }],
            after: y,
          });
        else if (y === undefined)
          out.push({
            proxy,
            flavor,
            type,
            name,
            change: 'removed',
            ops: [{ op: 'remove', path: '' }],
            before: x,
          });
        else {
          const ops = diffJson(x, y);
          if (ops.length > 0)
            out.push({ proxy, flavor, type, name, change: 'changed', ops, before: x, after: y });
        }
      }
    }
  }
  return out;
}

const yaml = (v: unknown): string =>
  v === undefined ? '' : stringify(v, { lineWidth: 0, aliasDuplicateObjects: false });

/**
 * The readable form: one block per proxy, a `+` (added), `-` (removed) or `~` (changed) line per
 * resource, then a unified diff of the resource as YAML (the whole resource when added).
 */
export function formatDiff(diffs: readonly ResourceDiff[]): string {
  if (diffs.length === 0) return 'No proxy config changes.\n';
  const lines: string[] = [];
  let proxy = '';
  for (const d of diffs) {
    const head = `${d.flavor} proxy ${d.proxy}`;
    if (head !== proxy) {
      lines.push(`${lines.length ? '\n' : ''}=== ${head}`);
      proxy = head;
    }
    const mark = d.change === 'added' ? '+' : d.change === 'removed' ? '-' : '~';
    lines.push(`${mark} ${d.type} ${d.name}`);
    if (d.change === 'removed') continue;
    for (const l of unifiedDiff(yaml(d.before), yaml(d.after))) lines.push(`  ${l}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Registers `weft diff`. */
export const registerDiff: CommandRegistrar = (program: Command, setExitCode) => {
  const collect = (v: string, prev: string[] = []) => [...prev, v];
  program
    .command('diff')
    .description(
      'Show, per proxy, what a change does to the Envoy configuration Weft compiles.\n\n' +
        '  weft diff -f before/ -f after/          compare two sets of manifests\n' +
        '  weft diff -f mesh/ --patch patch.yaml   what an EnvoyPatch (or any extra manifests) would do\n\n' +
        'Each side is compiled as weft render does. The readable output marks resources + added,\n' +
        '- removed, ~ changed, each followed by a unified diff of its YAML; -o json prints RFC 6902\n' +
        'JSON Patches per proxy and resource. Exit status: 0 no change, 1 changes, 2 errors\n' +
        '(including an EnvoyPatch the change brings in that is refused; its reason goes to stderr).',
    )
    .requiredOption(
      '-f, --file <path>',
      'the "before" manifests, then (given twice) the "after" ones',
      collect,
    )
    .option('--patch <file>', 'manifests added to the inputs for the "after" side (repeatable)', collect)
    .option('--flavor <flavor>', 'envoy, grpc or both', 'envoy')
    .option('-o, --output <format>', 'text or json', 'text')
    .option('--no-mtls', 'compile without mutual TLS (plaintext development mode)')
    .option(
      '--envoy <path>',
      'Envoy binary judging patched proxies (default: WEFT_ENVOY_BIN, the setup cache, then PATH)',
    )
    .option('--no-envoy', "judge patches with Weft's own checks only")
    .action(async (flags: DiffFlags) => {
      const fail = (msg: string): void => {
        process.stderr.write(`weft diff: ${msg}\n`);
        setExitCode(2);
      };
      const two = flags.file.length === 2 && !flags.patch;
      const patched = flags.file.length === 1 && (flags.patch?.length ?? 0) > 0;
      if (!two && !patched) return fail('give -f BEFORE -f AFTER, or -f INPUTS --patch FILE (see --help)');
      if (!['text', 'json'].includes(flags.output))
        return fail(`-o must be text or json, not "${flags.output}"`);
      const flavors = flags.flavor === 'both' ? ['envoy', 'grpc'] : [flags.flavor];
      if (!flavors.every((f) => f === 'envoy' || f === 'grpc'))
        return fail(`--flavor must be envoy, grpc or both, not "${flags.flavor}"`);
      try {
        const opts = { flavors: flavors as ('envoy' | 'grpc')[], mtls: flags.mtls };
        const before = await readManifests([flags.file[0]!]);
        const after = two
          ? await readManifests([flags.file[1]!])
          : [...before, ...(await readManifests(flags.patch!))];
        const judge = judgeFor(flags.envoy);
        const render = (files: typeof before) =>
          judge ? renderMeshJudged(files, opts, judge) : Promise.resolve(renderMesh(files, opts));
        const a = await render(before);
        const b = await render(after);
        const diffs = diffRenders(a.proxies, b.proxies);
        // Patch failures the change introduces are errors: the diff alone would read "no change".
        const isError = (c: { object: string; status: string; severity: string }): boolean =>
          c.object.startsWith('EnvoyPatch/') && c.status === 'False' && c.severity === 'Error';
        const known = new Set(a.conditions.filter(isError).map((c) => c.message));
        const problems = b.conditions.filter((c) => isError(c) && !known.has(c.message));
        for (const c of problems) process.stderr.write(`error: ${c.message}\n`);
        process.stdout.write(
          flags.output === 'json'
            ? `${JSON.stringify(
                diffs.map(({ before: _b, after: _a, ...d }) => d),
                null,
                2,
              )}\n`
            : formatDiff(diffs),
        );
        setExitCode(problems.length > 0 ? 2 : diffs.length > 0 ? 1 : 0);
      } catch (err) {
        fail(err instanceof Error ? err.message : String(err));
      }
    });
};
