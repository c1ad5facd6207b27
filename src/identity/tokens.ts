/**
 * Who may ask for which certificate. A caller of the certificate endpoint presents a bearer token;
 * a {@link TokenReviewer} says which identities it entitles. Two reviewers are planned:
 * - {@link BootstrapTokens} (folder / development mode): a file mapping tokens to identities;
 * - a Kubernetes reviewer (cluster mode): the workload's projected ServiceAccount token, checked
 *   with the API server's TokenReview; the user `system:serviceaccount:<ns>:<sa>` it returns
 *   entitles exactly `spiffe://<td>/ns/<ns>/sa/<sa>` (see `identityOfServiceAccountUser`).
 *
 * Bootstrap token file (YAML or JSON):
 * ```yaml
 * tokens:
 *   - token: 3q2-7w...          # the secret itself, or
 *     identity: bookstore/bookbuyer
 *   - sha256: 9f86d08...        # its SHA-256 in hex, so the file holds no secret
 *     identities: [bookstore/bookstore-v1, bookstore/bookstore-v2]
 * ```
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { unwatchFile, watchFile } from 'node:fs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { z } from 'zod';
import { type Logger, logger } from '../log';
import { readIfExists, writeFileAtomic } from './files';
import { identityFromArgument } from './spiffe';
import { messageOf } from './x509';

const log: Logger = logger('identity');

/** What a reviewer concluded about a token. */
export type TokenReview =
  | { readonly authenticated: true; readonly user: string; readonly identities: readonly string[] }
  | { readonly authenticated: false; readonly reason: string };

/** Checks bearer tokens (bootstrap file now; Kubernetes TokenReview in cluster mode). */
export interface TokenReviewer {
  /** Which identities (SPIFFE IDs) `token` entitles; never throws for a bad token. */
  review(token: string): Promise<TokenReview>;
  /** Stops watching whatever the reviewer watches. */
  close?(): void;
}

const entrySchema = z
  .object({
    token: z.string().min(16, 'a token has at least 16 characters').optional(),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'sha256 is 64 lowercase hex digits')
      .optional(),
    identity: z.string().min(1).optional(),
    identities: z.array(z.string().min(1)).min(1).optional(),
    name: z.string().optional(),
  })
  .strict()
  .refine((e) => (e.token === undefined) !== (e.sha256 === undefined), 'set exactly one of token and sha256')
  .refine(
    (e) => (e.identity === undefined) !== (e.identities === undefined),
    'set exactly one of identity and identities',
  );

const fileSchema = z.object({ tokens: z.array(entrySchema) }).strict();

interface Entry {
  readonly digest: Buffer;
  readonly identities: readonly string[];
  readonly user: string;
}

function digestOf(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Parses a bootstrap token file; throws with the file, the field and the fix. */
export function parseTokenFile(text: string, file: string, trustDomain: string): Entry[] {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new Error(`${file}: not valid YAML or JSON: ${messageOf(err)}`);
  }
  const parsed = fileSchema.safeParse(raw ?? { tokens: [] });
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    const where = i.path
      .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
      .join('')
      .replace(/^\./, '');
    throw new Error(
      `${file}: ${where || '(root)'}: ${i.message} (expected tokens: [{token or sha256, identity or identities}])`,
    );
  }
  return parsed.data.tokens.map((e, i) => {
    const ids = (e.identities ?? [e.identity!]).map((id, j) => {
      try {
        return identityFromArgument(id, trustDomain);
      } catch (err) {
        throw new Error(
          `${file}: tokens[${i}].${e.identities ? `identities[${j}]` : 'identity'}: ${messageOf(err)}`,
        );
      }
    });
    return {
      digest: e.token ? digestOf(e.token) : Buffer.from(e.sha256!, 'hex'),
      identities: ids,
      user: e.name ?? `bootstrap-token[${i}]`,
    };
  });
}

/**
 * Development entitlement: a file of bootstrap tokens, each entitling one or more identities.
 * The file is re-read when it changes; a broken edit is logged and the previous tokens stay.
 * Tokens are compared by SHA-256 digest in constant time.
 */
export class BootstrapTokens implements TokenReviewer {
  private entries: Entry[];
  private watching = false;

  private constructor(
    readonly file: string,
    private readonly trustDomain: string,
    entries: Entry[],
  ) {
    this.entries = entries;
  }

  /** Loads `file`; throws when it is missing or invalid. */
  static async load(file: string, trustDomain: string): Promise<BootstrapTokens> {
    const text = await readIfExists(file);
    if (text === undefined)
      throw new Error(
        `${file}: bootstrap token file does not exist; create one with weft ca token --tokens ${file} --identity <ns>/<sa>`,
      );
    return new BootstrapTokens(file, trustDomain, parseTokenFile(text, file, trustDomain));
  }

  /** Re-reads the file when it changes (polling every `intervalMs`). */
  watch(intervalMs = 2000): this {
    if (this.watching) return this;
    this.watching = true;
    watchFile(this.file, { interval: intervalMs, persistent: false }, () => {
      readIfExists(this.file)
        .then((text) => {
          if (text === undefined) throw new Error(`${this.file}: the file was removed`);
          this.entries = parseTokenFile(text, this.file, this.trustDomain);
          log.info('bootstrap tokens reloaded', { file: this.file, tokens: this.entries.length });
        })
        .catch((err: unknown) =>
          log.error('bootstrap token file rejected; keeping the previous tokens', { error: messageOf(err) }),
        );
    });
    return this;
  }

  async review(token: string): Promise<TokenReview> {
    const d = digestOf(token);
    // Every entry is compared, so the time taken does not tell which one matched.
    let found: Entry | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d) && !found) found = e;
    if (!found) return { authenticated: false, reason: 'unknown bootstrap token' };
    return { authenticated: true, user: found.user, identities: found.identities };
  }

  close(): void {
    if (this.watching) unwatchFile(this.file);
    this.watching = false;
  }
}

/**
 * Adds a new random token for `identity` to a bootstrap token file (created with mode 0600 when
 * missing) and returns the token. The file keeps the token itself so a person can hand it out.
 */
export async function addBootstrapToken(
  file: string,
  identity: string,
  trustDomain: string,
  name?: string,
): Promise<string> {
  const id = identityFromArgument(identity, trustDomain);
  const text = await readIfExists(file);
  if (text !== undefined) parseTokenFile(text, file, trustDomain);
  const doc = (text !== undefined ? parseYaml(text) : null) as { tokens?: unknown[] } | null;
  const tokens = doc?.tokens ?? [];
  const token = randomBytes(32).toString('base64url');
  tokens.push({ ...(name ? { name } : {}), token, identity: id });
  await writeFileAtomic(file, stringifyYaml({ tokens }), 0o600);
  return token;
}
