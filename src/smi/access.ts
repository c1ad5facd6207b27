/** The access stage of a build: TrafficTargets resolved into identities and rules. */

import type { Bindings, ResolvedBinding } from './bindings';
import { condition } from './conditions';
import { cmp, createOrFix, identityModel, key, notFound, portList, subjectOf } from './helpers';
import type {
  AccessModel,
  AccessRule,
  Condition,
  HttpMatch,
  HttpRouteGroupModel,
  IdentityModel,
  L4RouteModel,
  MeshSettings,
  ServiceModel,
  WorkloadModel,
} from './model';
import type { ServiceAccount, Subject, TrafficTarget } from './normalize';

/** Ports served per identity, for checking and widening the ports TrafficTargets name. */
export interface IdentityPorts {
  /** Ports served to each identity: service ports, numeric target ports and endpoint ports. */
  readonly portsByIdentity: ReadonlyMap<string, ReadonlySet<number>>;
  /** Per identity, the target ports behind each Service port number of the Services it backs. */
  readonly targetsByIdentity: ReadonlyMap<string, ReadonlyMap<number, ReadonlySet<number>>>;
}

/** Ports each identity serves, from the Services its workloads back. */
export function identityPorts(
  services: readonly ServiceModel[],
  workloads: readonly WorkloadModel[],
): IdentityPorts {
  const portsByIdentity = new Map<string, Set<number>>();
  const targetsByIdentity = new Map<string, Map<number, Set<number>>>();
  const workloadIdentity = new Map(workloads.map((w) => [`${w.kind}/${w.namespace}/${w.name}`, w.identity]));
  for (const s of services) {
    const ids = new Set<string>();
    for (const w of s.workloads) {
      const id = workloadIdentity.get(`${w.kind}/${w.namespace}/${w.name}`);
      if (id !== undefined) ids.add(id);
    }
    for (const id of ids) {
      const served = portsByIdentity.get(id) ?? new Set<number>();
      const targets = targetsByIdentity.get(id) ?? new Map<number, Set<number>>();
      for (const p of s.ports) {
        served.add(p.port);
        const behind = targets.get(p.port) ?? new Set<number>();
        // A named target port is resolved per endpoint; a number is the same everywhere.
        if (typeof p.targetPort === 'number') behind.add(p.targetPort);
        for (const e of s.endpoints) for (const ep of e.ports) if (ep.name === p.name) behind.add(ep.port);
        for (const b of behind) served.add(b);
        targets.set(p.port, behind);
      }
      portsByIdentity.set(id, served);
      targetsByIdentity.set(id, targets);
    }
  }
  return { portsByIdentity, targetsByIdentity };
}

/** What resolving TrafficTargets needs from other stages; conditions are reported into `conditions`. */
export interface AccessContext {
  readonly settings: MeshSettings;
  readonly rejected: ReadonlySet<string>;
  readonly groups: ReadonlyMap<string, HttpRouteGroupModel>;
  readonly l4: ReadonlyMap<string, L4RouteModel>;
  /** HTTP matches left out of their groups, as `<ns>/<group>/<match>`. */
  readonly rejectedMatches: ReadonlySet<string>;
  /** `namespace/serviceAccount` pairs that are defined or used by a workload. */
  readonly knownAccounts: ReadonlySet<string>;
  /** Ports served to each identity: service ports, numeric target ports and endpoint ports. */
  readonly portsByIdentity: ReadonlyMap<string, ReadonlySet<number>>;
  /** Per identity, the target ports behind each Service port number of the Services it backs. */
  readonly targetsByIdentity: ReadonlyMap<string, ReadonlyMap<number, ReadonlySet<number>>>;
  /** IdentityBindings, for v1alpha4 subjects that name one. */
  readonly bindings: Bindings;
  readonly conditions: Condition[];
}

function checkAccount(t: TrafficTarget, id: IdentityModel, field: string, ctx: AccessContext): void {
  // Kubernetes creates `default` in every namespace, so it is always known.
  if (id.serviceAccount === 'default' || ctx.knownAccounts.has(key(id.namespace, id.serviceAccount))) return;
  ctx.conditions.push(
    condition(
      subjectOf(t),
      'UnknownServiceAccount',
      `${field} names ServiceAccount ${id.namespace}/${id.serviceAccount}, which is neither defined nor used by any workload, so this part has no effect yet; create the ServiceAccount or fix the name`,
      field,
    ),
  );
}

