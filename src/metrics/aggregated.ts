/**
 * The TrafficMetrics API as a Kubernetes aggregated API server: the API server's aggregation layer
 * forwards `/apis/metrics.smi-spec.io/...` here (the chart's APIServices), and users reach it with
 * their own credentials and RBAC (`kubectl get --raw /apis/metrics.smi-spec.io/v1alpha1/...`).
 *
 * Authentication and authorization are delegated, as aggregated API servers do:
 * - the aggregator proves itself with its front-proxy client certificate, checked against the
 *   request-header CA and allowed names the API server publishes in the ConfigMap
 *   `kube-system/extension-apiserver-authentication`; the user it vouches for is in the
 *   request-header headers it names (`X-Remote-User`, `X-Remote-Group`, `X-Remote-Extra-*`);
 * - a caller that comes directly with a bearer token is checked with a TokenReview;
 * - every read is then authorized with a SubjectAccessReview: verb `get` (one resource, or its
 *   `edges` subresource) or `list`, resource the kind's plural, group `metrics.smi-spec.io`, in the
 *   namespace asked. Discovery (`/apis/metrics.smi-spec.io[/<version>]`) needs authentication only.
 *
 * The serving certificate comes from the mesh CA for `<service>.<namespace>.svc`, the name the
 * aggregator checks, renewed at two thirds of its life and re-issued when the CA changes; Weft
 * writes the CA's bundle into each APIService's `caBundle` (as it does for its webhooks).
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { CertificateAuthority, IssuedKeyPair } from '../identity/ca';
import { ServingCertificate } from '../identity/serving-cert';
import { controlPlaneIdentity, SERVING_TTL_MS } from '../identity/tls';
import { messageOf } from '../identity/x509';
import { KubeApiError, type KubeClient } from '../kube/client';
import { mayAccess, type ReviewedUser, reviewToken } from '../kube/debug-access';
import { logger } from '../log';
import type { MeshModel } from '../smi/model';
import { GROUP, KINDS, VERSIONS } from './api';
import {
  answerWithPeers,
  describeMissing,
  EXPORT_PATH,
  type MetricsPeers,
  MISSING_PEERS_HEADER,
} from './peers';
import type { MetricsStore } from './store';

const log = logger('metrics');

/** The APIService objects Weft keeps the caBundle of, one per served version. */
export const API_SERVICES = VERSIONS.map((v) => `${v}.${GROUP}`);

/** Options of {@link AggregatedApi.start}. */
export interface AggregatedApiOptions {
  /** `host:port` to listen on. */
  address: string;
  ca: CertificateAuthority;
  client: KubeClient;
  /** The Service the APIServices name: the certificate is for `<service>.<namespace>.svc`. */
  namespace?: string;
  service?: string;
  store: MetricsStore;
  model: () => MeshModel | undefined;
  /**
   * The other replicas, asked for their windows before every answer (see peers.ts); without it,
   * answers hold this replica's streams only.
   */
  peers?: MetricsPeers;
  /**
   * The one user (`system:serviceaccount:<weft-namespace>:<weft-sa>`) allowed to read this
   * replica's window at {@link EXPORT_PATH}; without it that path is not served.
   */
  peerUser?: string;
}

