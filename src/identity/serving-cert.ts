/**
 * A serving certificate of the mesh CA kept fresh for a server the API server calls (the webhook,
 * the TrafficMetrics aggregated API): renewed at two thirds of its life (`renewAt`), re-issued at
 * once when the CA changes, and put into service by the owner's `apply` (a TLS server's
 * `setSecureContext`), so new handshakes get it without a restart. A failed renewal is logged and
 * retried every 30 s while the current certificate still serves.
 */
import { logger } from '../log';
import type { CertificateAuthority, IssuedKeyPair } from './ca';
import { messageOf } from './x509';

const log = logger('identity');

/** Options of {@link ServingCertificate}. */
export interface ServingCertificateOptions {
  ca: CertificateAuthority;
  /** Issues a new key and certificate (for the names the server is reached by). */
  issue: () => Promise<IssuedKeyPair>;
  /** Puts a renewed pair into service. */
  apply: (pair: IssuedKeyPair) => void;
  /** Runs after a CA change, besides re-issuing (to rewrite a caBundle, say). */
  onCaChange?: () => void;
  /** What the certificate serves, for the log (`the injector`). */
  what: string;
}

/** See the module comment. Takes the first pair (issued by the owner to start its server). */
export class ServingCertificate {
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly onCaChange = (): void => {
    this.renew();
    this.o.onCaChange?.();
  };

  constructor(
    private readonly o: ServingCertificateOptions,
    private pair: IssuedKeyPair,
  ) {
    this.schedule();
    o.ca.on('change', this.onCaChange);
  }

  /** The pair presented now. */
  get current(): IssuedKeyPair {
    return this.pair;
  }

  /** Stops renewing. */
  stop(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.o.ca.off('change', this.onCaChange);
  }

  private schedule(): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    const at = this.pair.renewAt.getTime();
    this.timer = setTimeout(() => this.renew(), Math.max(1000, Math.min(at - Date.now(), 2 ** 31 - 1)));
    this.timer.unref();
  }

  private renew(): void {
    if (this.closed) return;
    this.o.issue().then(
      (next) => {
        if (this.closed) return;
        this.pair = next;
        this.o.apply(next);
        this.schedule();
      },
      (err: unknown) => {
        log.error(`cannot renew the certificate of ${this.o.what}; the current one serves until it expires`, {
          expires: this.pair.notAfter.toISOString(),
          error: messageOf(err),
        });
        this.timer = setTimeout(() => this.renew(), 30_000);
        this.timer.unref();
      },
    );
  }
}
