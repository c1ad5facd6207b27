/**
 * Kubernetes mode: Weft's inputs from an API server's informers, compiled in batches into the
 * xDS snapshots, with conditions reported back to the cluster by the elected leader.
 *
 * Every replica keeps its own informers and serves xDS from them, so proxies can connect to any
 * replica; only the leader (a Lease) writes Events on SMI objects and status on Weft's own kinds,
 * so each report reaches the cluster once.
 */
import type { Metrics } from '../admin/metrics';
import { LastGoodObjects } from '../inputs/last-good';
import { type Logger, logger } from '../log';
import type { MeshCompiler } from '../mesh/compiler';
import { afterCompile, rollBackPatchesOnNack } from '../mesh/wiring';
import type { Condition } from '../smi/model';
import type { AdsServer } from '../xds/server/ads-server';
import type { KubeClient, KubeObject } from './client';
import { EventWriter } from './events';
import { LeaderElector } from './leader';
import { KubeSource } from './source';
import { STATUS_KINDS, StatusWriter } from './status';

const log: Logger = logger('kube');

/** Options of {@link KubeController}. */
export interface KubeControllerOptions {
  client: KubeClient;
  compiler: MeshCompiler;
  server: AdsServer;
  metrics: Metrics;
  /** Namespace of Weft itself: MeshConfig, mesh-wide patches and the leader Lease. */
  meshNamespace: string;
  /** This replica's name (its pod name in a cluster), the Lease holder identity. */
  replica: string;
  /** Batching of changes: quiet window and longest wait, in ms (default 100 and 1,000). */
  quietMs?: number;
  maxDelayMs?: number;
  /** Lease duration in seconds and retry period in ms (default 15 s and 2 s). */
  leaseSeconds?: number;
  leaseRetryMs?: number;
  /** Informer reconnect backoff bounds in ms. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * More work only the leader does after each compile and on gaining the Lease (e.g. publishing
   * the trust bundle), given the objects just compiled; `takeover` is true on the first run after gaining the Lease.
   */
  leaderTasks?: readonly ((objects: readonly KubeObject[], takeover: boolean) => Promise<void>)[];
}

/** Runs the informers, the compile loop and the leader's reporting. */
export class KubeController {
  readonly source: KubeSource;
  readonly leader: LeaderElector;
  readonly events: EventWriter;
  readonly status: StatusWriter;
  /** Compiles run so far (batching keeps this far below the number of changes). */
  compiles = 0;
  private compiledOnce = false;
  private conditions: readonly Condition[] = [];
  private waiters: (() => void)[] = [];
  private reporting: Promise<void> = Promise.resolve();
  private takeover = false;
  /** Per object, its last version that matched its schema (an edit that breaks it is refused). */
  private readonly objectsKept = new LastGoodObjects();

  constructor(private readonly o: KubeControllerOptions) {
    this.source = new KubeSource(o.client, {
      meshNamespace: o.meshNamespace,
      quietMs: o.quietMs,
      maxDelayMs: o.maxDelayMs,
      initialBackoffMs: o.initialBackoffMs,
      maxBackoffMs: o.maxBackoffMs,
    });
    this.leader = new LeaderElector(o.client, {
      namespace: o.meshNamespace,
      identity: o.replica,
      leaseSeconds: o.leaseSeconds,
      retryMs: o.leaseRetryMs,
    });
    this.events = new EventWriter(o.client);
    this.status = new StatusWriter(o.client);
    this.source.on('batch', () => {
      void this.compile().catch((err: unknown) => {
        // Whatever the inputs hold, serving goes on: proxies keep the snapshots they have.
        log.error('compiling the cluster inputs failed; proxies keep their last config', {
          error: err instanceof Error ? err.message : String(err),
        });
      });
    });
    this.leader.on('leading', () => {
      log.info('leading: this replica writes Events and status', { replica: o.replica });
      o.metrics.set('weft_leader', 'Whether this replica is the leader.', 1);
      this.takeover = true;
      this.report();
    });
    this.leader.on('stopped-leading', () => {
      log.info('no longer leading', { replica: o.replica });
      o.metrics.set('weft_leader', 'Whether this replica is the leader.', 0);
    });
    rollBackPatchesOnNack(o.server, o.compiler);
    // Envoy's judgement of a patched set lands after the compile that asked for it: report it.
    o.compiler.onJudged(() => {
      this.conditions = o.compiler.currentConditions;
      this.report();
    });
    // ACKs change EnvoyPatch `Programmed`; report them shortly after they settle.
    let ackTimer: NodeJS.Timeout | undefined;
    o.server.registry.on('ack', () => {
      if (ackTimer || !this.leader.isLeader) return;
      ackTimer = setTimeout(() => {
        ackTimer = undefined;
        this.report();
      }, 200);
      ackTimer.unref();
    });
  }

