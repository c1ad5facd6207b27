/**
 * A folder of manifests as a live input: read, parsed per file, re-read when anything in it
 * changes (batched: one recompile per burst of edits). A file that fails to parse keeps its last
 * good objects, so a half-saved file never tears down config; the parse error is a condition and
 * is logged once, where it is (file, document, line, column) and why. An object edited into a
 * version that does not match its schema keeps its last good version too (see `last-good.ts`).
 * A file or folder that cannot be read (a symbolic link loop, no permission) is a condition and a
 * log line, never the end of the process; a file keeps what it last held. The folder is watched
 * by `watch.ts`, which follows files saved by rename and folders moved in and out.
 */
import { EventEmitter } from 'node:events';
import { relative } from 'node:path';
import { Batcher } from '../kube/batch';
import { type Logger, logger } from '../log';
import { fileCondition, type YamlParseError } from '../smi/load';
import type { Condition } from '../smi/model';
import { HelperThread } from '../worker/helper-thread';
import { readManifestTree } from './folder';
import { LastGoodObjects } from './last-good';
import { TreeWatcher } from './watch';

const log: Logger = logger('folder');

/** What a parse condition says when the file's last good version keeps serving. */
const KEPT = "the file's last good version keeps serving;";

/** Current objects and parse conditions of a folder. Emits `change` after each settled reload. */
export class FolderSource extends EventEmitter {
  private watcher: TreeWatcher | undefined;
  private readonly batcher: Batcher;
  private lastGood = new Map<string, unknown[]>();
  /** Per file, the parse failure last logged: a reload that finds it again stays quiet. */
  private reported = new Map<string, string>();
  /** Filesystem errors last logged (path and code): one that persists is logged once. */
  private fsReported = new Set<string>();
  /** Per object, its last version that matched its schema (an edit that breaks it is refused). */
  private readonly objectsKept = new LastGoodObjects();
  private current: { objects: unknown[]; conditions: Condition[] } = { objects: [], conditions: [] };
  /** Parses big files off the main thread, so xDS and admin keep answering meanwhile. */
  private readonly parser: HelperThread;
  /** Whether {@link parser} is this source's own, to stop with it. */
  private readonly ownParser: boolean;
  /** The reload in progress: reloads run one at a time, as parsing now yields to the loop. */
  private reloading: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    quietMs = 100,
    maxDelayMs = 1000,
    /** How often the folder's fingerprint is checked as a backstop to change events (0: never). */
    private readonly pollMs = 2000,
    /** The thread big files are parsed on (see `helper-thread.ts`); by default one of its own. */
    parser?: HelperThread,
  ) {
    super();
    this.ownParser = parser === undefined;
    this.parser = parser ?? new HelperThread();
    this.batcher = new Batcher(quietMs, maxDelayMs, () => this.reload());
  }

  /** Reads the folder once and starts watching it. */
  async start(): Promise<void> {
    await this.reload();
    this.watcher = new TreeWatcher(this.dir, {
      onChange: () => this.batcher.trigger(),
      onError: (path, err) => {
        const source = relative(this.dir, path) || path;
        const key = `${source}\0${err.code ?? ''}`;
        if (this.fsReported.has(key)) return;
        this.fsReported.add(key);
        this.logFsError(source, err.code ?? '', err.message);
      },
      pollMs: this.pollMs,
    });
    await this.watcher.start();
  }

  /** Objects and conditions as of the last reload. */
  snapshot(): { objects: unknown[]; conditions: Condition[] } {
    return this.current;
  }

  /** Re-reads every file now (after any reload already running). */
  reload(): Promise<void> {
    // Each reload reads the state the previous one left (last good versions, what was logged),
    // so two must never interleave at an await.
    const run = this.reloading.then(() => this.reloadNow());
    this.reloading = run.catch(() => undefined);
    return run;
  }

  private async reloadNow(): Promise<void> {
    let files: Awaited<ReturnType<typeof readManifestTree>>['files'];
    let unreadable: Awaited<ReturnType<typeof readManifestTree>>['unreadable'];
    try {
      ({ files, unreadable } = await readManifestTree(this.dir));
    } catch (err) {
      log.error('cannot read the config folder; keeping the last good inputs', {
        dir: this.dir,
        error: err instanceof Error ? err.message : String(err),
      });
      return;
    }
    const objects: unknown[] = [];
    const conditions: Condition[] = [];
    const good = new Map<string, unknown[]>();
    const reported = new Map<string, string>();
    const fsReported = new Set<string>();
    for (const u of unreadable) {
      // What the file last held keeps serving: a link loop made by mistake must not drop config.
      const kept = this.lastGood.get(u.source);
      if (kept) {
        good.set(u.source, kept);
        objects.push(...kept);
      }
      const key = `${u.source}\0${u.code}`;
      fsReported.add(key);
      if (!this.fsReported.has(key)) this.logFsError(u.source, u.code, u.message);
      conditions.push(
        fileCondition(
          u.source,
          'FileUnreadable',
          `cannot be read (${u.code || u.message}${u.code === 'ELOOP' ? ': a symbolic link loop' : ''}); ${
            kept ? "the file's last good version keeps serving" : 'nothing in it is served'
          }; fix or remove it`,
          'file',
        ),
      );
    }
    this.fsReported = fsReported;
    // Parsing is the costly part (about a second for a 10,000-match group): big files go to the
    // worker thread all at once, and the results are used in path order as before.
    const parsed = await Promise.all(files.map((f) => this.parser.parse(f.text, f.source)));
    for (const [i, f] of files.entries()) {
      const r = parsed[i]!;
      const broken = r.conditions.some((c) => c.reason === 'YamlParseError');
      const keep = broken && this.lastGood.has(f.source);
      const use = keep ? this.lastGood.get(f.source)! : r.objects;
      if (broken) {
        const key = JSON.stringify(r.parseErrors);
        reported.set(f.source, key);
        if (this.reported.get(f.source) !== key) this.logFailure(f.source, r.parseErrors, keep);
      } else if (this.reported.has(f.source)) {
        log.info('file parses again', { file: f.source });
      }
      good.set(f.source, use);
      objects.push(...use);
      // The parser's own message says the document is left out; with the last good version
      // kept, say that instead, so the condition tells what is actually served.
      conditions.push(
        ...(keep
          ? r.conditions.map((c) =>
              c.reason === 'YamlParseError'
                ? { ...c, message: c.message.replace(/the document is left out;/, KEPT) }
                : c,
            )
          : r.conditions),
      );
    }
    this.reported = reported;
    this.lastGood = good;
    const kept = this.objectsKept.apply(objects);
    this.current = { objects: kept.objects, conditions: [...conditions, ...kept.conditions] };
    this.emit('change');
  }

  /** Logs a filesystem error under the folder (once per path and code, by the callers). */
  private logFsError(source: string, code: string, message: string): void {
    log.error('cannot read part of the config folder; it is skipped and the rest keeps serving', {
      path: source,
      code,
      error: message,
    });
  }

  /** Logs a file's new parse failure: each broken document with its line, column and reason. */
  private logFailure(file: string, errors: readonly YamlParseError[], kept: boolean): void {
    const outcome = kept ? 'keeping its last good version' : 'its broken documents are left out';
    for (const e of errors) {
      log.error(`file does not parse; ${outcome}; fix the YAML there`, {
        file,
        document: e.document,
        line: e.line,
        ...(e.column === null ? {} : { column: e.column }),
        reason: e.reason,
      });
    }
  }

  /** Stops watching. */
  stop(): void {
    this.batcher.stop();
    this.watcher?.stop();
    if (this.ownParser) this.parser.stop();
  }
}