const RULE_KINDS = ['HTTPRouteGroup', 'TCPRoute', 'UDPRoute'] as const;

/** Ports as the destination's inbound side sees them; the rule is on `L4AccessRule.inboundPorts`. */
function inboundPorts(identity: string, ports: readonly number[], ctx: AccessContext): number[] {
  const targets = ctx.targetsByIdentity.get(identity);
  const out = new Set(ports);
  for (const p of ports) for (const t of targets?.get(p) ?? []) out.add(t);
  return [...out].sort((a, b) => a - b);
}

function resolveRule(t: TrafficTarget, i: number, identity: string, ctx: AccessContext): AccessRule | null {
  const rule = t.rules[i]!;
  const field = `${t.paths.rules}[${i}]`;
  const subject = subjectOf(t);
  if (!(RULE_KINDS as readonly string[]).includes(rule.kind)) {
    ctx.conditions.push(
      condition(
        subject,
        'UnsupportedRuleKind',
        `${field}.kind ${JSON.stringify(rule.kind)} is not a route kind, so the rule is ignored; use HTTPRouteGroup, TCPRoute or UDPRoute`,
        `${field}.kind`,
      ),
    );
    return null;
  }
  const ns = rule.namespace ?? t.meta.namespace;
  const k = key(ns, rule.name);
  const found = rule.kind === 'HTTPRouteGroup' ? ctx.groups.get(k) : ctx.l4.get(`${rule.kind}/${k}`);
  if (!found) {
    ctx.conditions.push(
      condition(
        subject,
        'RouteNotFound',
        `${field}.name ${JSON.stringify(rule.name)} ${notFound(ctx.rejected, rule.kind, ns, rule.name)}, so the rule allows nothing; ${createOrFix(ctx.rejected, rule.kind, ns, rule.name)}`,
        `${field}.name`,
      ),
    );
    return null;
  }
  const names = rule.matches && rule.matches.length > 0 ? rule.matches : null;
  if ('kind' in found) {
    const l4Rule: AccessRule = {
      kind: found.kind,
      name: found.name,
      ports: found.ports,
      inboundPorts: found.ports === null ? null : inboundPorts(identity, found.ports, ctx),
    };
    if (names === null) return l4Rule;
    if (found.matchName === null) {
      ctx.conditions.push(
        condition(
          subject,
          'MatchesOnL4Route',
          `${field}.matches lists match names, but ${found.kind} ${ns}/${found.name} has no named match, so the rule is ignored rather than allow more than meant; remove matches from the rule or name the route's match (spec.matches.name)`,
          `${field}.matches`,
        ),
      );
      return null;
    }
    let named = false;
    for (const [j, n] of names.entries()) {
      if (n === found.matchName) {
        named = true;
        continue;
      }
      ctx.conditions.push(
        condition(
          subject,
          'MatchNotFound',
          `${field}.matches[${j}] names ${JSON.stringify(n)}, which ${found.kind} ${ns}/${found.name} does not have (it has: ${found.matchName}), so that name allows nothing; fix the name or add the match`,
          `${field}.matches[${j}]`,
        ),
      );
    }
    return named ? l4Rule : null;
  }
  if (names === null) return { kind: 'HTTPRouteGroup', name: found.name, matches: found.matches };
  const matches: HttpMatch[] = [];
  for (const [j, n] of names.entries()) {
    const m = found.matches.find((x) => x.name === n);
    if (m) {
      matches.push(m);
      continue;
    }
    if (ctx.rejectedMatches.has(`${ns}/${found.name}/${n}`)) {
      ctx.conditions.push(
        condition(
          subject,
          'MatchNotFound',
          `${field}.matches[${j}] names ${JSON.stringify(n)}, which HTTPRouteGroup ${ns}/${found.name} has but leaves out as invalid (see its own condition), so that name allows nothing; fix HTTPRouteGroup ${ns}/${found.name}`,
          `${field}.matches[${j}]`,
        ),
      );
      continue;
    }
    const available = found.matches.map((x) => x.name).join(', ') || 'none';
    ctx.conditions.push(
      condition(
        subject,
        'MatchNotFound',
        `${field}.matches[${j}] names ${JSON.stringify(n)}, which HTTPRouteGroup ${ns}/${found.name} does not have (it has: ${available}), so that name allows nothing; fix the name or add the match`,
        `${field}.matches[${j}]`,
      ),
    );
  }
  if (matches.length === 0) return null;
  return { kind: 'HTTPRouteGroup', name: found.name, matches };
}

