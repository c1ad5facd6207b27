/**
 * Leader election on a `coordination.k8s.io/v1` Lease. Every replica serves xDS from its own
 * informers; only the leader writes Events and status, so users see each report once. Updates
 * use the Lease's resourceVersion, so two replicas can never both believe they won.
 */
import { EventEmitter } from 'node:events';
import { type Logger, logger } from '../log';
import { KubeApiError, type KubeClient, type KubeObject } from './client';

const log: Logger = logger('leader');

/** Name of the Lease the replicas campaign for, in the mesh namespace. */
export const LEADER_LEASE = 'weft-leader';

/** Options of {@link LeaderElector}. */
export interface LeaderOptions {
  namespace: string;
  /** Lease name (default `weft-leader`). */
  name?: string;
  /** This replica's identity (pod name). */
  identity: string;
  /** Seconds a lease is valid without renewal (default 15). */
  leaseSeconds?: number;
  /** How often to try to acquire or renew, in ms (default 2,000). */
  retryMs?: number;
  /** Clock, replaceable in tests of expiry. */
  now?: () => Date;
}

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** Micro-time format the Lease API expects. */
function microTime(d: Date): string {
  return d.toISOString().replace('Z', '000Z');
}

/** Campaigns for a Lease; events `leading` and `stopped-leading`. */
export class LeaderElector extends EventEmitter {
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = false;
  private readonly name: string;
  private readonly leaseSeconds: number;
  private readonly now: () => Date;

  constructor(
    private readonly client: KubeClient,
    private readonly o: LeaderOptions,
  ) {
    super();
    this.name = o.name ?? LEADER_LEASE;
    this.leaseSeconds = o.leaseSeconds ?? 15;
    this.now = o.now ?? (() => new Date());
  }

  /** True while this replica holds the lease. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Starts campaigning. */
  start(): void {
    const tick = (): void => {
      if (this.stopped) return;
      this.tryOnce()
        .catch((err: unknown) => {
          log.warn('lease update failed', { error: err instanceof Error ? err.message : String(err) });
          this.setLeading(false);
        })
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.o.retryMs ?? 2000);
        });
    };
    tick();
  }

  /** Stops campaigning and releases the lease if held, so another replica takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.leading) {
      try {
        const lease = await this.get();
        if (lease?.spec?.holderIdentity === this.o.identity) {
          await this.client.request('PUT', this.path(), {
            ...lease,
            spec: { ...lease.spec, holderIdentity: '', renewTime: microTime(new Date(0)) },
          });
        }
      } catch {
        // Releasing is a courtesy; the lease expires on its own.
      }
    }
    this.setLeading(false);
  }

  private path(): string {
    return `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases/${this.name}`;
  }

  private async get(): Promise<Lease | undefined> {
    try {
      return await this.client.request<Lease>('GET', this.path());
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** One acquire-or-renew attempt. */
  async tryOnce(): Promise<boolean> {
    const now = this.now();
    const lease = await this.get();
    if (!lease) {
      try {
        await this.client.request(
          'POST',
          `/apis/coordination.k8s.io/v1/namespaces/${this.o.namespace}/leases`,
          {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name: this.name, namespace: this.o.namespace },
            spec: {
              holderIdentity: this.o.identity,
              leaseDurationSeconds: this.leaseSeconds,
              acquireTime: microTime(now),
              renewTime: microTime(now),
              leaseTransitions: 0,
            },
          },
        );
        this.setLeading(true);
        return true;
      } catch (err) {
        if (err instanceof KubeApiError && err.status === 409) return this.setLeading(false);
        throw err;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? this.leaseSeconds) * 1000 < now.getTime();
    if (holder !== this.o.identity && holder !== '' && !expired) return this.setLeading(false);
    const takeover = holder !== this.o.identity;
    try {
      await this.client.request('PUT', this.path(), {
        ...lease,
        spec: {
          ...spec,
          holderIdentity: this.o.identity,
          leaseDurationSeconds: this.leaseSeconds,
          renewTime: microTime(now),
          ...(takeover
            ? { acquireTime: microTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 }
            : {}),
        },
      });
      return this.setLeading(true);
    } catch (err) {
      // 409: another replica updated the lease first; it won this round.
      if (err instanceof KubeApiError && err.status === 409) return this.setLeading(false);
      throw err;
    }
  }

  private setLeading(v: boolean): boolean {
    if (v !== this.leading) {
      this.leading = v;
      log.info(v ? 'became leader' : 'not the leader', { identity: this.o.identity });
      this.emit(v ? 'leading' : 'stopped-leading');
    }
    return v;
  }
}
