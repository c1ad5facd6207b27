/**
 * The snapshot cache: the latest immutable {@link Snapshot} of every proxy group, and the streams
 * watching each group. Setting a snapshot whose version equals the current one notifies nobody,
 * so recompiling unchanged inputs sends nothing to any proxy.
 */
import type { Snapshot } from './snapshot';

/** Called with the group's new snapshot whenever it changes. */
export type SnapshotWatcher = (snapshot: Snapshot) => void;

/** Latest snapshot per proxy group, with change notification. */
export class SnapshotCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly watchers = new Map<string, Set<SnapshotWatcher>>();

  /**
   * Stores `snapshot` as the group's current one and notifies its watchers. Returns false (and
   * notifies nobody) when the group already has a snapshot with the same version.
   */
  set(group: string, snapshot: Snapshot): boolean {
    const current = this.snapshots.get(group);
    if (current && current.version === snapshot.version) return false;
    this.snapshots.set(group, snapshot);
    for (const w of this.watchers.get(group) ?? []) w(snapshot);
    return true;
  }

  /** The group's current snapshot, if any. */
  get(group: string): Snapshot | undefined {
    return this.snapshots.get(group);
  }

  /** Forgets a group; its watchers stay registered and get the next snapshot set for it. */
  delete(group: string): void {
    this.snapshots.delete(group);
  }

  /** Every group that has a snapshot, sorted. */
  groups(): string[] {
    return [...this.snapshots.keys()].sort();
  }

  /**
   * Watches a group. The watcher is called at once with the current snapshot when there is one.
   * Returns the function that stops watching.
   */
  watch(group: string, watcher: SnapshotWatcher): () => void {
    let set = this.watchers.get(group);
    if (!set) {
      set = new Set();
      this.watchers.set(group, set);
    }
    set.add(watcher);
    const current = this.snapshots.get(group);
    if (current) watcher(current);
    return () => {
      const s = this.watchers.get(group);
      if (!s) return;
      s.delete(watcher);
      if (s.size === 0) this.watchers.delete(group);
    };
  }

  /** Number of watchers of a group (connected streams). */
  watcherCount(group: string): number {
    return this.watchers.get(group)?.size ?? 0;
  }
}