/** Merges rules naming the same route (union of what they allow) and sorts them by kind then name. */
function mergeRules(rules: readonly AccessRule[]): AccessRule[] {
  const merged = new Map<string, AccessRule>();
  for (const r of rules) {
    const k = `${r.kind}/${r.name}`;
    const prev = merged.get(k);
    if (!prev) {
      merged.set(k, r);
    } else if (prev.kind === 'HTTPRouteGroup' && r.kind === 'HTTPRouteGroup') {
      const byName = new Map(prev.matches.map((m) => [m.name, m]));
      for (const m of r.matches) byName.set(m.name, m);
      merged.set(k, { ...prev, matches: [...byName.values()] });
    }
    // Two L4 rules naming the same route allow the same ports; keeping one is enough.
  }
  return [...merged.values()]
    .map((r) =>
      r.kind === 'HTTPRouteGroup' ? { ...r, matches: [...r.matches].sort((a, b) => cmp(a.name, b.name)) } : r,
    )
    .sort((a, b) => cmp(a.kind, b.kind) || cmp(a.name, b.name));
}

function checkPorts(
  t: TrafficTarget,
  dest: IdentityModel,
  resolved: readonly { readonly rule: AccessRule; readonly index: number }[],
  ctx: AccessContext,
): void {
  const served = ctx.portsByIdentity.get(dest.identity);
  // Nothing known about the destination's services: nothing to compare against.
  if (!served || served.size === 0) return;
  const who = `the workloads of ServiceAccount ${dest.namespace}/${dest.serviceAccount}`;
  if (t.destinationPort !== null && !served.has(t.destinationPort)) {
    ctx.conditions.push(
      condition(
        subjectOf(t),
        'PortNotServed',
        `${t.paths.destination}.port ${t.destinationPort} is not a port of any Service of ${who}, so this target allows nothing there; use one of ${[...served].sort((a, b) => a - b).join(', ')}`,
        `${t.paths.destination}.port`,
      ),
    );
  }
  for (const { rule: r, index } of resolved) {
    if (r.kind === 'HTTPRouteGroup' || r.ports === null) continue;
    const unserved = r.ports.filter((p) => !served.has(p));
    if (unserved.length === 0) continue;
    const routeNs = t.rules[index]!.namespace ?? t.meta.namespace;
    ctx.conditions.push(
      condition(
        subjectOf(t),
        'PortNotServed',
        `${r.kind} ${routeNs}/${r.name} allows port ${portList(unserved)}, which no Service of ${who} serves; check the port numbers in the ${r.kind}`,
        `${t.paths.rules}[${index}].name`,
      ),
    );
  }
}

/** The API group of IdentityBinding, which a v1alpha4 subject may write as `group`. */
const ACCESS_GROUP = 'access.smi-spec.io';

/**
 * The kind of a TrafficTarget subject Weft can use, or null (with a condition) when it cannot:
 * a ServiceAccount in every version, an IdentityBinding from v1alpha4 on.
 */
