/**
 * Where the mesh CA's roots live. A {@link CaStore} loads and saves PEM text plus the rotation
 * times; the CA parses and checks what it loads, naming the file (`source`) in every error. Today
 * there are two stores: a folder Weft owns (`--ca-dir`) and a certificate and key the user brings
 * (`--ca-cert`/`--ca-key`); a Kubernetes Secret store implements the same interface.
 *
 * Folder layout (`--ca-dir DIR`):
 *
 * | file | what |
 * |---|---|
 * | `ca.pem` | the newest root certificate |
 * | `ca-key.pem` | its private key (PKCS#8, mode 0600) |
 * | `ca.json` | only after a rotation: when the newest root starts signing and the older roots still trusted |
 * | `previous/<id>.pem`, `previous/<id>-key.pem` | older roots; a key is kept only while that root may still sign |
 * | `bundle.pem` | every root trusted as of the last change: a bootstrap trust file for agents and Envoy |
 */
import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { readIfExists, writeFileAtomic } from './files';

/** One root as stored: PEM text, where it came from, and its place in a rotation. */
export interface StoredRoot {
  readonly certificatePem: string;
  /** File (or other location) of the certificate, for messages. */
  readonly certificateSource: string;
  /** The private key; absent for a root that will not sign again. */
  readonly keyPem?: string;
  readonly keySource?: string;
  /** When this root starts signing (absent: it signs as soon as it is the newest root with a key). */
  readonly activatesAt?: Date;
  /** Until when peers must trust it (set when a newer root takes over; absent: while it is valid). */
  readonly trustedUntil?: Date;
}

/** A stored CA: its roots, oldest first; the last one is the newest. */
export interface StoredCa {
  readonly roots: readonly StoredRoot[];
}

/** Storage of the mesh CA (a folder, user-provided files, later a Kubernetes Secret). */
export interface CaStore {
  /** Where the CA lives, for messages, e.g. `folder /etc/weft/ca`. */
  readonly location: string;
  /** Can Weft create and rotate roots here? */
  readonly writable: boolean;
  /** Loads the CA, or undefined when there is none yet (a first start). */
  load(): Promise<StoredCa | undefined>;
  /** Saves the CA; `bundlePem` is the trust bundle to publish beside it. */
  save(ca: StoredCa, bundlePem: string): Promise<void>;
  /** A cheap token that changes whenever the stored CA may have changed (polled for reloads). */
  version(): Promise<string>;
}

/** Thrown for a CA that cannot be loaded or used; the message names the file, the field and the fix. */
export class CaError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CaError';
  }
}

const isoDate = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'not an ISO 8601 date');

/**
 * Schema of a stored CA's rotation state (`ca.json`): when the newest root starts signing, and the
 * older roots with their trust end; `previous` names where each older root is stored (`fields`),
 * which differs between a folder and a Secret.
 */
export function rotationMetaSchema<S extends z.ZodRawShape>(fields: S) {
  return z
    .object({
      version: z.literal(1),
      activatesAt: isoDate.optional(),
      previous: z
        .array(z.object({ ...fields, activatesAt: isoDate.optional(), trustedUntil: isoDate }).strict())
        .default([]),
    })
    .strict();
}

const metaSchema = rotationMetaSchema({
  certificate: z.string().min(1),
  key: z.string().min(1).optional(),
});

type Meta = z.infer<typeof metaSchema>;

/** A zod issue's path as `a.b[0].c`, for messages. */
export function pathOf(issue: z.core.$ZodIssue): string {
  return issue.path
    .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
    .join('')
    .replace(/^\./, '');
}

