/**
 * The pinned helm CLI for the deploy tests: WEFT_HELM_BIN, else the binary scripts/setup-helm.sh
 * built for the version in hack/helm/VERSION.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** The repository root (tests run from dist/test/deploy). */
export const ROOT = join(__dirname, '..', '..', '..');
/** The chart folder. */
export const CHART = join(ROOT, 'deploy', 'helm', 'weft');
/** The checked-in plain manifests. */
export const MANIFESTS = join(ROOT, 'deploy', 'manifests', 'weft.yaml');

/** Path of the helm binary; throws with the fix when it is missing. */
export function helmBin(): string {
  if (process.env.WEFT_HELM_BIN) return process.env.WEFT_HELM_BIN;
  const version = readFileSync(join(ROOT, 'hack', 'helm', 'VERSION'), 'utf8').trim();
  const root = process.env.WEFT_HELM_CACHE ?? join(homedir(), '.cache', 'weft', 'helm');
  const bin = join(root, version, 'bin', 'helm');
  if (!existsSync(bin))
    throw new Error(`no helm ${version} at ${bin}: run scripts/setup-helm.sh (or set WEFT_HELM_BIN)`);
  return bin;
}

/** Runs a program to completion; never rejects (the caller asserts on the code). */
export function run(
  file: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/**
 * `helm template` of the chart the way scripts/render-deploy.sh renders deploy/manifests/weft.yaml
 * (release weft in weft-system, CRDs included, the Namespace object on), plus `extra` arguments.
 */
export async function helmTemplate(extra: readonly string[] = []): Promise<string> {
  const r = await run(helmBin(), [
    'template',
    'weft',
    CHART,
    '--namespace',
    'weft-system',
    '--include-crds',
    '--set',
    'namespace.create=true',
    ...extra,
  ]);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

/** Runs the built `weft` CLI. */
export function weft(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [join(ROOT, 'bin', 'weft.js'), ...args]);
}
