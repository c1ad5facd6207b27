/**
 * SDS secrets on the ADS stream: a snapshot cache that adds each Envoy-flavor group's identity
 * secrets ({@link WorkloadSecrets}) to the snapshots the compiler stores. Translation stays pure
 * (it only names the secrets); the certificate and key, which need the CA and a clock, are joined
 * here, at the last step before serving.
 *
 * - A group's identity comes from `identityOfGroup` (the compiler's model); groups without one
 *   (the gRPC flavor, whose certificates come from the agent) pass through unchanged.
 * - A snapshot whose identity has no certificate yet is held back until the CA issued it, so an
 *   Envoy never sees listeners whose secrets it cannot get. If the CA cannot sign, the group
 *   keeps its previous snapshot (with its still valid certificate) and issuing is retried.
 * - Renewals and trust bundle changes re-publish just the groups of the identities that moved.
 */
import { type Logger, logger } from '../log';
import { SnapshotCache } from '../xds/cache/cache';
import { type JsonObject, type ResourceEncoder, Snapshot } from '../xds/cache/snapshot';
import { SECRET } from '../xds/resource-types';
import type { WorkloadSecrets } from './sds';
import { messageOf } from './x509';

const log: Logger = logger('identity');

/** Options of {@link SecretSnapshotCache}. */
export interface SecretSnapshotCacheOptions {
  secrets: WorkloadSecrets;
  encoder: ResourceEncoder;
  /** The SPIFFE ID whose secrets a group gets, or undefined for groups that get none. */
  identityOfGroup: (group: string) => string | undefined;
  /** Delay before retrying a failed first issue (default 2 s). */
  retryMs?: number;
}

interface Held {
  /** The snapshot as the compiler made it, without identity secrets. */
  readonly base: Snapshot;
  readonly identity: string;
}

/** A {@link SnapshotCache} that adds SDS secrets to the groups of Envoy proxies. */
export class SecretSnapshotCache extends SnapshotCache {
  private readonly held = new Map<string, Held>();
  private readonly retries = new Map<string, NodeJS.Timeout>();
  private readonly onChange = (ids: string[]): void => this.republish(new Set(ids));
  private closed = false;

  constructor(private readonly o: SecretSnapshotCacheOptions) {
    super();
    o.secrets.on('change', this.onChange);
  }

  /**
   * Stores the compiler's snapshot; for a group with an identity the stored (and served)
   * snapshot also carries that identity's secrets. Returns true when what is served changed or
   * will change once the certificate is issued.
   */
  override set(group: string, snapshot: Snapshot): boolean {
    const identity = this.o.identityOfGroup(group);
    if (identity === undefined) {
      this.held.delete(group);
      return super.set(group, snapshot);
    }
    const previous = this.held.get(group);
    this.held.set(group, { base: snapshot, identity });
    if (previous && previous.base.version === snapshot.version && previous.identity === identity)
      return false;
    return this.publish(group);
  }

  override delete(group: string): void {
    this.held.delete(group);
    super.delete(group);
  }

  /** Stops listening for renewals and retries. */
  close(): void {
    this.closed = true;
    this.o.secrets.off('change', this.onChange);
    for (const t of this.retries.values()) clearTimeout(t);
    this.retries.clear();
  }

  private publish(group: string): boolean {
    const h = this.held.get(group);
    if (!h || this.closed) return false;
    const secrets = this.o.secrets.current(h.identity);
    if (secrets) return super.set(group, this.withSecrets(h.base, secrets));
    this.o.secrets.secretsFor(h.identity).then(
      () => {
        this.publish(group);
      },
      (err: unknown) => {
        log.error(
          'cannot issue the certificate of a proxy group; it keeps what it was last sent and Weft retries',
          { group, identity: h.identity, error: messageOf(err) },
        );
        this.retryLater(group);
      },
    );
    return true;
  }

  private retryLater(group: string): void {
    if (this.closed || this.retries.has(group)) return;
    const t = setTimeout(() => {
      this.retries.delete(group);
      this.publish(group);
    }, this.o.retryMs ?? 2000);
    t.unref();
    this.retries.set(group, t);
  }

  private republish(ids: ReadonlySet<string>): void {
    for (const [group, h] of this.held) if (ids.has(h.identity)) this.publish(group);
  }

  private withSecrets(base: Snapshot, secrets: readonly JsonObject[]): Snapshot {
    const ours = new Set(secrets.map((s) => s.name));
    const kept = [...base.of(SECRET).resources.values()].filter((r) => !ours.has(r.name)).map((r) => r.json);
    const type = this.o.encoder.snapshot({ [SECRET]: [...kept, ...secrets] }).of(SECRET);
    return new Snapshot({ ...base.types, [SECRET]: type });
  }
}
