/**
 * Reads a folder (or single files) of YAML and JSON manifests: the input of `weft render` and of
 * `weft serve --config-dir`. Files are read in path order so the result never depends on the
 * order the file system lists them in.
 */
import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join, relative } from 'node:path';

/** A manifest file's text and its name as shown in messages. */
export interface ManifestFile {
  /** Path relative to the folder given (or as given, for a file). */
  readonly source: string;
  readonly text: string;
}

const MANIFEST_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/** A file or folder under a config folder that could not be read. */
export interface UnreadableEntry {
  /** Path relative to the config folder. */
  readonly source: string;
  /** The system's error code (`ELOOP`, `EACCES`, ...), empty when there is none. */
  readonly code: string;
  readonly message: string;
}

async function walk(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await walk(p, out);
    else if (MANIFEST_EXTENSIONS.has(extname(e.name))) out.push(p);
  }
}

/**
 * Reads every manifest under `dir` like {@link readManifests}, except that a file or sub-folder
 * that cannot be read (a symbolic link loop, no permission, removed mid-read) is listed in
 * `unreadable` instead of failing the whole read: a live config folder must not stop serving
 * because of one entry. Symbolic links to folders are not followed (they could loop). Only the
 * root folder itself failing throws.
 */
export async function readManifestTree(
  dir: string,
): Promise<{ files: ManifestFile[]; unreadable: UnreadableEntry[] }> {
  const paths: string[] = [];
  const unreadable: UnreadableEntry[] = [];
  const note = (p: string, err: unknown): void => {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return;
    unreadable.push({ source: relative(dir, p) || p, code: e.code ?? '', message: e.message ?? String(err) });
  };
  const visit = async (d: string, top: boolean): Promise<void> => {
    let entries: Dirent[];
    try {
      entries = await readdir(d, { withFileTypes: true });
    } catch (err) {
      if (top) throw err;
      note(d, err);
      return;
    }
    for (const e of entries) {
      if (e.name.startsWith('.')) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) await visit(p, false);
      else if (MANIFEST_EXTENSIONS.has(extname(e.name))) paths.push(p);
    }
  };
  await visit(dir, true);
  paths.sort();
  const files: ManifestFile[] = [];
  for (const p of paths) {
    try {
      files.push({ source: relative(dir, p) || p, text: await readFile(p, 'utf8') });
    } catch (err) {
      note(p, err);
    }
  }
  unreadable.sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  return { files, unreadable };
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
