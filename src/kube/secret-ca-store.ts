/**
 * The mesh CA kept in a Kubernetes Secret (Kubernetes mode, `weft serve --ca-secret`). The
 * Secret lives in Weft's own namespace so only Weft's ServiceAccount (and cluster admins) can
 * read the root key. Layout of `data` (base64, as Secrets are):
 *
 * | key | what |
 * |---|---|
 * | `ca.crt` | the newest root certificate |
 * | `ca.key` | its private key (PKCS#8) |
 * | `ca.json` | only after a rotation: when the newest root starts signing and the older roots |
 * | `previous-<id>.crt`, `previous-<id>.key` | older roots; a key only while that root may sign |
 * | `bundle.pem` | every root trusted as of the last change |
 *
 * Several replicas start at once: the first `create` wins and the others, refused with 409,
 * read back what it wrote. A rotation writes with the resourceVersion it loaded, so two
 * rotations cannot silently overwrite each other.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import {
  CaError,
  type CaStore,
  pathOf,
  rotationMetaSchema,
  type StoredCa,
  type StoredRoot,
} from '../identity/store';
import { KubeApiError, type KubeClient, type KubeObject } from './client';

/** Default name of the CA Secret in the mesh namespace. */
export const DEFAULT_CA_SECRET = 'weft-ca';

interface SecretObject extends KubeObject {
  data?: Record<string, string>;
  type?: string;
}

const metaSchema = rotationMetaSchema({
  id: z.string().regex(/^[0-9a-f]{16}$/, '16 hex digits'),
  hasKey: z.boolean(),
});

type Meta = z.infer<typeof metaSchema>;

/** The CA root in a Secret; Weft creates it on first start and writes rotations into it. */
export class SecretCaStore implements CaStore {
  readonly writable = true;
  /** resourceVersion of the Secret last read; a save updates exactly that version. */
  private resourceVersion: string | undefined;

  constructor(
    private readonly client: KubeClient,
    readonly namespace: string,
    readonly name: string = DEFAULT_CA_SECRET,
  ) {}

  get location(): string {
    return `secret ${this.namespace}/${this.name}`;
  }

  private get path(): string {
    return `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets/${encodeURIComponent(this.name)}`;
  }

  private async get(): Promise<SecretObject | undefined> {
    try {
      return await this.client.request<SecretObject>('GET', this.path);
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      if (err instanceof KubeApiError && err.status === 403) {
        throw new CaError(
          `cannot read ${this.location}: forbidden; Weft's ServiceAccount needs get and update on this Secret and create on secrets in ${this.namespace} (see deploy/helm/weft/templates/rbac.yaml)`,
        );
      }
      throw err;
    }
  }

  async load(): Promise<StoredCa | undefined> {
    const secret = await this.get();
    if (!secret) {
      this.resourceVersion = undefined;
      return undefined;
    }
    this.resourceVersion = secret.metadata?.resourceVersion;
    const data = secret.data ?? {};
    const text = (key: string): string | undefined =>
      data[key] === undefined ? undefined : Buffer.from(data[key]!, 'base64').toString('utf8');
    const where = (key: string): string => `${this.location} key ${key}`;
    const fix = `restore the Secret from a backup, or delete it (kubectl -n ${this.namespace} delete secret ${this.name}) so Weft creates a new CA; every workload then needs new certificates`;
    const cert = text('ca.crt');
    const key = text('ca.key');
    if (cert === undefined || key === undefined) {
      const missing = cert === undefined ? 'ca.crt' : 'ca.key';
      throw new CaError(`${this.location} has no data key ${missing}: ${fix}`);
    }
    let meta: Meta = { version: 1, previous: [] };
    const metaText = text('ca.json');
    if (metaText !== undefined) {
      let raw: unknown;
      try {
        raw = JSON.parse(metaText);
      } catch (err) {
        throw new CaError(`${where('ca.json')}: not valid JSON (${(err as Error).message}): ${fix}`);
      }
      const parsed = metaSchema.safeParse(raw);
      if (!parsed.success) {
        const first = parsed.error.issues[0]!;
        throw new CaError(`${where('ca.json')}: ${pathOf(first) || '(root)'}: ${first.message}: ${fix}`);
      }
      meta = parsed.data;
    }
    const roots: StoredRoot[] = [];
    for (const [i, p] of meta.previous.entries()) {
      const certKey = `previous-${p.id}.crt`;
      const c = text(certKey);
      if (c === undefined)
        throw new CaError(
          `${where('ca.json')}: previous[${i}] names ${certKey}, which the Secret lacks: ${fix}`,
        );
      const keyKey = `previous-${p.id}.key`;
      const k = p.hasKey ? text(keyKey) : undefined;
      if (p.hasKey && k === undefined)
        throw new CaError(
          `${where('ca.json')}: previous[${i}] names ${keyKey}, which the Secret lacks: ${fix}`,
        );
      roots.push({
        certificatePem: c,
        certificateSource: where(certKey),
        ...(k !== undefined ? { keyPem: k, keySource: where(keyKey) } : {}),
        ...(p.activatesAt ? { activatesAt: new Date(p.activatesAt) } : {}),
        trustedUntil: new Date(p.trustedUntil),
      });
    }
    roots.push({
      certificatePem: cert,
      certificateSource: where('ca.crt'),
      keyPem: key,
      keySource: where('ca.key'),
      ...(meta.activatesAt ? { activatesAt: new Date(meta.activatesAt) } : {}),
    });
    return { roots };
  }

