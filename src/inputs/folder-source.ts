/**
 * A folder of manifests as a live input: read, parsed per file, re-read when anything in it
 * changes (batched: one recompile per burst of edits). A file that fails to parse keeps its last
 * good objects, so a half-saved file never tears down config; the parse error is a condition.
 */
import { EventEmitter } from 'node:events';
import { type FSWatcher, watch } from 'node:fs';
import { Batcher } from '../kube/batch';
import { type Logger, logger } from '../log';
import { parseYamlObjects } from '../smi/load';
import type { Condition } from '../smi/model';
import { readManifests } from './folder';

const log: Logger = logger('folder');

/** Current objects and parse conditions of a folder. Emits `change` after each settled reload. */
export class FolderSource extends EventEmitter {
  private watcher: FSWatcher | undefined;
  private readonly batcher: Batcher;
  private lastGood = new Map<string, unknown[]>();
  private current: { objects: unknown[]; conditions: Condition[] } = { objects: [], conditions: [] };

  constructor(
    private readonly dir: string,
    quietMs = 100,
    maxDelayMs = 1000,
  ) {
    super();
    this.batcher = new Batcher(quietMs, maxDelayMs, () => this.reload());
  }

  /** Reads the folder once and starts watching it. */
  async start(): Promise<void> {
    await this.reload();
    this.watcher = watch(this.dir, { recursive: true }, () => this.batcher.trigger());
  }

  /** Objects and conditions as of the last reload. */
  snapshot(): { objects: unknown[]; conditions: Condition[] } {
    return this.current;
  }

  /** Re-reads every file now. */
  async reload(): Promise<void> {
    let files: Awaited<ReturnType<typeof readManifests>>;
    try {
      files = await readManifests([this.dir]);
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
    for (const f of files) {
      const r = parseYamlObjects(f.text, f.source);
      const broken = r.conditions.some((c) => c.reason === 'YamlParseError');
      const use = broken && this.lastGood.has(f.source) ? this.lastGood.get(f.source)! : r.objects;
      if (broken && this.lastGood.has(f.source)) {
        log.warn('file does not parse; keeping its last good version', { file: f.source });
      }
      good.set(f.source, use);
      objects.push(...use);
      conditions.push(...r.conditions);
    }
    this.lastGood = good;
    this.current = { objects, conditions };
    this.emit('change');
  }

  /** Stops watching. */
  stop(): void {
    this.batcher.stop();
    this.watcher?.close();
  }
}
