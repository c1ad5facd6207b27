/**
 * Envoy as the last judge of patched config: a proxy's patched resource set is loaded by the real
 * Envoy binary (`envoy --mode validate` on its static equivalent, see src/envoy/validate-mode.ts)
 * before any proxy is sent it. Weft's own checks (strict decoding, protoc-gen-validate, the
 * consistency checks and envoy-rules.ts) come first and catch most mistakes in microseconds;
 * Envoy catches what those do not know, with its own words.
 *
 * - **Cached by content.** A judgement is keyed by the SHA-256 of the patched set's JSON: an
 *   unchanged set is never judged twice, proxies of equal config share one judgement, and an
 *   identical judgement in flight is joined. Unpatched sets are never judged (they cost nothing).
 * - **Blame.** When Envoy refuses a patched set, the patches that applied to it are re-applied one
 *   more at a time (in their order) until Envoy refuses: that patch is the culprit. Its operations
 *   are then applied one more at a time on what came before it, and the first prefix Envoy refuses
 *   names the operation. Each step is one cached Envoy run, so a refusal costs about (patches +
 *   operations) runs once, and nothing after.
 * - **No verdict is not a refusal.** When Envoy cannot give one (no binary, killed, timed out) the
 *   set counts as accepted on Weft's own checks, and the judgement says why it is unchecked.
 */
import { createHash } from 'node:crypto';
import { findEnvoy } from '../envoy/binary';
import { EnvoyChecker } from '../envoy/validate-mode';
import { logger } from '../log';
import {
  applyPatches,
  orderPatches,
  type PatchableResources,
  type PatchSubject,
  type ServiceTargetResolver,
} from './apply';
import { type MeshProxy, type PatchMeshOptions, patchMesh } from './mesh';
import type { EnvoyPatch } from './schema';

const log = logger('envoy-judge');

/** Envoy's judgement of one patched set. */
export type Judgement =
  | {
      readonly accepted: true;
      /** Set when Envoy gave no verdict and Weft's own checks decided: why. */
      readonly unchecked?: string;
    }
  | {
      readonly accepted: false;
      /** `<namespace>/<name>` of the patch that made Envoy refuse. */
      readonly patch: string;
      /** Index of the operation of that patch, when one alone is enough for Envoy to refuse. */
      readonly operation?: number;
      /** Envoy's own error text. */
      readonly message: string;
    };

/** One proxy's inputs to a judgement. */
export interface JudgeInput {
  /** The proxy's resources before any patch. */
  readonly resources: PatchableResources;
  readonly subject: PatchSubject;
  /** Every patch of the mesh (only those that applied here matter). */
  readonly patches: readonly EnvoyPatch[];
  /** Patches that applied to this proxy, `<namespace>/<name>`. */
  readonly applied: ReadonlySet<string>;
  /** The patched set, as it would be served. */
  readonly patched: PatchableResources;
  readonly meshNamespace: string;
  readonly resolve?: ServiceTargetResolver;
  /** As the patched set was made (see `applyPatches`); blame re-applies patches the same way. */
  readonly nativeRules?: boolean;
}

/** Counters, for reports and the benchmark; never used to decide anything. */
export interface JudgeStats {
  /** Patched sets judged (not counting cache hits). */
  readonly judged: number;
  /** Of which refused. */
  readonly refused: number;
  /** Lookups answered from the cache. */
  readonly hits: number;
  /** Wall time of each judgement (ms), blame included. */
  readonly durationsMs: readonly number[];
}

/** The content key of a patched set. */
export function setKey(set: PatchableResources): string {
  return createHash('sha256').update(JSON.stringify(set)).digest('hex');
}

/** Judges patched sets with one {@link EnvoyChecker}; see the module comment. */
export class PatchJudge {
  private readonly done = new Map<string, Judgement>();
  private readonly inFlight = new Map<string, Promise<Judgement>>();
  private judged = 0;
  private refused = 0;
  private hits = 0;
  private readonly durations: number[] = [];

  constructor(
    /** The checker running Envoy (its own verdict cache and concurrency limit apply). */
    readonly checker: EnvoyChecker,
    private readonly cacheSize = 4096,
  ) {}

  /** The judgement of a set already judged, or undefined (not yet, or being judged). */
  peek(set: PatchableResources | string): Judgement | undefined {
    const key = typeof set === 'string' ? set : setKey(set);
    const j = this.done.get(key);
    if (j) this.hits++;
    return j;
  }

  /** Is the set with this key being judged now? */
  pending(key: string): boolean {
    return this.inFlight.has(key);
  }

  /** Counters so far. */
  stats(): JudgeStats {
    return { judged: this.judged, refused: this.refused, hits: this.hits, durationsMs: [...this.durations] };
  }

