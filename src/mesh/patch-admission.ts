/**
 * Admission of an EnvoyPatch against the current mesh, for the validating webhook
 * (`/validate-envoypatch`): the same checks the compiler runs (schema, strict decoding,
 * protoc-gen-validate, consistency, Envoy's build rules, and Envoy itself when a judge is
 * configured), run on every proxy the patch would select, with the mesh's other patches in their
 * order. A patch that would apply nowhere is refused with the reason, so `kubectl apply` shows it
 * where it was typed.
 *
 * Proxies checked: every workload's Envoy flavor, plus the groups of connected proxies (which adds
 * proxyless gRPC workloads that are running). A patch that selects no proxy, or whose targets are
 * not found, is admitted: it may be meant for workloads that do not exist yet.
 *
 * Envoy's judgement is bounded by `budgetMs` (the webhook's timeout less a margin): when Envoy
 * has not finished by then, the patch is admitted with a warning and judged again before any proxy
 * gets it, as every patch is.
 */
import { type Judgement, patchMeshJudged } from '../patch/envoy-judge';
import { extractPatches, type MeshProxy, patchMesh } from '../patch/mesh';
import { selectsPatch } from '../patch/select';
import type { Condition } from '../smi/model';
import { type ProxyTarget, translateProxy } from '../translate';
import type { MeshCompiler } from './compiler';
import { serviceTargetResolver } from './patch-targets';

/** The webhook's answer. */
export interface PatchAdmission {
  readonly allowed: boolean;
  /** Why not, when refused. */
  readonly message?: string;
  /** Shown by kubectl when admitted. */
  readonly warnings?: readonly string[];
}

export type { Judgement };

/** Checks one EnvoyPatch object against `compiler`'s current mesh (see the module comment). */
export async function admitPatch(
  compiler: MeshCompiler,
  object: unknown,
  budgetMs = 8000,
): Promise<PatchAdmission> {
  const parsed = extractPatches([object]);
  if (parsed.conditions.length > 0) {
    return { allowed: false, message: parsed.conditions.map((c) => c.message).join('; ') };
  }
  const candidate = parsed.patches[0];
  if (!candidate) return { allowed: true };
  const id = `${candidate.metadata.namespace}/${candidate.metadata.name}`;
  const model = compiler.currentModel;
  const meshNamespace = compiler.meshNs;
  const targets = new Map<string, ProxyTarget>();
  for (const w of model.workloads) {
    const t: ProxyTarget = {
      workload: { kind: w.kind, namespace: w.namespace, name: w.name },
      flavor: 'envoy',
      mtls: compiler.mutualTls,
    };
    targets.set(`envoy/${w.kind}/${w.namespace}/${w.name}`, t);
  }
  for (const t of compiler.activeTargets()) {
    targets.set(`${t.flavor}/${t.workload.kind}/${t.workload.namespace}/${t.workload.name}`, t);
  }
  const byKey = new Map(model.workloads.map((w) => [`${w.kind}/${w.namespace}/${w.name}`, w]));
  const proxies: MeshProxy[] = [];
  for (const [key, t] of targets) {
    const w = byKey.get(`${t.workload.kind}/${t.workload.namespace}/${t.workload.name}`);
    if (!w) continue;
    const subject = {
      namespace: w.namespace,
      labels: w.labels,
      serviceAccount: w.serviceAccount,
      flavor: t.flavor,
    };
    // Only proxies the candidate selects: others cannot change its outcome.
    if (!selectsPatch(candidate, subject, meshNamespace)) continue;
    proxies.push({ id: key, subject, resources: translateProxy(model, t).resources });
  }
  const patches = [
    ...compiler.currentPatches.filter((p) => `${p.metadata.namespace}/${p.metadata.name}` !== id),
    candidate,
  ];
  const opts = { meshNamespace, resolve: serviceTargetResolver };
  const verdictOf = (conditions: readonly Condition[]): PatchAdmission => {
    const applied = conditions.find((c) => c.object === `EnvoyPatch/${id}` && c.type === 'Applied');
    if (applied && applied.status === 'False' && applied.reason === 'Invalid') {
      return { allowed: false, message: applied.message };
    }
    return applied && applied.status === 'False'
      ? { allowed: true, warnings: [applied.message] }
      : { allowed: true };
  };
  const native = patchMesh(proxies, patches, opts);
  const first = verdictOf(native.conditions);
  const judge = compiler.envoyJudge;
  if (!first.allowed || !judge) return first;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), Math.max(0, budgetMs));
  });
  try {
    const judged = await Promise.race([patchMeshJudged(proxies, patches, opts, judge), late]);
    if (!judged) {
      return {
        allowed: true,
        warnings: [
          ...(first.warnings ?? []),
          `Envoy did not finish judging EnvoyPatch ${id} within ${budgetMs} ms; Weft judges it before any proxy gets it (see its Applied condition)`,
        ],
      };
    }
    return verdictOf(judged.conditions);
  } finally {
    clearTimeout(timer);
  }
}