function subjectKind(
  t: TrafficTarget,
  s: Subject,
  field: string,
  effect: string,
  ctx: AccessContext,
): 'ServiceAccount' | 'IdentityBinding' | null {
  const v1alpha4 = t.apiVersion === `${ACCESS_GROUP}/v1alpha4`;
  let problem: string | null = null;
  let at = `${field}.kind`;
  if (s.kind === 'ServiceAccount') {
    if (s.group === null) return 'ServiceAccount';
    problem = `${field}.group ${JSON.stringify(s.group)} is not the group of ServiceAccount (the core group, written as no group), so ${effect}; remove group`;
    at = `${field}.group`;
  } else if (s.kind === 'IdentityBinding' && v1alpha4) {
    if (s.group === null || s.group === ACCESS_GROUP) return 'IdentityBinding';
    problem = `${field}.group ${JSON.stringify(s.group)} is not the group of IdentityBinding, so ${effect}; write group: ${ACCESS_GROUP}`;
    at = `${field}.group`;
  } else if (s.kind === 'IdentityBinding') {
    problem = `${field}.kind IdentityBinding needs ${ACCESS_GROUP}/v1alpha4 (this TrafficTarget is ${t.apiVersion}), so ${effect}; write the TrafficTarget as ${ACCESS_GROUP}/v1alpha4 or name a ServiceAccount`;
  } else {
    problem = v1alpha4
      ? `${field}.kind ${JSON.stringify(s.kind)} is not supported, so ${effect}; name a ServiceAccount or an IdentityBinding`
      : `${field}.kind ${JSON.stringify(s.kind)} is not supported, so ${effect}; ${field === t.paths.destination ? 'name a ServiceAccount (kind: ServiceAccount)' : 'use kind ServiceAccount'}`;
  }
  ctx.conditions.push(condition(subjectOf(t), 'UnsupportedSubjectKind', problem, at));
  return null;
}

/** The binding a subject names; null (with a condition) when there is none to use. */
function bindingOf(t: TrafficTarget, s: Subject, field: string, ctx: AccessContext): ResolvedBinding | null {
  const ns = s.namespace ?? t.meta.namespace;
  const k = key(ns, s.name);
  const found = ctx.bindings.byKey.get(k);
  if (found) return found;
  const subject = subjectOf(t);
  if (ctx.bindings.invalid.has(k) || ctx.rejected.has(`IdentityBinding/${k}`)) {
    ctx.conditions.push(
      condition(
        subject,
        'IdentityBindingNotFound',
        `${field}.name ${JSON.stringify(s.name)} names IdentityBinding ${k}, which was rejected (see its own condition), so it grants nothing; fix IdentityBinding ${k}`,
        `${field}.name`,
      ),
    );
    return null;
  }
  const elsewhere = (ctx.bindings.namespacesByName.get(s.name) ?? []).filter((n) => n !== ns);
  if (elsewhere.length > 0) {
    // A destination binding must be in the TrafficTarget's namespace, so only a source can move.
    const fix =
      field === t.paths.destination
        ? `create IdentityBinding ${s.name} in namespace ${ns}`
        : `set ${field}.namespace to ${elsewhere[0]} or create IdentityBinding ${s.name} in namespace ${ns}`;
    ctx.conditions.push(
      condition(
        subject,
        'IdentityBindingInOtherNamespace',
        `${field} names IdentityBinding ${k}, which does not exist, but ${elsewhere.length === 1 ? 'namespace' : 'namespaces'} ${elsewhere.join(', ')} ${elsewhere.length === 1 ? 'has' : 'have'} an IdentityBinding of that name; a binding declares identities of its own namespace only, so it grants nothing here; ${fix}`,
        `${field}.namespace`,
      ),
    );
    return null;
  }
  ctx.conditions.push(
    condition(
      subject,
      'IdentityBindingNotFound',
      `${field}.name ${JSON.stringify(s.name)} is not an IdentityBinding in namespace ${ns}, so it grants nothing until one is created; create the IdentityBinding or fix the name`,
      `${field}.name`,
    ),
  );
  return null;
}

