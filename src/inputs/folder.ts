/**
 * Reads a folder (or single files) of YAML and JSON manifests: the input of `weft render` and of
 * `weft serve --config-dir`. Files are read in path order so the result never depends on the
 * order the file system lists them in.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';

/** A manifest file's text and its name as shown in messages. */
export interface ManifestFile {
  /** Path relative to the folder given (or as given, for a file). */
  readonly source: string;
  readonly text: string;
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (MANIFEST_EXTENSIONS.has(extname(e.name))) out.push(p);
  }
}

/** Reads every manifest under each path (a file or a folder, recursively), sorted by path. */
export async function readManifests(paths: readonly string[]): Promise<ManifestFile[]> {
  const out: ManifestFile[] = [];
  for (const p of paths) {
    const st = await stat(p).catch(() => {
      throw new Error(`${p}: no such file or folder`);
    });
    if (st.isDirectory()) {
      const files: string[] = [];
      await walk(p, files);
      files.sort();
      for (const f of files) out.push({ source: relative(p, f) || f, text: await readFile(f, 'utf8') });
    } else {
      out.push({ source: p, text: await readFile(p, 'utf8') });
    }
  }
  return out;
}