  /**
   * `Programmed` for every EnvoyPatch applied somewhere: True once every connected proxy of the
   * groups carrying it has ACKed what it was sent; False while some have not. A NACK is reported by
   * the compiler (`RolledBack`, with the proxy's error), which this leaves alone.
   */
  programmed(): Condition[] {
    const out: Condition[] = [];
    const rolledBack = new Set(
      this.conditions.filter((c) => c.type === 'Programmed' && c.status === 'False').map((c) => c.object),
    );
    const patches = this.source.informers.find((i) => i.kind.kind === 'EnvoyPatch')?.list() ?? [];
    const proxies = this.o.server.registry.proxies();
    for (const p of patches) {
      const id = `${p.metadata?.namespace}/${p.metadata?.name}`;
      const object = `EnvoyPatch/${id}`;
      if (rolledBack.has(object)) continue;
      const groups = new Set(this.o.compiler.groupsPatchedBy(id));
      if (groups.size === 0) continue;
      const mine = proxies.filter((x) => x.group !== undefined && groups.has(x.group));
      const acked = mine.filter((x) =>
        Object.values(x.types).every((t) => !t.awaiting && t.sentVersion === t.ackedVersion),
      );
      const done = mine.length > 0 && acked.length === mine.length;
      out.push({
        object,
        type: 'Programmed',
        status: done ? 'True' : 'False',
        severity: 'Warning',
        reason: done ? 'Acked' : 'Pending',
        message: done
          ? `EnvoyPatch ${id} is ACKed by all ${mine.length} connected proxies it applies to`
          : `EnvoyPatch ${id} is ACKed by ${acked.length} of ${mine.length} connected proxies it applies to so far`,
      });
    }
    return out;
  }

  /** Starts watching; resolves after every informer has listed and the first compile ran. */
  async start(): Promise<void> {
    this.o.metrics.set('weft_leader', 'Whether this replica is the leader.', 0);
    this.leader.start();
    await this.source.start();
    await this.compile();
  }

  /** True once every informer has synced and the first snapshots exist. */
  get ready(): boolean {
    return this.compiledOnce;
  }

  /** Why not ready yet, for `/readyz`. */
  notReadyReason(): string {
    const waiting = this.source.unsynced();
    return waiting.length > 0 ? `informers not synced: ${waiting.join(', ')}` : 'first compile pending';
  }

  /** Current conditions of the mesh. */
  currentConditions(): readonly Condition[] {
    return [...this.conditions, ...this.programmed()];
  }

  /** Resolves after the next compile (and, on the leader, its reporting) finishes. */
  nextCompile(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  /** Stops informers and leadership (releasing the Lease so another replica takes over at once). */
  async stop(): Promise<void> {
    this.source.stop();
    await this.leader.stop();
    await this.reporting;
  }

  private async compile(): Promise<void> {
    const objects = this.source.objects();
    // The API server checks an SMI object only against its CRD's loose schema; one Weft refuses
    // (a weight beyond any integer it can serve) keeps its last good version serving, as in
    // folder mode, instead of dropping out of the mesh.
    const kept = this.objectsKept.apply(objects);
    // In slices, one proxy group per turn of the event loop, so xDS and admin keep answering
    // during a big compile; the compiler queues overlapping calls, so results land in order.
    const r = await this.o.compiler.updateInSlices(kept.objects, kept.conditions);
    this.compiles++;
    this.conditions = r.conditions;
    this.compiledOnce = true;
    afterCompile(this.o.metrics, this.o.server, r, objects.length);
    this.report();
    const w = this.waiters;
    this.waiters = [];
    void this.reporting.then(() => {
      for (const f of w) f();
    });
  }

  /** Runs the leader's reporting again (e.g. when the trust bundle changed); no-op on followers. */
  refreshLeaderWork(): void {
    this.report();
  }

  /** Leader only: Events for conditions on SMI and core objects, status on Weft's own kinds. */
  private report(): void {
    if (!this.leader.isLeader || !this.compiledOnce) return;
    this.reporting = this.reporting.then(async () => {
      const conditions = [...this.conditions, ...this.programmed()];
      const own: KubeObject[] = [];
      for (const kind of Object.keys(STATUS_KINDS)) {
        const inf = this.source.informers.find((i) => i.kind.kind === kind);
        if (inf) own.push(...inf.list());
      }
      await this.status.publish(own, conditions);
      await this.events.publish(
        conditions.filter((c) => !(c.object.split('/')[0]! in STATUS_KINDS)),
        (kind, ns, name) => this.source.get(kind, ns, name),
      );
      const takeover = this.takeover;
      this.takeover = false;
      const objects = this.source.objects();
      for (const task of this.o.leaderTasks ?? []) await task(objects, takeover);
      this.o.metrics.set('weft_events_written', 'Events written by this replica.', this.events.created);
      this.o.metrics.set('weft_status_writes', 'Status writes by this replica.', this.status.writes);
    });
  }
}
