/**
 * An informer: list, then watch from the list's resourceVersion, keeping a local store of one kind.
 * - Bookmarks are requested so a quiet watch still advances its resourceVersion.
 * - 410 Gone (the resourceVersion is too old, e.g. after an etcd compaction or an API server
 *   restart) triggers a relist; the relist is diffed against the store so deletions that happened
 *   while disconnected are reported too: no update is lost.
 * - Any other failure reconnects with exponential backoff.
 * - A kind the server does not know (404: CRD not installed) counts as synced and empty, and is
 *   retried, so installing the CRD later needs no restart.
 */
import { EventEmitter } from 'node:events';
import { type Logger, logger } from '../log';
import { KubeApiError, type KubeClient, type KubeObject, type WatchEvent } from './client';

const log: Logger = logger('kube');

/** Which resource an informer watches. */
export interface ResourceKind {
  /** API group; '' for the core group. */
  readonly group: string;
  readonly version: string;
  /** Plural resource name, e.g. `trafficsplits`. */
  readonly plural: string;
  readonly kind: string;
  readonly namespaced: boolean;
}

/** A change to the store. */
export interface StoreChange {
  readonly type: 'upsert' | 'delete';
  readonly key: string;
  readonly object: KubeObject;
}

/** Informer options. */
export interface InformerOptions {
  /** First reconnect delay (default 200 ms); doubles up to `maxBackoffMs` (default 10 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Server-side watch timeout (default 300 s); the watch is then renewed from the last version. */
  watchTimeoutSeconds?: number;
}

/** `/api/v1` or `/apis/<group>/<version>` for a kind. */
export function apiBase(k: ResourceKind): string {
  return k.group === '' ? `/api/${k.version}` : `/apis/${k.group}/${k.version}`;
}

/** Store key of an object: `<namespace>/<name>`, or `<name>` for cluster-scoped kinds. */
export function objectKey(o: KubeObject): string {
  const ns = o.metadata?.namespace;
  return ns ? `${ns}/${o.metadata?.name ?? ''}` : (o.metadata?.name ?? '');
}

class Gone extends Error {}

/** Watches one kind across all namespaces. Events: `change` (StoreChange), `synced`. */
export class Informer extends EventEmitter {
  private readonly store = new Map<string, KubeObject>();
  private resourceVersion = '';
  private running = false;
  private abort: AbortController | undefined;
  private hasSynced = false;
  private readonly apiVersion: string;
  /** Counters for metrics and tests. */
  readonly stats = { lists: 0, watches: 0, relistsOnGone: 0, errors: 0 };

  constructor(
    private readonly client: KubeClient,
    readonly kind: ResourceKind,
    private readonly opts: InformerOptions = {},
  ) {
    super();
    this.apiVersion = kind.group === '' ? kind.version : `${kind.group}/${kind.version}`;
  }

  /**
   * The apiVersion an object was written at. CRDs with several versions and conversion `None`
   * store every object as written and relabel it with the version it is read at, and the versions
   * of an SMI kind differ in shape; the last writer's entry in `managedFields` keeps the version
   * the user wrote, so Weft reads the object as that version. Other kinds keep the watched version.
   */
  private versionOf(o: KubeObject): string {
    if (this.kind.group === '') return this.apiVersion;
    const fields = (
      o.metadata as { managedFields?: { apiVersion?: string; time?: string; subresource?: string }[] }
    )?.managedFields;
    let best: { apiVersion?: string; time?: string } | undefined;
    for (const f of fields ?? []) {
      if (f.subresource || !f.apiVersion?.startsWith(`${this.kind.group}/`)) continue;
      if (!best || (f.time ?? '') >= (best.time ?? '')) best = f;
    }
    return best?.apiVersion ?? this.apiVersion;
  }

  /** True once the first list has completed. */
  get synced(): boolean {
    return this.hasSynced;
  }

  /** Every object in the store, sorted by key. */
  list(): KubeObject[] {
    return [...this.store.keys()].sort().map((k) => this.store.get(k)!);
  }

  /** The object at `key` (`<namespace>/<name>`, or `<name>` when cluster-scoped). */
  get(key: string): KubeObject | undefined {
    return this.store.get(key);
  }

  /** Resolves when the first list has completed. */
  whenSynced(): Promise<void> {
    if (this.hasSynced) return Promise.resolve();
    return new Promise((resolve) => this.once('synced', () => resolve()));
  }

