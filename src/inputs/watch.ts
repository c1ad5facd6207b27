/**
 * Watches a folder tree for changes to the manifests in it, for `weft serve --config-dir`.
 *
 * Node 20's recursive `fs.watch` on Linux watches each file it found, so a file saved by rename
 * (`sed -i`, an editor's atomic save, `mv new old`) is never reported again; and it stats every
 * entry it meets, so a symlink loop created while it runs emits an `ELOOP` error that ends the
 * process. This watcher instead watches each directory (never following symbolic links), which
 * sees renames into it, re-lists the tree after each change to watch folders moved in and forget
 * those moved out, and keeps a periodic fingerprint of the tree (path, inode, size, modification
 * time of each entry) as a backstop for events the kernel drops. Errors are reported, never thrown.
 */
import { type FSWatcher, watch } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

/** Options of {@link TreeWatcher}. */
export interface TreeWatcherOptions {
  /** Told of any change under the root (several calls per burst; callers batch). */
  onChange: () => void;
  /** Told of a filesystem error (a folder that cannot be listed or watched); the watcher goes on. */
  onError: (path: string, err: NodeJS.ErrnoException) => void;
  /** How often the fingerprint is taken, in ms; 0 turns the backstop off (default 2,000). */
  pollMs?: number;
}

/** A folder tree's directories, and a fingerprint of every entry in it. */
interface Listing {
  dirs: string[];
  fingerprint: string;
}

/** Watches a directory tree without following symbolic links; see the module comment. */
export class TreeWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private poll: NodeJS.Timeout | undefined;
  private fingerprint = '';
  private stopped = false;
  private syncing: Promise<void> = Promise.resolve();

  constructor(
    private readonly root: string,
    private readonly o: TreeWatcherOptions,
  ) {}

  /** Lists the tree, watches every folder in it and starts the backstop. */
  async start(): Promise<void> {
    await this.sync();
    const pollMs = this.o.pollMs ?? 2000;
    if (pollMs > 0) {
      this.poll = setInterval(() => void this.sync(true), pollMs);
      // The backstop must not keep a process alive that is otherwise done.
      this.poll.unref();
    }
  }

  /**
   * Re-lists the tree: watches folders that appeared, closes the watchers of folders that are gone,
   * and (with `notify`) reports a change when the fingerprint moved. Runs one at a time.
   */
  sync(notify = false): Promise<void> {
    this.syncing = this.syncing.then(async () => {
      if (this.stopped) return;
      const listing = await this.list();
      if (this.stopped) return;
      const present = new Set(listing.dirs);
      for (const [dir, w] of this.watchers) {
        if (!present.has(dir)) {
          w.close();
          this.watchers.delete(dir);
        }
      }
      for (const dir of listing.dirs) if (!this.watchers.has(dir)) this.watchDir(dir);
      const moved = listing.fingerprint !== this.fingerprint;
      this.fingerprint = listing.fingerprint;
      if (notify && moved) this.o.onChange();
    });
    return this.syncing;
  }

  /** Folders currently watched (for tests and debug views). */
  watchedFolders(): string[] {
    return [...this.watchers.keys()].sort();
  }

  /** Closes every watcher and the backstop. */
  stop(): void {
    this.stopped = true;
    if (this.poll) clearInterval(this.poll);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  private watchDir(dir: string): void {
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: true }, () => {
        this.o.onChange();
        // A folder may have moved in or out: watch what is there now.
        void this.sync();
      });
    } catch (err) {
      this.o.onError(dir, err as NodeJS.ErrnoException);
      return;
    }
    // Without a listener an 'error' (the folder deleted under the watcher) would end the process.
    w.on('error', (err: NodeJS.ErrnoException) => {
      w.close();
      if (this.watchers.get(dir) === w) this.watchers.delete(dir);
      if (err.code !== 'ENOENT' && err.code !== 'EPERM') this.o.onError(dir, err);
      this.o.onChange();
    });
    this.watchers.set(dir, w);
  }

  /** Every folder under the root (symbolic links are entries, never followed) and a fingerprint. */
  private async list(): Promise<Listing> {
    const dirs: string[] = [];
    const parts: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      let names: string[];
      try {
        names = (await readdir(dir)).sort();
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        // A folder removed between listing its parent and itself is simply gone.
        if (e.code !== 'ENOENT') this.o.onError(dir, e);
        parts.push(`${dir}\0!${e.code ?? ''}`);
        return;
      }
      dirs.push(dir);
      for (const name of names) {
        const p = join(dir, name);
        try {
          const st = await lstat(p);
          parts.push(`${p}\0${st.ino}\0${st.size}\0${st.mtimeMs}`);
          if (st.isDirectory()) await walk(p);
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          if (e.code !== 'ENOENT') this.o.onError(p, e);
        }
      }
    };
    await walk(this.root);
    return { dirs, fingerprint: parts.join('\n') };
  }
}