  async save(ca: StoredCa, bundlePem: string): Promise<void> {
    const newest = ca.roots[ca.roots.length - 1];
    if (!newest?.keyPem) throw new CaError('internal: the newest root must have a key');
    const b64 = (s: string): string => Buffer.from(s, 'utf8').toString('base64');
    const data: Record<string, string> = {
      'ca.crt': b64(newest.certificatePem),
      'ca.key': b64(newest.keyPem),
      'bundle.pem': b64(bundlePem),
    };
    const previous: Meta['previous'] = [];
    for (const r of ca.roots.slice(0, -1)) {
      if (!r.trustedUntil) throw new CaError('internal: an older root must have a trust end');
      const id = createHash('sha256').update(r.certificatePem).digest('hex').slice(0, 16);
      data[`previous-${id}.crt`] = b64(r.certificatePem);
      if (r.keyPem) data[`previous-${id}.key`] = b64(r.keyPem);
      previous.push({
        id,
        hasKey: r.keyPem !== undefined,
        ...(r.activatesAt ? { activatesAt: r.activatesAt.toISOString() } : {}),
        trustedUntil: r.trustedUntil.toISOString(),
      });
    }
    if (previous.length > 0 || newest.activatesAt) {
      const meta: Meta = {
        version: 1,
        ...(newest.activatesAt ? { activatesAt: newest.activatesAt.toISOString() } : {}),
        previous,
      };
      data['ca.json'] = b64(`${JSON.stringify(meta, null, 2)}\n`);
    }
    const body: SecretObject = {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        labels: { 'app.kubernetes.io/managed-by': 'weft' },
        ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
      },
      data,
    };
    try {
      if (this.resourceVersion === undefined) {
        await this.client.request(
          'POST',
          `/api/v1/namespaces/${encodeURIComponent(this.namespace)}/secrets`,
          body,
        );
      } else {
        const saved = await this.client.request<SecretObject>('PUT', this.path, body);
        this.resourceVersion = saved.metadata?.resourceVersion;
      }
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 409 && this.resourceVersion === undefined) {
        // Another replica created the CA first: its root is the mesh's; the caller reads it back.
        return;
      }
      if (err instanceof KubeApiError && err.status === 409) {
        throw new CaError(
          `${this.location} changed while this change was being written (another replica or weft ca rotate); nothing was written: run the command again`,
        );
      }
      if (err instanceof KubeApiError && err.status === 403) {
        throw new CaError(
          `cannot write ${this.location}: forbidden; Weft's ServiceAccount needs create on secrets and update on ${this.name} in ${this.namespace}`,
        );
      }
      throw err;
    }
  }

  async version(): Promise<string> {
    const s = await this.get();
    return s?.metadata?.resourceVersion ?? '-';
  }
}