/** A TrafficTarget's models: one per destination identity (see {@link AccessModel.destination}). */
function buildTarget(t: TrafficTarget, ctx: AccessContext): AccessModel[] {
  const ns = t.meta.namespace;
  const subject = subjectOf(t);
  const dField = t.paths.destination;
  const destKind = subjectKind(t, t.destination, dField, 'the TrafficTarget is not served', ctx);
  if (destKind === null) return [];
  const destNs = t.destination.namespace ?? ns;
  if (destNs !== ns) {
    ctx.conditions.push(
      condition(
        subject,
        'DestinationNamespaceMismatch',
        `${dField}.namespace ${JSON.stringify(destNs)} differs from the TrafficTarget's namespace ${JSON.stringify(ns)}; access is granted only by a TrafficTarget in the destination's own namespace, so it is not served; move the TrafficTarget to namespace ${destNs}`,
        `${dField}.namespace`,
      ),
    );
    return [];
  }
  let destinations: readonly IdentityModel[];
  let destLabel: string;
  if (destKind === 'ServiceAccount') {
    const destination = identityModel(ns, t.destination.name, ctx.settings.trustDomain);
    checkAccount(t, destination, `${dField}.name`, ctx);
    destinations = [destination];
    destLabel = `${ns}/${t.destination.name}`;
  } else {
    const binding = bindingOf(t, t.destination, dField, ctx);
    if (binding === null) return [];
    destinations = binding.accounts;
    destLabel = `IdentityBinding ${ns}/${t.destination.name}`;
    if (destinations.length === 0) {
      ctx.conditions.push(
        condition(
          subject,
          'NoDestination',
          `${dField} names IdentityBinding ${ns}/${t.destination.name}, which binds no ServiceAccount of namespace ${ns} (yet), so this TrafficTarget applies to no workload; bind the destination's ServiceAccount, pods or SPIFFE IDs in it`,
          dField,
        ),
      );
      return [];
    }
  }
  const sources = new Map<string, IdentityModel>();
  const peers = new Set<string>();
  for (const [i, s] of t.sources.entries()) {
    const field = `${t.paths.sources}[${i}]`;
    const kind = subjectKind(t, s, field, 'this source is ignored', ctx);
    if (kind === null) continue;
    if (kind === 'ServiceAccount') {
      const id = identityModel(s.namespace ?? ns, s.name, ctx.settings.trustDomain);
      checkAccount(t, id, `${field}.name`, ctx);
      sources.set(id.identity, id);
      continue;
    }
    const binding = bindingOf(t, s, field, ctx);
    for (const id of binding?.accounts ?? []) sources.set(id.identity, id);
    for (const id of binding?.peers ?? []) peers.add(id);
  }
  if (sources.size === 0 && peers.size === 0) {
    ctx.conditions.push(
      condition(
        subject,
        'NoSources',
        `${t.paths.sources} has no usable ServiceAccount, so this TrafficTarget allows nothing; list the ServiceAccounts that may call ${destLabel}`,
        t.paths.sources,
      ),
    );
  }
  const out: AccessModel[] = [];
  for (const destination of destinations) {
    const resolved: { rule: AccessRule; index: number }[] = [];
    for (let i = 0; i < t.rules.length; i++) {
      const rule = resolveRule(t, i, destination.identity, ctx);
      if (rule) resolved.push({ rule, index: i });
    }
    const rules = mergeRules(resolved.map((r) => r.rule));
    checkPorts(t, destination, resolved, ctx);
    // Reported once, by the first destination: each one resolves the same rules.
    if (rules.length === 0 && out.length === 0) {
      ctx.conditions.push(
        condition(
          subject,
          'NoRules',
          `${t.paths.rules} has no usable rule, so this TrafficTarget allows nothing; add a rule naming an HTTPRouteGroup, TCPRoute or UDPRoute`,
          t.paths.rules,
        ),
      );
    }
    out.push({
      namespace: ns,
      name: t.meta.name,
      destination,
      destinationPort: t.destinationPort,
      destinationInboundPorts:
        t.destinationPort === null ? null : inboundPorts(destination.identity, [t.destinationPort], ctx),
      sources: [...sources.values()].sort((a, b) => cmp(a.identity, b.identity)),
      peerIdentities: [...peers].sort(),
      rules,
    });
  }
  return out;
}

/** Builds every served TrafficTarget, in the order of `targets`; ServiceAccounts and workloads say which accounts are known. */
export function buildAccess(
  targets: readonly TrafficTarget[],
  serviceAccounts: readonly ServiceAccount[],
  workloads: readonly WorkloadModel[],
  ports: IdentityPorts,
  shared: Pick<
    AccessContext,
    'settings' | 'rejected' | 'groups' | 'l4' | 'rejectedMatches' | 'bindings' | 'conditions'
  >,
): AccessModel[] {
  const knownAccounts = new Set([
    ...serviceAccounts.map((a) => key(a.meta.namespace, a.meta.name)),
    ...workloads.map((w) => key(w.namespace, w.serviceAccount)),
  ]);
  const ctx: AccessContext = { ...shared, ...ports, knownAccounts };
  return targets.flatMap((t) => buildTarget(t, ctx));
}