/** The request-header settings the API server publishes for aggregated servers. */
export interface RequestHeaderConfig {
  /** CA certificates (PEM) that sign the front proxy's client certificate. */
  caPem: string;
  /** Common names allowed as front proxy; empty: any certificate the CA signed. */
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

/** A caller, once authenticated. */
type User = ReviewedUser & { groups: string[]; extra: Record<string, string[]> };

/** Reads `kube-system/extension-apiserver-authentication`; throws naming the fix. */
export async function readRequestHeaderConfig(client: KubeClient): Promise<RequestHeaderConfig> {
  let cm: { data?: Record<string, string> };
  try {
    cm = await client.request(
      'GET',
      '/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication',
    );
  } catch (err) {
    throw new Error(
      `cannot read ConfigMap kube-system/extension-apiserver-authentication, which says how the API server's aggregation layer authenticates (Weft's ServiceAccount needs the Role extension-apiserver-authentication-reader; the chart binds it): ${messageOf(err)}`,
    );
  }
  const d = cm.data ?? {};
  const list = (k: string): string[] => {
    try {
      const v = JSON.parse(d[k] ?? '[]') as unknown;
      return Array.isArray(v) ? v.map(String) : [];
    } catch {
      return [];
    }
  };
  const caPem = d['requestheader-client-ca-file'] ?? '';
  if (!caPem)
    throw new Error(
      'the API server publishes no requestheader-client-ca-file: start it with --requestheader-client-ca-file and --proxy-client-cert-file so its aggregation layer can forward to Weft',
    );
  return {
    caPem,
    allowedNames: list('requestheader-allowed-names'),
    usernameHeaders: list('requestheader-username-headers'),
    groupHeaders: list('requestheader-group-headers'),
    extraHeaderPrefixes: list('requestheader-extra-headers-prefix'),
  };
}

/** The user the front proxy names in the request headers, when its certificate is one we accept. */
export function frontProxyUser(
  cfg: RequestHeaderConfig,
  peer: { authorized: boolean; commonName: string | undefined },
  /** Every value of each header, unjoined (Node's `headersDistinct`): groups come one a header. */
  headers: Record<string, string[] | undefined>,
): User | 'proxy-without-user' | undefined {
  if (!peer.authorized) return undefined;
  if (cfg.allowedNames.length > 0 && !cfg.allowedNames.includes(peer.commonName ?? '')) return undefined;
  const values = (name: string): string[] => headers[name.toLowerCase()] ?? [];
  const username = cfg.usernameHeaders.map((h) => values(h)[0]).find((v) => v);
  if (!username) return 'proxy-without-user';
  const groups = cfg.groupHeaders.flatMap(values);
  const extra: Record<string, string[]> = {};
  for (const prefix of cfg.extraHeaderPrefixes)
    for (const [k, v] of Object.entries(headers))
      if (k.startsWith(prefix.toLowerCase()) && v !== undefined)
        extra[decodeURIComponent(k.slice(prefix.length))] = v;
  return { username, groups, extra };
}

/** The SubjectAccessReview attributes of a GET of `path` (under the group), or undefined for discovery. */
export function accessAttributes(path: string):
  | {
      verb: 'get' | 'list';
      version: string;
      resource: string;
      subresource?: string;
      namespace?: string;
      name?: string;
    }
  | undefined {
  const seg = path.split('/').filter((s) => s !== '');
  if (seg.length <= 1) return undefined;
  const version = seg[0]!;
  let rest = seg.slice(1);
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3 && rest[2] !== 'edges') {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const [resource, name, sub] = rest as [string, string | undefined, string | undefined];
  // A namespace is itself the object for the cluster-scoped kind; other cluster-scoped kinds
  // (nodes) are asked about at the cluster scope whatever the path says (the API answers such a
  // path 404).
  if (resource === 'namespaces' && name) namespace = name;
  else if (KINDS.some((k) => k.plural === resource && !k.namespaced)) namespace = undefined;
  return {
    verb: name === undefined ? 'list' : 'get',
    version,
    resource,
    ...(sub ? { subresource: sub } : {}),
    ...(namespace ? { namespace } : {}),
    ...(name ? { name } : {}),
  };
}

function issue(o: AggregatedApiOptions): Promise<IssuedKeyPair> {
  const ns = o.namespace ?? 'weft-system';
  const svc = o.service ?? 'weft';
  return o.ca.issueWithNewKey(controlPlaneIdentity(o.ca.trustDomain), SERVING_TTL_MS, {
    dnsNames: [`${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`],
    ipAddresses: [],
  });
}

/** How long an authenticated token is taken without asking the API server again. */
const TOKEN_CACHE_MS = 10_000;
/** At most this many tokens are remembered. */
const TOKEN_CACHE_SIZE = 1000;

/** See the module comment. */
export class AggregatedApi {
  private readonly cert: ServingCertificate;
  /**
   * Tokens the API server authenticated lately, by their hash: peers and dashboards ask every
   * second, and a TokenReview each time would load the API server for nothing (its own webhook
   * authenticator caches too). Kept {@link TOKEN_CACHE_MS}, at most {@link TOKEN_CACHE_SIZE}.
   */
  private readonly tokens = new Map<string, { at: number; user: User }>();

