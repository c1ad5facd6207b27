/**
 * Real Envoy as the judge of one proxy's config: the resource set is made static
 * ({@link staticBootstrap}) and loaded with `envoy --mode validate`, which builds every listener,
 * route table, cluster and TLS context as a serving Envoy would and exits without binding a port
 * or contacting anyone. The verdict carries Envoy's own error text, so what Weft reports is what
 * a proxy would have said when it NACKed.
 *
 * Costs and limits: one Envoy process per distinct config, about 50-160 ms each on a busy 2-core
 * machine (the README has the figures). At most `concurrency` (default 2) run at once per checker,
 * so a batch cannot starve the machine; verdicts are cached by the SHA-256 of the static bootstrap,
 * so proxies with identical config (replicas, groups) are checked once. A static bootstrap holds
 * private keys when the set holds Secrets, so the file Envoy reads lives in a fresh private folder
 * (0700, file 0600) and is removed after each run.
 */
import { createHash, createPublicKey, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createRootCertificate,
  generateKey,
  issueWorkloadCertificate,
  privateKeyPem,
  signingKey,
} from '../identity/x509';
import { runProcess } from '../process';
import { findEnvoy, NO_ENVOY } from './binary';
import type { JsonObject } from './codec';
import { type ResourceSet, staticBootstrap, type ThrowawayTls } from './static-bootstrap';

export type { ResourceSet } from './static-bootstrap';

/** What Envoy said about one proxy's config. */
export interface Verdict {
  /** Envoy loaded the config (and nothing had to be refused before running it). */
  readonly accepted: boolean;
  /**
   * When refused, Envoy's own error text (without the "error initializing configuration" prefix
   * and the file name), or the references that could not be made static. When accepted, the
   * warnings Envoy printed, or empty.
   */
  readonly message: string;
  /** What the static form assumed or left dynamic (see {@link staticBootstrap}). */
  readonly notes: readonly string[];
  /** SHA-256 (hex) of the static bootstrap: equal configs, equal hashes, one Envoy run. */
  readonly hash: string;
}

/** Options of {@link EnvoyChecker}. */
export interface EnvoyCheckerOptions {
  /** The Envoy binary (default: {@link findEnvoy}'s answer). */
  readonly envoy?: string;
  /** Envoy processes run at once, at most (default 2). */
  readonly concurrency?: number;
  /** A run that takes longer is killed and the check fails with an error (default 30 s). */
  readonly timeoutMs?: number;
  /** Verdicts kept, least recently used dropped first (default 1,024). */
  readonly cacheSize?: number;
}

/** Counters of one {@link EnvoyChecker}, for reports and tests; never used to decide anything. */
export interface CheckerStats {
  /** Envoy processes run. */
  readonly runs: number;
  /** Checks answered from the cache (or by joining an identical check in flight). */
  readonly cacheHits: number;
  /** The most Envoy processes that ran at the same time. */
  readonly maxRunning: number;
  /** Wall time of each Envoy run (ms), in the order they finished. */
  readonly durationsMs: readonly number[];
}

/** The p-th percentile (nearest rank) of `values`, or 0 when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** SHA-256 (hex) of a bootstrap's JSON; the static form is built in a fixed key order. */
function hashOf(bootstrap: JsonObject): string {
  return createHash('sha256').update(JSON.stringify(bootstrap)).digest('hex');
}

const INIT_ERROR = 'error initializing configuration ';
const CONFIG_FILE = 'config.json';

/**
 * Envoy's verdict text from what `--mode validate` printed (with `--log-format %v`): the reason
 * after "error initializing configuration '<file>': " when it refused, else every line but the
 * "configuration '<file>' OK" one (warnings). Lines are kept, their trailing blanks dropped.
 */
export function envoyMessage(output: string, configPath: string): string {
  const lines = output
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l !== '');
  const at = lines.findIndex((l) => l.startsWith(INIT_ERROR));
  const kept =
    at >= 0
      ? [lines[at]!.slice(lines[at]!.indexOf("': ", INIT_ERROR.length) + 3), ...lines.slice(at + 1)]
      : lines.filter((l) => !/^configuration '.*' OK$/.test(l));
  return kept.join('\n').split(configPath).join(CONFIG_FILE);
}

let material: Promise<ThrowawayTls> | undefined;

/**
 * The throwaway root, workload certificate, key and ticket key that stand in for secrets a set
 * refers to but does not hold; made once per process. The certificate is an X.509-SVID issued by
 * the root, as the mesh CA issues them: BoringSSL refuses a CA certificate (no digitalSignature
 * key usage) as a TLS certificate, so a self-signed root cannot stand in for both.
 */
export function throwawayTls(): Promise<ThrowawayTls> {
  material ??= (async () => {
    const rootKey = await generateKey();
    const key = await generateKey();
    const notBefore = new Date(Date.now() - 3600_000);
    const notAfter = new Date(Date.now() + 365 * 24 * 3600_000);
    const root = await createRootCertificate(rootKey, {
      trustDomainId: 'spiffe://weft-check.invalid',
      commonName: 'weft envoy check (throwaway)',
      notBefore,
      notAfter,
    });
    const leaf = await issueWorkloadCertificate({
      issuer: root,
      issuerKey: await signingKey(rootKey, 'throwaway root key'),
      publicKeySpki: new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' })),
      spiffeId: 'spiffe://weft-check.invalid/ns/weft-check/sa/weft-check',
      notBefore,
      notAfter,
    });
    return {
      certificateChainPem: leaf.toString(),
      privateKeyPem: privateKeyPem(key),
      trustedCaPem: root.toString(),
      ticketKeyBase64: randomBytes(80).toString('base64'),
    };
  })().catch((err: unknown) => {
    // Not remembered: the next check tries again.
    material = undefined;
    throw err;
  });
  return material;
}

