/**
 * The certificate endpoint: a workload's agent sends a CSR for a key it made itself, with a
 * bearer token; Weft asks its {@link TokenReviewer} which identities the token entitles and signs
 * the CSR's key for that identity. Private keys never cross the wire.
 *
 * It is a small gRPC service with JSON messages (one request, one response per call):
 * - `/weft.identity.v1.Certificates/Sign`: `{csr, identity?}` to
 *   `{identity, certificateChain, trustBundle, notBefore, notAfter}`. `identity` may be left out
 *   when the token entitles exactly one. Only the CSR's public key is used; its subject and SANs
 *   are ignored.
 * - `/weft.identity.v1.Certificates/TrustBundle`: `{}` to `{trustBundle, signer}` (also needs a
 *   token); `signer` is the fingerprint of the root signing now.
 * The token travels in the `authorization: Bearer <token>` header.
 *
 * The endpoint is served over TLS with Weft's serving certificate but without asking for client
 * certificates (callers have none yet), on its own port: the xDS port requires a mesh certificate
 * at the handshake. It is never served in plaintext: a token is a secret.
 */
import {
  Client,
  type handleUnaryCall,
  Metadata,
  Server,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { z } from 'zod';
import { type Logger, logger } from '../log';
import type { CertificateAuthority } from './ca';
import { SpiffeIdError } from './spiffe';
import { controlPlaneChannelCredentials, type ServingIdentity, serverOnlyCredentials } from './tls';
import type { TokenReviewer } from './tokens';
import { fingerprint, messageOf, X509Error } from './x509';

const log: Logger = logger('identity');

const SERVICE = 'weft.identity.v1.Certificates';
/** Largest request accepted: a CSR is well under 2 KiB. */
const MAX_REQUEST_BYTES = 64 * 1024;

/** A signing request. */
export interface SignRequest {
  /** PEM PKCS#10 CSR for the workload's key. */
  csr: string;
  /** The identity wanted (SPIFFE ID or `<ns>/<sa>`); optional when the token entitles one. */
  identity?: string;
}

/** A signing response. */
export interface SignResponse {
  identity: string;
  /** PEM chain, leaf first. */
  certificateChain: string;
  /** PEM roots to trust now. */
  trustBundle: string;
  notBefore: string;
  notAfter: string;
}

/** A trust bundle response. */
export interface BundleResponse {
  trustBundle: string;
  /**
   * SHA-256 fingerprint (hex) of the root signing now. An agent whose certificate comes from
   * another root renews at once: after a rotation's activation, that moves every workload to the
   * new root within one bundle refresh. Absent from older servers.
   */
  signer?: string;
}

const signSchema = z
  .object({
    csr: z
      .string()
      .min(1)
      .max(16 * 1024),
    identity: z.string().min(1).optional(),
  })
  .strict();

const toBytes = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
function fromBytes(b: Buffer): unknown {
  return JSON.parse(b.toString('utf8') || '{}');
}

function method(name: string): ServiceDefinition[string] {
  return {
    path: `/${SERVICE}/${name}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: toBytes,
    requestDeserialize: fromBytes,
    responseSerialize: toBytes,
    responseDeserialize: fromBytes,
  };
}

/** The service definition (JSON messages). */
export const certificatesServiceDefinition: ServiceDefinition = {
  Sign: method('Sign'),
  TrustBundle: method('TrustBundle'),
};

/** Counters of the endpoint. */
export interface SigningStats {
  signed: number;
  denied: number;
  failed: number;
}

function fail(code: status, details: string): Partial<ServiceError> {
  return { code, details, message: details, name: 'Error' };
}

function bearer(md: Metadata): string | undefined {
  const v = md.get('authorization')[0];
  if (typeof v !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(v);
  return m?.[1];
}

type Caller =
  | { readonly ok: true; readonly user: string; readonly identities: readonly string[] }
  | { readonly ok: false; readonly error: Partial<ServiceError> };

/** Options of {@link CertificateService}. */
export interface CertificateServiceOptions {
  ca: CertificateAuthority;
  reviewer: TokenReviewer;
  /** Lifetime of certificates issued here (default: the CA's). */
  ttlMs?: number;
}

/** The certificate endpoint's handlers; add them to a gRPC server with {@link addTo}. */
export class CertificateService {
  readonly stats: SigningStats = { signed: 0, denied: 0, failed: 0 };

  constructor(private readonly o: CertificateServiceOptions) {}

  /** Adds the service to `server`. */
  addTo(server: Server): void {
    const sign: handleUnaryCall<unknown, SignResponse> = (call, cb) => {
      this.sign(call, cb).catch((err: unknown) => cb(fail(status.INTERNAL, messageOf(err))));
    };
    const bundle: handleUnaryCall<unknown, BundleResponse> = (call, cb) => {
      this.bundle(call, cb).catch((err: unknown) => cb(fail(status.INTERNAL, messageOf(err))));
    };
    server.addService(certificatesServiceDefinition, { Sign: sign, TrustBundle: bundle });
  }

  private async authenticate(call: ServerUnaryCall<unknown, unknown>): Promise<Caller> {
    const token = bearer(call.metadata);
    if (!token) {
      // Counted with bad tokens: a caller probing without one is a refusal worth seeing too.
      this.stats.denied++;
      return {
        ok: false,
        error: fail(status.UNAUTHENTICATED, 'missing "authorization: Bearer <token>" header'),
      };
    }
    const review = await this.o.reviewer.review(token);
    if (!review.authenticated) {
      this.stats.denied++;
      log.warn('certificate request with an invalid token refused', {
        peer: call.getPeer(),
        reason: review.reason,
      });
      return { ok: false, error: fail(status.UNAUTHENTICATED, `token refused: ${review.reason}`) };
    }
    return { ok: true, user: review.user, identities: review.identities };
  }

  private async sign(
    call: ServerUnaryCall<unknown, SignResponse>,
    cb: sendUnaryData<SignResponse>,
  ): Promise<void> {
    const who = await this.authenticate(call);
    if (!who.ok) return cb(who.error);
    const req = signSchema.safeParse(call.request);
    if (!req.success) {
      const i = req.error.issues[0]!;
      return cb(fail(status.INVALID_ARGUMENT, `${i.path.join('.') || 'request'}: ${i.message}`));
    }
    let wanted: string;
    try {
      if (req.data.identity !== undefined) {
        wanted = this.o.ca.checkIdentity(req.data.identity);
      } else if (who.identities.length === 1) {
        wanted = who.identities[0]!;
      } else {
        return cb(
          fail(
            status.INVALID_ARGUMENT,
            `the token entitles ${who.identities.length} identities; say which one (identity)`,
          ),
        );
      }
    } catch (err) {
      return cb(fail(status.INVALID_ARGUMENT, `identity: ${messageOf(err)}`));
    }
    if (!who.identities.includes(wanted)) {
      this.stats.denied++;
      log.warn('certificate request for an identity the token does not entitle refused', {
        peer: call.getPeer(),
        user: who.user,
        wanted,
      });
      return cb(fail(status.PERMISSION_DENIED, `this token does not entitle ${wanted}`));
    }
    try {
      const issued = await this.o.ca.issueForCsr(req.data.csr, wanted, this.o.ttlMs);
      this.stats.signed++;
      log.info('workload certificate issued', {
        identity: wanted,
        user: who.user,
        notAfter: issued.notAfter.toISOString(),
      });
      cb(null, {
        identity: issued.identity,
        certificateChain: issued.chainPem,
        trustBundle: this.o.ca.bundlePem(),
        notBefore: issued.notBefore.toISOString(),
        notAfter: issued.notAfter.toISOString(),
      });
    } catch (err) {
      if (err instanceof X509Error || err instanceof SpiffeIdError)
        return cb(fail(status.INVALID_ARGUMENT, messageOf(err)));
      this.stats.failed++;
      log.error('cannot sign a workload certificate', { identity: wanted, error: messageOf(err) });
      cb(fail(status.UNAVAILABLE, `the CA cannot sign now: ${messageOf(err)}`));
    }
  }

  private async bundle(
    call: ServerUnaryCall<unknown, BundleResponse>,
    cb: sendUnaryData<BundleResponse>,
  ): Promise<void> {
    const who = await this.authenticate(call);
    if (!who.ok) return cb(who.error);
    const signer = signerOf(this.o.ca);
    cb(null, { trustBundle: this.o.ca.bundlePem(), ...(signer ? { signer } : {}) });
  }
}

/** The fingerprint of the root `ca` signs with now, if any root can sign. */
function signerOf(ca: CertificateAuthority): string | undefined {
  try {
    return fingerprint(ca.signer().certificate);
  } catch {
    return undefined;
  }
}

/** A running certificate endpoint. */
export interface CertificateServer {
  readonly port: number;
  readonly service: CertificateService;
  stop(): Promise<void>;
}

/** Serves the certificate endpoint on `address` over server-side TLS with `serving`'s certificate. */
export async function startCertificateServer(
  o: CertificateServiceOptions & { address: string; serving: ServingIdentity },
): Promise<CertificateServer> {
  const server = new Server({ 'grpc.max_receive_message_length': MAX_REQUEST_BYTES });
  const service = new CertificateService(o);
  service.addTo(server);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(o.address, serverOnlyCredentials(o.serving), (err, p) => {
      if (!err) return resolve(p);
      server.forceShutdown();
      reject(err);
    }),
  );
  log.info('certificate endpoint listening', { address: o.address, port });
  return {
    port,
    service,
    stop: () =>
      new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(t);
          resolve();
        });
      }),
  };
}

/** Options of {@link CertificateClient}. */
export interface CertificateClientOptions {
  /** `host:port` of the certificate endpoint. */
  target: string;
  /** PEM roots to trust for the server. */
  bundlePem: string;
  /** The SPIFFE ID the server must present. */
  serverIdentity: string;
  /** The bearer token. */
  token: string;
  /** Per-call deadline (default 10 s). */
  timeoutMs?: number;
}

/** A one-shot client of the certificate endpoint (made per use so it always trusts the newest bundle). */
export class CertificateClient {
  private readonly client: Client;

  constructor(private readonly o: CertificateClientOptions) {
    this.client = new Client(
      o.target,
      controlPlaneChannelCredentials({ bundlePem: o.bundlePem, serverIdentity: o.serverIdentity }),
      { 'grpc.use_local_subchannel_pool': 1 },
    );
  }

  private call<T>(name: string, body: unknown): Promise<T> {
    const md = new Metadata();
    md.set('authorization', `Bearer ${this.o.token}`);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/${SERVICE}/${name}`,
        toBytes,
        (b: Buffer) => fromBytes(b) as T,
        body,
        md,
        { deadline: Date.now() + (this.o.timeoutMs ?? 10_000) },
        (err: ServiceError | null, value?: T) => (err || value === undefined ? reject(err) : resolve(value)),
      );
    });
  }

  /** Asks for a certificate for the CSR's key. */
  sign(req: SignRequest): Promise<SignResponse> {
    return this.call<SignResponse>('Sign', req);
  }

  /** Fetches the current trust bundle. */
  trustBundle(): Promise<BundleResponse> {
    return this.call<BundleResponse>('TrustBundle', {});
  }

  close(): void {
    this.client.close();
  }
}
