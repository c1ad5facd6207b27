/**
 * The IdentityBinding stage of a build: each `access.smi-spec.io/v1alpha4` IdentityBinding resolved
 * into the identities it declares, for TrafficTargets that name it as destination or source.
 *
 * Weft's identities are ServiceAccounts (a workload's certificate carries
 * `spiffe://<trust-domain>/ns/<ns>/sa/<sa>`), so every scheme is resolved to ServiceAccounts of the
 * binding's own namespace, the boundary the spec gives a binding:
 *
 * - `serviceAccount`: that ServiceAccount of the binding's namespace.
 * - `podLabelSelectors`: the ServiceAccounts of the selected workloads, but only a ServiceAccount
 *   whose every workload in the namespace is selected. A peer is known by its certificate, which
 *   names its ServiceAccount and not its pod, so binding a ServiceAccount that unselected pods
 *   share would grant those pods too; such a ServiceAccount is left out (`SharedServiceAccount`).
 *   Access is only ever narrower than written, never wider.
 * - `spiffeIdentities`: an ID of the mesh's trust domain naming a ServiceAccount is that
 *   ServiceAccount, and must be in the binding's namespace (`SpiffeIdOutsideNamespace`); any other
 *   well-formed ID (another trust domain, another path form) is kept as a peer identity, matched by
 *   certificate only. The scheme may be omitted (`cluster.local/ns/a/sa/b`, as the spec's example
 *   writes it); IDs that do not parse are left out (`InvalidSpiffeId`).
 *
 * Schemes are OR'd; `podLabelSelectors` and `serviceAccount` are mutually exclusive, and a binding
 * with both, or with no scheme, is left out: guessing which one was meant could grant too much.
 */

import { parseSpiffeId, SpiffeIdError, workloadOf } from '../identity/spiffe';
import { condition } from './conditions';
import { cmp, groupBy, identityModel, key, plural, selects, subjectOf } from './helpers';
import type { Condition, IdentityModel, MeshSettings, WorkloadModel } from './model';
import { displayName } from './names';
import type { IdentityBinding } from './normalize';

/** What one usable IdentityBinding declares. */
export interface ResolvedBinding {
  /** ServiceAccounts of the binding's namespace, sorted by identity, each once. */
  readonly accounts: readonly IdentityModel[];
  /** SPIFFE IDs that are no ServiceAccount of this mesh, sorted, each once. */
  readonly peers: readonly string[];
}

/** The IdentityBinding stage: the usable bindings, and what references to the others need. */
export interface Bindings {
  /** Usable bindings by `<ns>/<name>`. */
  readonly byKey: ReadonlyMap<string, ResolvedBinding>;
  /** `<ns>/<name>` of the bindings left out here (no scheme, exclusive schemes). */
  readonly invalid: ReadonlySet<string>;
  /** Per binding name, the namespaces that hold one, sorted; for references to the wrong namespace. */
  readonly namespacesByName: ReadonlyMap<string, readonly string[]>;
}

const SCHEMES = 'spec.schemes';

/** The SPIFFE ID an entry stands for, with `spiffe://` added when it was left out. */
function spiffeOf(entry: string): string {
  return entry.startsWith('spiffe://') || entry.includes('://') ? entry : `spiffe://${entry}`;
}

/** Why `id` is not a SPIFFE ID, or null when it is one. */
function spiffeProblem(id: string): string | null {
  if (!id.startsWith('spiffe://')) return 'has another URI scheme than spiffe://';
  if (id.length > 2048) return `is ${id.length} characters long; a SPIFFE ID is at most 2048`;
  try {
    parseSpiffeId(id);
    return null;
  } catch (err) {
    if (!(err instanceof SpiffeIdError)) throw err;
    // The parser's message starts with the ID itself, which the condition already shows escaped.
    const text = err.message.startsWith(`"${id}": `) ? err.message.slice(id.length + 4) : err.message;
    return `is not a SPIFFE ID (${text})`;
  }
}

function resolveSpiffe(
  b: IdentityBinding,
  settings: MeshSettings,
  accounts: Map<string, IdentityModel>,
  peers: Set<string>,
  conditions: Condition[],
): void {
  const ns = b.meta.namespace;
  for (const [i, entry] of (b.spiffeIdentities ?? []).entries()) {
    const field = `${SCHEMES}.spiffeIdentities[${i}]`;
    const id = spiffeOf(entry);
    const problem = spiffeProblem(id);
    if (problem !== null) {
      conditions.push(
        condition(
          subjectOf(b),
          'InvalidSpiffeId',
          `${field} ${JSON.stringify(displayName(entry))} ${problem}, so it is left out; write spiffe://<trust-domain>/<path>, for a ServiceAccount spiffe://${settings.trustDomain}/ns/${ns}/sa/<name>`,
          field,
        ),
      );
      continue;
    }
    const workload = workloadOf(id);
    if (workload === undefined || workload.trustDomain !== settings.trustDomain) {
      peers.add(id);
      continue;
    }
    if (workload.namespace !== ns) {
      conditions.push(
        condition(
          subjectOf(b),
          'SpiffeIdOutsideNamespace',
          `${field} ${JSON.stringify(displayName(entry))} names ServiceAccount ${workload.namespace}/${workload.serviceAccount}, but an IdentityBinding declares identities of its own namespace (${ns}) only, so it is left out; bind it with an IdentityBinding in namespace ${workload.namespace}`,
          field,
        ),
      );
      continue;
    }
    const model = identityModel(ns, workload.serviceAccount, settings.trustDomain);
    accounts.set(model.identity, model);
  }
}