  private constructor(
    private readonly o: AggregatedApiOptions,
    private readonly server: Server,
    cfg: RequestHeaderConfig,
    first: IssuedKeyPair,
    /** The port it listens on. */
    readonly port: number,
  ) {
    this.cert = new ServingCertificate(
      {
        ca: o.ca,
        issue: () => issue(o),
        apply: (next) => server.setSecureContext({ key: next.keyPem, cert: next.chainPem, ca: cfg.caPem }),
        onCaChange: () => void this.patchBundles(),
        what: 'the TrafficMetrics API',
      },
      first,
    );
  }

  /** Reads the request-header settings, issues the certificate, listens, writes the caBundles. */
  static async start(o: AggregatedApiOptions): Promise<AggregatedApi> {
    const cfg = await readRequestHeaderConfig(o.client);
    const first = await issue(o);
    let self: AggregatedApi | undefined;
    const server = createServer(
      {
        key: first.keyPem,
        cert: first.chainPem,
        ca: cfg.caPem,
        // The front proxy presents a client certificate; direct callers with a token do not.
        requestCert: true,
        rejectUnauthorized: false,
      },
      (req, res) => {
        void self!.handle(cfg, req, res);
      },
    );
    const i = o.address.lastIndexOf(':');
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(Number(o.address.slice(i + 1)), o.address.slice(0, i).replace(/^\[|\]$/g, ''), () => {
        server.off('error', reject);
        resolve();
      });
    });
    const port = (server.address() as { port: number }).port;
    self = new AggregatedApi(o, server, cfg, first, port);
    log.info('TrafficMetrics aggregated API listening', { port });
    await self.patchBundles();
    return self;
  }

  private async handle(
    cfg: RequestHeaderConfig,
    req: import('node:http').IncomingMessage,
    res: import('node:http').ServerResponse,
  ): Promise<void> {
    const send = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const fail = (status: number, reason: string, message: string): void =>
      send(status, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message,
        reason,
        code: status,
      });
    try {
      const url = new URL(req.url ?? '/', 'https://weft');
      if (req.method !== 'GET')
        return fail(405, 'MethodNotAllowed', 'TrafficMetrics are read-only: GET only');
      if (url.pathname === '/healthz' || url.pathname === '/readyz' || url.pathname === '/livez')
        return send(200, { status: 'ok' });
      if (url.pathname === EXPORT_PATH) return await this.serveExport(req, url, send, fail);
      const prefix = `/apis/${GROUP}`;
      const openapi = url.pathname === '/openapi/v2' || url.pathname === '/openapi/v3';
      if (!openapi && url.pathname !== prefix && !url.pathname.startsWith(`${prefix}/`))
        return fail(404, 'NotFound', `this server serves ${prefix} only`);
      const sock = req.socket as TLSSocket;
      const cert = sock.getPeerCertificate?.();
      const peer = {
        authorized: sock.authorized === true,
        commonName: cert && 'subject' in cert ? (cert.subject?.CN as string | undefined) : undefined,
      };
      let user: User | 'proxy-without-user' | undefined = frontProxyUser(cfg, peer, req.headersDistinct);
      if (user === undefined) user = await this.tokenUser(req.headers.authorization);
      if (user === undefined)
        return fail(
          401,
          'Unauthorized',
          'present the front proxy certificate of the aggregation layer, or a bearer token',
        );
      // The API server's OpenAPI aggregation asks every aggregated server for its document and
      // logs an error every minute for one that has none: an empty one (TrafficMetrics are not
      // objects anyone writes) keeps its log quiet.
      if (url.pathname === '/openapi/v2')
        return send(200, { swagger: '2.0', info: { title: GROUP, version: VERSIONS.join(',') }, paths: {} });
      if (url.pathname === '/openapi/v3') return send(200, { paths: {} });
      const path = url.pathname.slice(prefix.length);
      const attrs = accessAttributes(path);
      if (attrs) {
        if (user === 'proxy-without-user') return fail(401, 'Unauthorized', 'the front proxy named no user');
        if (!(await this.allowed(user, attrs)))
          return fail(
            403,
            'Forbidden',
            `${user.username} may not ${attrs.verb} ${attrs.resource}${attrs.subresource ? `/${attrs.subresource}` : ''}.${GROUP}${attrs.namespace ? ` in namespace ${attrs.namespace}` : ' at the cluster scope'}`,
          );
      }
      const q = Object.fromEntries(url.searchParams) as Record<string, string>;
      const a = await answerWithPeers(
        path,
        q,
        { model: this.o.model(), store: this.o.store, now: Date.now(), visible: () => true },
        this.o.peers,
      );
      if (a.missing.length > 0) res.setHeader(MISSING_PEERS_HEADER, describeMissing(a.missing));
      send(a.status, a.body);
    } catch (err) {
      fail(503, 'ServiceUnavailable', `cannot check the caller with the API server: ${messageOf(err)}`);
    }
  }

  /**
   * This replica's window for a peer (see peers.ts): only Weft's own ServiceAccount, with its
   * bearer token (never a user the front proxy vouches for: the aggregator does not route here,
   * and nobody else needs every pod's figures unfiltered by RBAC).
   */
  private async serveExport(
    req: import('node:http').IncomingMessage,
    url: URL,
    send: (status: number, body: unknown) => void,
    fail: (status: number, reason: string, message: string) => void,
  ): Promise<void> {
    if (!this.o.peerUser) return fail(404, 'NotFound', 'this replica serves no window to peers');
    const user = await this.tokenUser(req.headers.authorization);
    if (!user) return fail(401, 'Unauthorized', "present Weft's ServiceAccount token");
    if (user.username !== this.o.peerUser)
      return fail(
        403,
        'Forbidden',
        `only ${this.o.peerUser} may read this replica's window, not ${user.username}`,
      );
    const windowMs = Number(url.searchParams.get('windowMs'));
    const now = Number(url.searchParams.get('now'));
    if (!(windowMs > 0) || !Number.isFinite(now))
      return fail(
        400,
        'BadRequest',
        'windowMs (a positive number of ms) and now (ms since the epoch) are required',
      );
    // The asker's clock, not ours: both cut the same slots.
    send(200, this.o.store.export(Math.min(windowMs, this.o.store.retentionMs), now));
  }

  private async tokenUser(authorization: string | undefined): Promise<User | undefined> {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m) return undefined;
    const id = createHash('sha256').update(m[1]!).digest('base64url');
    const now = Date.now();
    const hit = this.tokens.get(id);
    if (hit && now - hit.at < TOKEN_CACHE_MS) return hit.user;
    this.tokens.delete(id);
    const tr = await reviewToken(this.o.client, m[1]!);
    const u = tr.status?.user;
    if (!tr.status?.authenticated || !u?.username) return undefined;
    const user: User = {
      username: u.username,
      ...(u.uid ? { uid: u.uid } : {}),
      groups: u.groups ?? [],
      extra: u.extra ?? {},
    };
    // Map order is insertion order: the first entry is the oldest.
    if (this.tokens.size >= TOKEN_CACHE_SIZE) this.tokens.delete(this.tokens.keys().next().value!);
    this.tokens.set(id, { at: now, user });
    return user;
  }

  private async allowed(
    user: User,
    attrs: NonNullable<ReturnType<typeof accessAttributes>>,
  ): Promise<boolean> {
    if (!KINDS.some((k) => k.plural === attrs.resource)) return true; // answered with 404 anyway
    return mayAccess(this.o.client, user, { group: GROUP, ...attrs });
  }

  /** Writes the CA bundle into each APIService of {@link API_SERVICES} that lacks it. */
  async patchBundles(): Promise<boolean> {
    const bundle = Buffer.from(this.o.ca.bundlePem()).toString('base64');
    let ok = true;
    for (const name of API_SERVICES) {
      const path = `/apis/apiregistration.k8s.io/v1/apiservices/${name}`;
      try {
        const svc = await this.o.client.request<{ spec?: { caBundle?: string } }>('GET', path);
        if (svc.spec?.caBundle === bundle) continue;
        await this.o.client.request(
          'PATCH',
          path,
          { spec: { caBundle: bundle } },
          'application/merge-patch+json',
        );
        log.info('CA bundle written into the APIService', { apiService: name });
      } catch (err) {
        ok = false;
        log.error(
          'cannot write the CA bundle into the APIService: the aggregation layer will not trust Weft',
          {
            apiService: name,
            error:
              err instanceof KubeApiError && err.status === 404
                ? `APIService ${name} does not exist; apply the chart (weft install --apply)`
                : messageOf(err),
          },
        );
      }
    }
    return ok;
  }

  /** The serving certificate presented now (its chain, for tests). */
  get certificate(): IssuedKeyPair {
    return this.cert.current;
  }

  /** Stops listening. */
  async stop(): Promise<void> {
    this.cert.stop();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
  }
}
