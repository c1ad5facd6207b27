/**
 * Who may read the admin server's debug views in a cluster. What proxies were sent names services,
 * endpoints and identities of every mesh namespace, so in Kubernetes mode a caller must present a
 * bearer token the API server vouches for (TokenReview, the API server's own audience: the
 * credentials of the user's kubeconfig, which the CLI passes), and sees only the namespaces its
 * RBAC lets it list pods in (SubjectAccessReview). Health, readiness and metrics stay open.
 */
import type { DebugAccess, DebugGrant } from '../admin/server';
import { KubeApiError, type KubeClient } from './client';

/** What a TokenReview answers. */
export interface TokenReviewAnswer {
  status?: {
    authenticated?: boolean;
    error?: string;
    user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
  };
}

interface AccessReviewAnswer {
  status?: { allowed?: boolean };
}

/** Options of {@link kubeDebugAccess}. */
export interface KubeDebugAccessOptions {
  /** The mesh namespaces now (a caller without cluster-wide rights is checked per namespace). */
  namespaces: () => readonly string[];
  /** How long an answer is reused for the same token (default 30 s). */
  cacheMs?: number;
  now?: () => number;
}

/** The debug views' access check against the API server. */
export function kubeDebugAccess(client: KubeClient, o: KubeDebugAccessOptions): DebugAccess {
  const cache = new Map<string, { at: number; grant: DebugGrant }>();
  const ttl = o.cacheMs ?? 30_000;
  const now = o.now ?? Date.now;
  return async (authorization) => {
    const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
    if (!m)
      return {
        allowed: false,
        status: 401,
        reason:
          'debug views need a bearer token the API server accepts: weft proxy and weft check send your kubeconfig credentials',
      };
    const token = m[1]!;
    const hit = cache.get(token);
    if (hit && now() - hit.at < ttl) return hit.grant;
    const grant = await review(client, token, o.namespaces());
    if (cache.size > 1000) cache.clear();
    // Refusals caused by an outage are not kept: the next call asks again.
    if (grant.allowed || grant.status !== 503) cache.set(token, { at: now(), grant });
    return grant;
  };
}

/** The user a bearer token stands for, as the API server's TokenReview says (its own audience). */
export async function reviewToken(client: KubeClient, token: string): Promise<TokenReviewAnswer> {
  return client.request<TokenReviewAnswer>('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenReview',
    spec: { token },
  });
}

/** A user as TokenReview names it, or as a front proxy vouches for it. */
export interface ReviewedUser {
  username: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
}

/** Whether `user` may do what `resourceAttributes` say, by the API server's SubjectAccessReview. */
export async function mayAccess(
  client: KubeClient,
  user: ReviewedUser,
  resourceAttributes: Record<string, string>,
): Promise<boolean> {
  const sar = await client.request<AccessReviewAnswer>(
    'POST',
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: user.username,
        ...(user.uid ? { uid: user.uid } : {}),
        ...(user.groups ? { groups: user.groups } : {}),
        ...(user.extra ? { extra: user.extra } : {}),
        resourceAttributes,
      },
    },
  );
  return sar.status?.allowed === true;
}

async function review(client: KubeClient, token: string, namespaces: readonly string[]): Promise<DebugGrant> {
  let user: NonNullable<NonNullable<TokenReviewAnswer['status']>['user']>;
  try {
    const tr = await reviewToken(client, token);
    if (!tr.status?.authenticated || !tr.status.user?.username)
      return {
        allowed: false,
        status: 401,
        reason: `the API server rejected the token: ${tr.status?.error ?? 'not authenticated'}`,
      };
    user = tr.status.user;
  } catch (err) {
    return { allowed: false, status: 503, reason: unavailable(err, 'tokenreviews.authentication.k8s.io') };
  }
  const may = (namespace: string): Promise<boolean> =>
    mayAccess(client, user as ReviewedUser, {
      verb: 'list',
      resource: 'pods',
      ...(namespace ? { namespace } : {}),
    });
  try {
    if (await may('')) return { allowed: true, user: user.username!, namespaces: '*' };
    const visible = new Set<string>();
    for (const ns of namespaces) if (await may(ns)) visible.add(ns);
    if (visible.size === 0)
      return {
        allowed: false,
        status: 403,
        reason: `${user.username} may not list pods in any mesh namespace, so Weft shows it no debug data`,
      };
    return { allowed: true, user: user.username!, namespaces: visible };
  } catch (err) {
    return {
      allowed: false,
      status: 503,
      reason: unavailable(err, 'subjectaccessreviews.authorization.k8s.io'),
    };
  }
}

function unavailable(err: unknown, resource: string): string {
  if (err instanceof KubeApiError && err.status === 403)
    return `Weft's ServiceAccount may not create ${resource}; apply the chart's RBAC (weft install --apply)`;
  return `cannot check the caller with the API server: ${err instanceof Error ? err.message : String(err)}`;
}