  /** Judges one proxy's patched set (cached by content; an identical judgement in flight is joined). */
  judge(input: JudgeInput, key: string = setKey(input.patched)): Promise<Judgement> {
    const known = this.done.get(key);
    if (known) {
      this.hits++;
      return Promise.resolve(known);
    }
    const running = this.inFlight.get(key);
    if (running) return running;
    const started = performance.now();
    const p = this.run(input)
      // A judgement that fails (a bug, not Envoy's verdict) must not be asked again on every
      // recompile: it counts as unchecked, as when Envoy gives no verdict.
      .catch((err: unknown): Judgement => ({ accepted: true, unchecked: String(err) }))
      .then((j) => {
        this.judged++;
        if (!j.accepted) this.refused++;
        this.durations.push(performance.now() - started);
        this.done.set(key, j);
        while (this.done.size > this.cacheSize) this.done.delete(this.done.keys().next().value!);
        return j;
      })
      .finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, p);
    return p;
  }

  private async verdict(set: PatchableResources): Promise<{ accepted: boolean; message: string } | string> {
    try {
      return await this.checker.check(set);
    } catch (err) {
      return err instanceof Error ? err.message : String(err);
    }
  }

  private async run(input: JudgeInput): Promise<Judgement> {
    const whole = await this.verdict(input.patched);
    if (typeof whole === 'string') {
      log.warn('Envoy gave no verdict on a patched set; Weft’s own checks decide', { error: whole });
      return { accepted: true, unchecked: whole };
    }
    if (whole.accepted) return { accepted: true };
    // Which patch: add the applied ones one at a time, in order, until Envoy refuses.
    const ordered = orderPatches(input.patches).filter((p) =>
      input.applied.has(`${p.metadata.namespace}/${p.metadata.name}`),
    );
    const opts = {
      meshNamespace: input.meshNamespace,
      nativeRules: input.nativeRules ?? true,
      ...(input.resolve ? { resolve: input.resolve } : {}),
    };
    let before = input.resources;
    let culprit = ordered[ordered.length - 1];
    let message = whole.message;
    for (let k = 0; k < ordered.length - 1; k++) {
      const upTo = applyPatches(input.resources, input.subject, ordered.slice(0, k + 1), opts).resources;
      const v = await this.verdict(upTo);
      if (typeof v !== 'string' && !v.accepted) {
        culprit = ordered[k];
        message = v.message;
        break;
      }
      before = upTo;
    }
    if (!culprit) return { accepted: false, patch: '', message };
    const id = `${culprit.metadata.namespace}/${culprit.metadata.name}`;
    // Which operation: the first prefix of its operations Envoy refuses. A prefix Weft's own
    // checks refuse (an operation may need a later one) is passed over.
    const ops = culprit.spec.patches;
    // When every shorter prefix was judged and accepted, the last operation is the one.
    let allJudged = true;
    for (let j = 0; j < ops.length - 1; j++) {
      const partial: EnvoyPatch = { ...culprit, spec: { ...culprit.spec, patches: ops.slice(0, j + 1) } };
      const r = applyPatches(before, input.subject, [partial], opts);
      if (!r.results[0]?.applied) {
        allJudged = false;
        continue;
      }
      const v = await this.verdict(r.resources);
      if (typeof v === 'string') allJudged = false;
      else if (!v.accepted) return { accepted: false, patch: id, operation: j, message: v.message };
    }
    return { accepted: false, patch: id, ...(allJudged ? { operation: ops.length - 1 } : {}), message };
  }
}

/** The condition text of a refusal, in the form the patch engine's errors take. */
export function refusalError(proxy: string, j: Extract<Judgement, { accepted: false }>): string {
  const where = j.operation !== undefined ? `spec.patches[${j.operation}]` : 'spec.patches (together)';
  return `${proxy}: ${where}: Envoy refused the patched config: ${j.message}`;
}

/**
 * {@link patchMesh} with Envoy's judgement: patches all proxies, has Envoy judge every patched
 * set, and withdraws (everywhere, as for any refused patch) each patch Envoy refused, until Envoy
 * accepts every set. For the offline tools (`weft render`, `weft diff`, `weft status -f`) and the
 * admission webhook; the compiler judges asynchronously instead (see src/mesh/compiler.ts).
 */
export async function patchMeshJudged(
  proxies: readonly MeshProxy[],
  patches: readonly EnvoyPatch[],
  opts: PatchMeshOptions,
  judge: PatchJudge,
): Promise<ReturnType<typeof patchMesh>> {
  const refused = new Map<string, string[]>([...(opts.refused ?? [])].map(([k, v]) => [k, [...v]]));
  for (let pass = 0; pass <= patches.length; pass++) {
    const r = patchMesh(proxies, patches, { ...opts, refused });
    const judged = await Promise.all(
      proxies.map(async (p) => {
        const applied = new Set((r.results.get(p.id) ?? []).filter((x) => x.applied).map((x) => x.patch));
        // Envoy judges what Envoy gets: proxyless gRPC clients read the resources their own way.
        if (applied.size === 0 || p.subject.flavor !== 'envoy') return undefined;
        const j = await judge.judge({
          resources: p.resources,
          subject: p.subject,
          patches,
          applied,
          patched: r.resources.get(p.id) ?? p.resources,
          meshNamespace: opts.meshNamespace,
          nativeRules: opts.nativeRules ?? true,
          ...(opts.resolve ? { resolve: opts.resolve } : {}),
        });
        return { id: p.id, j };
      }),
    );
    const fresh = new Map<string, string[]>();
    for (const x of judged) {
      if (!x || x.j.accepted || refused.has(x.j.patch)) continue;
      fresh.set(x.j.patch, [...(fresh.get(x.j.patch) ?? []), refusalError(x.id, x.j)]);
    }
    if (fresh.size === 0) return r;
    for (const [k, v] of fresh) refused.set(k, v);
  }
  return patchMesh(proxies, patches, { ...opts, refused });
}

/**
 * The judge for a `--envoy` setting: false for none; a path for that binary; true or unset for
 * the binary {@link findEnvoy} finds (none found: undefined, Weft's own checks only).
 */
export function judgeFor(envoy: string | boolean | undefined): PatchJudge | undefined {
  if (envoy === false) return undefined;
  const path = findEnvoy(typeof envoy === 'string' ? envoy : undefined);
  if (!path) return undefined;
  return new PatchJudge(new EnvoyChecker({ envoy: path }));
}
