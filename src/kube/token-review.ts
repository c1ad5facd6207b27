/**
 * The first certificate of a workload in a cluster: `weft agent` presents the pod's projected
 * ServiceAccount token (audience `weft`), and Weft asks the API server's TokenReview API who it
 * belongs to. `system:serviceaccount:<ns>:<sa>` entitles exactly `spiffe://<td>/ns/<ns>/sa/<sa>`;
 * any other user (a person, a node) entitles nothing. The audience check keeps a token minted for
 * another service (or the default API audience) from being replayed at Weft.
 */
import { identityOfServiceAccountUser } from '../identity/spiffe';
import type { TokenReview, TokenReviewer } from '../identity/tokens';
import { messageOf } from '../identity/x509';
import { KubeApiError, type KubeClient } from './client';

/** The audience projected tokens for Weft carry. */
export const TOKEN_AUDIENCE = 'weft';

interface TokenReviewStatus {
  status?: {
    authenticated?: boolean;
    error?: string;
    audiences?: string[];
    user?: { username?: string };
  };
}

/** Checks bearer tokens with the Kubernetes TokenReview API. */
export class KubeTokenReviewer implements TokenReviewer {
  constructor(
    private readonly client: KubeClient,
    private readonly trustDomain: string,
    private readonly audience: string = TOKEN_AUDIENCE,
  ) {}

  async review(token: string): Promise<TokenReview> {
    let res: TokenReviewStatus;
    try {
      res = await this.client.request<TokenReviewStatus>(
        'POST',
        '/apis/authentication.k8s.io/v1/tokenreviews',
        {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token, audiences: [this.audience] },
        },
      );
    } catch (err) {
      // The API server could not answer: the caller is not authenticated, and the reason says why
      // (Weft's RBAC or an outage), so the agent's log and Weft's point at the same fix.
      const why =
        err instanceof KubeApiError && err.status === 403
          ? "Weft's ServiceAccount may not create tokenreviews (authentication.k8s.io)"
          : `the TokenReview call failed: ${messageOf(err)}`;
      return { authenticated: false, reason: why };
    }
    const s = res.status ?? {};
    if (!s.authenticated) {
      return {
        authenticated: false,
        reason: `token rejected by the API server: ${s.error ?? 'not authenticated'}`,
      };
    }
    if (s.audiences && !s.audiences.includes(this.audience)) {
      return { authenticated: false, reason: `token is not for audience ${this.audience}` };
    }
    const user = s.user?.username ?? '';
    const identity = identityOfServiceAccountUser(user, this.trustDomain);
    if (!identity) {
      return { authenticated: true, user, identities: [] };
    }
    return { authenticated: true, user, identities: [identity] };
  }
}