async function statToken(path: string): Promise<string> {
  try {
    const s = await fs.stat(path);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch {
    return '-';
  }
}

/** The CA in a folder Weft owns; created on first start, rotated by `weft ca rotate`. */
export class FileCaStore implements CaStore {
  readonly writable = true;
  readonly dir: string;

  constructor(dir: string) {
    this.dir = resolve(dir);
  }

  get location(): string {
    return `folder ${this.dir}`;
  }

  private file(name: string): string {
    return join(this.dir, name);
  }

  async load(): Promise<StoredCa | undefined> {
    const certPath = this.file('ca.pem');
    const keyPath = this.file('ca-key.pem');
    const cert = await this.read(certPath);
    const key = await this.read(keyPath);
    if (cert === undefined && key === undefined) return undefined;
    if (cert === undefined) {
      throw new CaError(
        `${keyPath} exists but ${certPath} does not: restore ca.pem from a backup, or move ${this.dir} away to create a new CA (every workload then needs new certificates)`,
      );
    }
    if (key === undefined) {
      throw new CaError(
        `${certPath} exists but its key ${keyPath} does not: restore ca-key.pem from a backup, or move ${this.dir} away to create a new CA (every workload then needs new certificates)`,
      );
    }
    const metaPath = this.file('ca.json');
    const metaText = await this.read(metaPath);
    let meta: Meta = { version: 1, previous: [] };
    if (metaText !== undefined) {
      let raw: unknown;
      try {
        raw = JSON.parse(metaText);
      } catch (err) {
        throw new CaError(
          `${metaPath}: not valid JSON (${(err as Error).message}); restore it from a backup or rewrite it (see weft ca --help for its fields)`,
        );
      }
      const parsed = metaSchema.safeParse(raw);
      if (!parsed.success) {
        const first = parsed.error.issues[0]!;
        throw new CaError(
          `${metaPath}: ${pathOf(first) || '(root)'}: ${first.message}; fix the field or restore the file from a backup`,
        );
      }
      meta = parsed.data;
    }
    const roots: StoredRoot[] = [];
    for (const [i, p] of meta.previous.entries()) {
      const cPath = this.file(p.certificate);
      const c = await this.read(cPath);
      if (c === undefined)
        throw new CaError(
          `${metaPath}: previous[${i}].certificate: ${cPath} does not exist; restore it or remove the entry`,
        );
      let k: string | undefined;
      const kPath = p.key ? this.file(p.key) : undefined;
      if (kPath) {
        k = await this.read(kPath);
        if (k === undefined)
          throw new CaError(
            `${metaPath}: previous[${i}].key: ${kPath} does not exist; restore it or remove the field`,
          );
      }
      roots.push({
        certificatePem: c,
        certificateSource: cPath,
        ...(k !== undefined ? { keyPem: k, keySource: kPath } : {}),
        ...(p.activatesAt ? { activatesAt: new Date(p.activatesAt) } : {}),
        trustedUntil: new Date(p.trustedUntil),
      });
    }
    roots.push({
      certificatePem: cert,
      certificateSource: certPath,
      keyPem: key,
      keySource: keyPath,
      ...(meta.activatesAt ? { activatesAt: new Date(meta.activatesAt) } : {}),
    });
    return { roots };
  }

  async save(ca: StoredCa, bundlePem: string): Promise<void> {
    const newest = ca.roots[ca.roots.length - 1];
    if (!newest?.keyPem) throw new CaError('internal: the newest root must have a key');
    // `--ca-dir` may name a folder that does not exist yet: the first start creates it.
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    if (ca.roots.length > 1) await fs.mkdir(this.file('previous'), { recursive: true, mode: 0o700 });
    const previous: Meta['previous'] = [];
    const keep = new Set<string>();
    for (const r of ca.roots.slice(0, -1)) {
      if (!r.trustedUntil) throw new CaError('internal: an older root must have a trust end');
      const id = createHash('sha256').update(r.certificatePem).digest('hex').slice(0, 16);
      const certificate = `previous/${id}.pem`;
      await writeFileAtomic(this.file(certificate), r.certificatePem);
      keep.add(`${id}.pem`);
      let key: string | undefined;
      if (r.keyPem) {
        key = `previous/${id}-key.pem`;
        await writeFileAtomic(this.file(key), r.keyPem, 0o600);
        keep.add(`${id}-key.pem`);
      }
      previous.push({
        certificate,
        ...(key ? { key } : {}),
        ...(r.activatesAt ? { activatesAt: r.activatesAt.toISOString() } : {}),
        trustedUntil: r.trustedUntil.toISOString(),
      });
    }
    // Key before certificate: a crash in between leaves a mismatch that load reports by name,
    // never a certificate whose key was lost.
    await writeFileAtomic(this.file('ca-key.pem'), newest.keyPem, 0o600);
    await writeFileAtomic(this.file('ca.pem'), newest.certificatePem);
    const meta: Meta = {
      version: 1,
      ...(newest.activatesAt ? { activatesAt: newest.activatesAt.toISOString() } : {}),
      previous,
    };
    if (previous.length > 0 || newest.activatesAt) {
      await writeFileAtomic(this.file('ca.json'), `${JSON.stringify(meta, null, 2)}\n`);
    } else {
      await fs.rm(this.file('ca.json'), { force: true });
    }
    await writeFileAtomic(this.file('bundle.pem'), bundlePem);
    // Roots no longer trusted are removed, and so are keys of roots that will not sign again.
    const stored = await fs.readdir(this.file('previous')).catch(() => [] as string[]);
    for (const name of stored) {
      if (!keep.has(name)) await fs.rm(this.file(join('previous', name)), { force: true });
    }
  }

  async version(): Promise<string> {
    const parts = await Promise.all(['ca.pem', 'ca-key.pem', 'ca.json'].map((n) => statToken(this.file(n))));
    return parts.join('|');
  }

  private async read(path: string): Promise<string | undefined> {
    try {
      return await readIfExists(path);
    } catch (err) {
      throw new CaError(`cannot read ${path}: ${(err as Error).message}; check the file's owner and mode`);
    }
  }
}

/**
 * A root the user brings (`--ca-cert`, `--ca-key`), with optional extra roots to keep trusting
 * (`--ca-trust`, e.g. the previous root while its certificates are still in use). Weft never
 * writes these files: rotating such a root is done by replacing them (see the README).
 */
export class ProvidedCaStore implements CaStore {
  readonly writable = false;

  constructor(
    readonly certFile: string,
    readonly keyFile: string,
    readonly trustFile?: string,
  ) {}

  get location(): string {
    return `files ${this.certFile} and ${this.keyFile}`;
  }

  async load(): Promise<StoredCa> {
    const read = async (path: string, flag: string): Promise<string> => {
      let text: string | undefined;
      try {
        text = await readIfExists(path);
      } catch (err) {
        throw new CaError(`${flag} ${path}: cannot read it: ${(err as Error).message}`);
      }
      if (text === undefined) throw new CaError(`${flag} ${path}: the file does not exist`);
      return text;
    };
    const roots: StoredRoot[] = [];
    if (this.trustFile) {
      const text = await read(this.trustFile, '--ca-trust');
      for (const block of text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
        roots.push({ certificatePem: `${block}\n`, certificateSource: this.trustFile });
      }
    }
    roots.push({
      certificatePem: await read(this.certFile, '--ca-cert'),
      certificateSource: this.certFile,
      keyPem: await read(this.keyFile, '--ca-key'),
      keySource: this.keyFile,
    });
    return { roots };
  }

  async save(): Promise<void> {
    throw new CaError(
      `the CA comes from ${this.location}, which Weft does not write; rotate it by replacing those files (keep the old root in --ca-trust until its certificates expire), or use --ca-dir`,
    );
  }

  async version(): Promise<string> {
    const files = [this.certFile, this.keyFile, ...(this.trustFile ? [this.trustFile] : [])];
    return (await Promise.all(files.map(statToken))).join('|');
  }
}