/** Runs at most `max` tasks at once, the rest in arrival order. */
class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  maxRunning = 0;

  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    try {
      return await task();
    } finally {
      // A waiter takes over this slot; `running` only drops when nobody waits.
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }
}

/**
 * Checks resource sets with one Envoy binary: a concurrency limit, a verdict cache and counters.
 * Use one per process ({@link sharedChecker}) so the limit and the cache are shared.
 */
export class EnvoyChecker {
  private readonly limiter: Limiter;
  private readonly cache = new Map<string, Promise<{ accepted: boolean; message: string }>>();
  private readonly durations: number[] = [];
  private runs = 0;
  private hits = 0;

  constructor(private readonly opts: EnvoyCheckerOptions = {}) {
    this.limiter = new Limiter(Math.max(1, opts.concurrency ?? 2));
  }

  /** The Envoy binary this checker runs, or undefined when none is found. */
  get envoy(): string | undefined {
    return findEnvoy(this.opts.envoy);
  }

  /**
   * Envoy's verdict on one proxy's resources, made static first ({@link staticBootstrap}). A
   * reference that cannot be made static refuses the set without running Envoy. Rejects only when
   * Envoy cannot give a verdict: no binary ({@link NO_ENVOY}), it cannot be started, or it was
   * killed (timeout, signal).
   */
  async check(set: ResourceSet): Promise<Verdict> {
    const { bootstrap, errors, notes } = staticBootstrap(set, await throwawayTls());
    if (errors.length > 0)
      return { accepted: false, message: errors.join('\n'), notes, hash: hashOf(bootstrap) };
    return this.checkBootstrap(bootstrap, notes);
  }

  /**
   * Envoy's verdict on a bootstrap as it is (nothing made static), with `notes` attached. Cached
   * by the bootstrap's hash; an identical check in flight is joined, not run again.
   */
  async checkBootstrap(bootstrap: JsonObject, notes: readonly string[] = []): Promise<Verdict> {
    const hash = hashOf(bootstrap);
    let pending = this.cache.get(hash);
    if (pending) {
      this.hits++;
      // Least recently used goes first: a hit moves the entry to the end.
      this.cache.delete(hash);
      this.cache.set(hash, pending);
    } else {
      const run = this.limiter.run(() => this.validate(bootstrap));
      pending = run;
      this.cache.set(hash, run);
      // A failed run is not a verdict: forget it so the next check tries again.
      run.catch(() => {
        if (this.cache.get(hash) === run) this.cache.delete(hash);
      });
      const max = this.opts.cacheSize ?? 1024;
      while (this.cache.size > max) this.cache.delete(this.cache.keys().next().value!);
    }
    const r = await pending;
    return { ...r, notes, hash };
  }

  /** Verdicts for many sets, in their order; identical sets cost one Envoy run. */
  checkAll(sets: readonly ResourceSet[]): Promise<Verdict[]> {
    return Promise.all(sets.map((s) => this.check(s)));
  }

  /** Counters so far (see {@link CheckerStats}). */
  stats(): CheckerStats {
    return {
      runs: this.runs,
      cacheHits: this.hits,
      maxRunning: this.limiter.maxRunning,
      durationsMs: [...this.durations],
    };
  }

  private async validate(bootstrap: JsonObject): Promise<{ accepted: boolean; message: string }> {
    const envoy = this.envoy;
    if (!envoy) throw new Error(NO_ENVOY);
    const dir = await mkdtemp(join(tmpdir(), 'weft-envoy-check-'));
    const file = join(dir, CONFIG_FILE);
    try {
      await writeFile(file, JSON.stringify(bootstrap), { mode: 0o600 });
      const timeoutMs = this.opts.timeoutMs ?? 30_000;
      const started = performance.now();
      const r = await runProcess(
        envoy,
        [
          '--mode',
          'validate',
          '-c',
          file,
          '--service-node',
          'weft-check',
          '--service-cluster',
          'weft-check',
          // No shared memory or domain socket: several checks run side by side with a serving Envoy.
          '--disable-hot-restart',
          '--log-level',
          'warn',
          // The bare message, so Envoy's text can be cut out of its output.
          '--log-format',
          '%v',
        ],
        undefined,
        { timeoutMs },
      );
      this.runs++;
      this.durations.push(performance.now() - started);
      const output = `${r.stdout}\n${r.stderr}`;
      if (r.code < 0) {
        throw new Error(
          `envoy --mode validate gave no verdict (killed by a signal, or ran over ${timeoutMs} ms): ${envoyMessage(output, file) || '(no output)'}`,
        );
      }
      return { accepted: r.code === 0, message: envoyMessage(output, file) };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

let shared: EnvoyChecker | undefined;

/** The process-wide checker (default options): one concurrency limit and one cache for all callers. */
export function sharedChecker(): EnvoyChecker {
  shared ??= new EnvoyChecker();
  return shared;
}

/** Envoy's verdict on one proxy's resources (see {@link EnvoyChecker.check}). */
export function checkWithEnvoy(set: ResourceSet, checker: EnvoyChecker = sharedChecker()): Promise<Verdict> {
  return checker.check(set);
}

/** Envoy's verdicts on many proxies' resources, in order (see {@link EnvoyChecker.checkAll}). */
export function checkAllWithEnvoy(
  sets: readonly ResourceSet[],
  checker: EnvoyChecker = sharedChecker(),
): Promise<Verdict[]> {
  return checker.checkAll(sets);
}