function resolvePodSelectors(
  b: IdentityBinding,
  settings: MeshSettings,
  workloads: readonly WorkloadModel[],
  accounts: Map<string, IdentityModel>,
  conditions: Condition[],
): void {
  const selectors = b.podLabelSelectors ?? [];
  if (selectors.length === 0) return;
  const ns = b.meta.namespace;
  const selected = new Set(workloads.filter((w) => selectors.some((s) => selects(s.matchLabels, w.labels))));
  const byAccount = groupBy(workloads, (w) => w.serviceAccount);
  for (const [sa, list] of [...byAccount].sort(([a], [b]) => cmp(a, b))) {
    const chosen = list.filter((w) => selected.has(w));
    if (chosen.length === 0) continue;
    const others = list.filter((w) => !selected.has(w));
    if (others.length > 0) {
      const first = others[0]!;
      const more = others.length > 1 ? ` (and ${plural(others.length - 1, 'more workload')})` : '';
      conditions.push(
        condition(
          subjectOf(b),
          'SharedServiceAccount',
          `${SCHEMES}.podLabelSelectors selects ${chosen[0]!.kind} ${ns}/${chosen[0]!.name}, which runs as ServiceAccount ${sa}, but ${first.kind} ${ns}/${first.name}${more} runs as ${sa} too and is not selected; a peer is known by its ServiceAccount, not its pod, so binding ${sa} would grant those pods as well, and ${sa} is left out; give the selected pods a ServiceAccount of their own`,
          `${SCHEMES}.podLabelSelectors`,
        ),
      );
      continue;
    }
    const model = identityModel(ns, sa, settings.trustDomain);
    accounts.set(model.identity, model);
  }
}

/** Resolves one binding; null (with a condition) when it is left out. */
function resolveBinding(
  b: IdentityBinding,
  settings: MeshSettings,
  workloads: readonly WorkloadModel[],
  conditions: Condition[],
): ResolvedBinding | null {
  if (b.podLabelSelectors === null && b.spiffeIdentities === null && b.serviceAccount === null) {
    conditions.push(
      condition(
        subjectOf(b),
        'IdentityBindingNoScheme',
        `${SCHEMES} sets no scheme, so the binding declares no identity and is left out; set serviceAccount, podLabelSelectors or spiffeIdentities`,
        SCHEMES,
      ),
    );
    return null;
  }
  if (b.podLabelSelectors !== null && b.serviceAccount !== null) {
    conditions.push(
      condition(
        subjectOf(b),
        'IdentityBindingConflictingSchemes',
        `${SCHEMES} sets both podLabelSelectors and serviceAccount, which are mutually exclusive, so the binding is left out rather than grant either; keep one of them (spiffeIdentities may go with either)`,
        SCHEMES,
      ),
    );
    return null;
  }
  const ns = b.meta.namespace;
  const accounts = new Map<string, IdentityModel>();
  const peers = new Set<string>();
  if (b.serviceAccount !== null) {
    const model = identityModel(ns, b.serviceAccount, settings.trustDomain);
    accounts.set(model.identity, model);
  }
  resolvePodSelectors(b, settings, workloads, accounts, conditions);
  resolveSpiffe(b, settings, accounts, peers, conditions);
  return {
    accounts: [...accounts.values()].sort((x, y) => cmp(x.identity, y.identity)),
    peers: [...peers].sort(),
  };
}

/**
 * Resolves every IdentityBinding against the workloads of its namespace (see the module comment
 * for each scheme).
 */
export function buildBindings(
  bindings: readonly IdentityBinding[],
  workloads: readonly WorkloadModel[],
  settings: MeshSettings,
  conditions: Condition[],
): Bindings {
  const workloadsByNamespace = groupBy(workloads, (w) => w.namespace);
  const byKey = new Map<string, ResolvedBinding>();
  const invalid = new Set<string>();
  const namespacesByName = new Map<string, string[]>();
  for (const b of bindings) {
    const k = key(b.meta.namespace, b.meta.name);
    const list = namespacesByName.get(b.meta.name) ?? [];
    list.push(b.meta.namespace);
    namespacesByName.set(b.meta.name, list);
    const resolved = resolveBinding(
      b,
      settings,
      workloadsByNamespace.get(b.meta.namespace) ?? [],
      conditions,
    );
    if (resolved === null) invalid.add(k);
    else byKey.set(k, resolved);
  }
  for (const list of namespacesByName.values()) list.sort();
  return { byKey, invalid, namespacesByName };
}