  /** Starts the list/watch loop. */
  start(): void {
    if (this.running) return;
    this.running = true;
    void this.loop();
  }

  /** Stops watching. */
  stop(): void {
    this.running = false;
    this.abort?.abort();
  }

  private async loop(): Promise<void> {
    const initial = this.opts.initialBackoffMs ?? 200;
    const max = this.opts.maxBackoffMs ?? 10_000;
    let backoff = initial;
    while (this.running) {
      try {
        if (this.resourceVersion === '') await this.relist();
        await this.watchOnce();
        backoff = initial;
      } catch (err) {
        if (!this.running) break;
        if (err instanceof Gone) {
          this.stats.relistsOnGone++;
          log.info('watch expired (410 Gone); relisting', { kind: this.kind.kind });
          this.resourceVersion = '';
          continue;
        }
        this.stats.errors++;
        if (err instanceof KubeApiError && err.status === 404) {
          if (!this.hasSynced) this.markSynced();
          log.debug('kind not served by the API server (is its CRD installed?); retrying', {
            kind: `${this.kind.kind}.${this.apiVersion}`,
          });
          this.resourceVersion = '';
        } else {
          log.warn('watch failed; reconnecting', {
            kind: this.kind.kind,
            error: err instanceof Error ? err.message : String(err),
            retryMs: backoff,
          });
        }
        await new Promise((r) => setTimeout(r, backoff));
        backoff = Math.min(max, backoff * 2);
      }
    }
  }

  private path(extra: string): string {
    return `${apiBase(this.kind)}/${this.kind.plural}?${extra}`;
  }

  private async relist(): Promise<void> {
    this.stats.lists++;
    const fresh = new Map<string, KubeObject>();
    let cont = '';
    let rv = '';
    do {
      const page = await this.client.request<{
        items?: KubeObject[];
        metadata?: { resourceVersion?: string; continue?: string };
      }>('GET', this.path(`limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`));
      for (const item of page.items ?? []) {
        // List items carry no apiVersion/kind; restore them so objects look as users wrote them.
        const obj: KubeObject = { ...item, apiVersion: this.versionOf(item), kind: this.kind.kind };
        fresh.set(objectKey(obj), obj);
      }
      rv = page.metadata?.resourceVersion ?? rv;
      cont = page.metadata?.continue ?? '';
    } while (cont);
    for (const [key, old] of this.store) {
      if (!fresh.has(key)) {
        this.store.delete(key);
        this.emit('change', { type: 'delete', key, object: old } satisfies StoreChange);
      }
    }
    for (const [key, obj] of fresh) {
      const old = this.store.get(key);
      if (old?.metadata?.resourceVersion === obj.metadata?.resourceVersion) continue;
      this.store.set(key, obj);
      this.emit('change', { type: 'upsert', key, object: obj } satisfies StoreChange);
    }
    this.resourceVersion = rv;
    if (!this.hasSynced) this.markSynced();
  }

  private markSynced(): void {
    this.hasSynced = true;
    this.emit('synced');
  }

  private async watchOnce(): Promise<void> {
    this.stats.watches++;
    this.abort = new AbortController();
    const timeout = this.opts.watchTimeoutSeconds ?? 300;
    let gone = false;
    await this.client
      .watch(
        this.path(
          `watch=1&allowWatchBookmarks=true&timeoutSeconds=${timeout}&resourceVersion=${encodeURIComponent(this.resourceVersion)}`,
        ),
        (e: WatchEvent) => {
          if (e.type === 'ERROR') {
            if (e.object.code === 410) gone = true;
            else log.warn('watch error event', { kind: this.kind.kind, message: e.object.message });
            this.abort?.abort();
            return;
          }
          const rv = e.object.metadata?.resourceVersion;
          if (rv) this.resourceVersion = rv;
          if (e.type === 'BOOKMARK') return;
          const obj: KubeObject = { ...e.object, apiVersion: this.versionOf(e.object), kind: this.kind.kind };
          const key = objectKey(obj);
          if (e.type === 'DELETED') {
            this.store.delete(key);
            this.emit('change', { type: 'delete', key, object: obj } satisfies StoreChange);
          } else {
            this.store.set(key, obj);
            this.emit('change', { type: 'upsert', key, object: obj } satisfies StoreChange);
          }
        },
        this.abort.signal,
      )
      .catch((err: unknown) => {
        // An abort we caused (410 or stop) is not a failure.
        if (!(gone || !this.running)) throw err;
      });
    if (gone) throw new Gone();
  }
}
