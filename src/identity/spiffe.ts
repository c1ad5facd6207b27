/**
 * SPIFFE IDs: `spiffe://<trust-domain>/<path>`, and the Kubernetes form Weft uses for workload
 * identities, `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`. Parsing follows the
 * SPIFFE ID standard strictly (lowercase trust domain, no empty, `.` or `..` path segments, no
 * query, fragment, port or user info) because identities are compared as exact strings: two
 * spellings of one identity would be two identities.
 */

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** A parsed SPIFFE ID. */
export interface SpiffeId {
  /** The trust domain, e.g. `cluster.local`. */
  readonly trustDomain: string;
  /** The path with its leading `/`, or `''` for the trust domain's own ID. */
  readonly path: string;
}

/** A workload identity: the ServiceAccount a workload runs as, in a trust domain. */
export interface WorkloadIdentity {
  readonly trustDomain: string;
  readonly namespace: string;
  readonly serviceAccount: string;
}

/** Thrown for a string that is not a valid SPIFFE ID; the message says what is wrong. */
export class SpiffeIdError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SpiffeIdError';
  }
}

/** Why `td` is not a valid trust domain name, or undefined when it is. */
export function trustDomainProblem(td: string): string | undefined {
  if (td === '') return 'the trust domain is empty';
  if (td.length > 255) return 'the trust domain is longer than 255 characters';
  if (!TRUST_DOMAIN.test(td)) {
    return `trust domain "${td}" may only contain lowercase letters, digits, ".", "-" and "_"`;
  }
  return undefined;
}

/** Parses a SPIFFE ID; throws {@link SpiffeIdError} naming the problem. */
export function parseSpiffeId(id: string): SpiffeId {
  const scheme = 'spiffe://';
  if (!id.startsWith(scheme))
    throw new SpiffeIdError(`"${id}" is not a SPIFFE ID: it must start with spiffe://`);
  if (id.length > 2048) throw new SpiffeIdError('a SPIFFE ID is at most 2048 bytes');
  const rest = id.slice(scheme.length);
  if (/[?#]/.test(rest)) throw new SpiffeIdError(`"${id}": a SPIFFE ID has no query or fragment`);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  const tdProblem = trustDomainProblem(trustDomain);
  if (tdProblem) throw new SpiffeIdError(`"${id}": ${tdProblem}`);
  if (path !== '') {
    for (const seg of path.slice(1).split('/')) {
      if (seg === '') throw new SpiffeIdError(`"${id}": empty path segment (or trailing "/")`);
      if (seg === '.' || seg === '..')
        throw new SpiffeIdError(`"${id}": "." and ".." path segments are not allowed`);
      if (!SEGMENT.test(seg)) {
        throw new SpiffeIdError(
          `"${id}": path segment "${seg}" may only contain letters, digits, ".", "-" and "_"`,
        );
      }
    }
  }
  return { trustDomain, path };
}

/** The SPIFFE ID of a ServiceAccount: `spiffe://<trust-domain>/ns/<namespace>/sa/<name>`. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  const id = `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
  parseSpiffeId(id);
  return id;
}

/** The trust domain's own ID (`spiffe://<trust-domain>`), put on the roots Weft creates. */
export function trustDomainId(trustDomain: string): string {
  const id = `spiffe://${trustDomain}`;
  parseSpiffeId(id);
  return id;
}

/** The workload identity a SPIFFE ID names, or undefined when it is not of the `/ns/*\/sa/*` form. */
export function workloadOf(id: string): WorkloadIdentity | undefined {
  let parsed: SpiffeId;
  try {
    parsed = parseSpiffeId(id);
  } catch {
    return undefined;
  }
  const m = /^\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(parsed.path);
  if (!m) return undefined;
  return { trustDomain: parsed.trustDomain, namespace: m[1]!, serviceAccount: m[2]! };
}

/**
 * Reads an identity given by a person: a full SPIFFE ID, or `<namespace>/<service-account>` in
 * `trustDomain`. Throws {@link SpiffeIdError} with the accepted forms.
 */
export function identityFromArgument(text: string, trustDomain: string | undefined): string {
  if (text.startsWith('spiffe://')) {
    if (!workloadOf(text)) {
      parseSpiffeId(text);
      throw new SpiffeIdError(
        `"${text}" is not a workload identity: use spiffe://<trust-domain>/ns/<namespace>/sa/<name>`,
      );
    }
    return text;
  }
  const m = /^([^/]+)\/([^/]+)$/.exec(text);
  if (!m) {
    throw new SpiffeIdError(
      `identity "${text}": use <namespace>/<service-account> or spiffe://<trust-domain>/ns/<namespace>/sa/<name>`,
    );
  }
  if (!trustDomain) {
    throw new SpiffeIdError(
      `identity "${text}": the trust domain is unknown here; give the full spiffe:// ID`,
    );
  }
  return spiffeId(trustDomain, m[1]!, m[2]!);
}

/**
 * The SPIFFE ID of a Kubernetes ServiceAccount user name (`system:serviceaccount:<ns>:<name>`, what
 * a TokenReview returns), or undefined for any other user.
 */
export function identityOfServiceAccountUser(username: string, trustDomain: string): string | undefined {
  const m = /^system:serviceaccount:([^:]+):([^:]+)$/.exec(username);
  return m ? spiffeId(trustDomain, m[1]!, m[2]!) : undefined;
}
