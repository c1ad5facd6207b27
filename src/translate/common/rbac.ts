/**
 * Builders for `envoy.config.rbac.v3` messages, and the policies a workload port gets from the
 * TrafficTargets naming its identity. Both flavors use them: Envoy in its HTTP and network RBAC
 * filters, proxyless gRPC in its server listeners' RBAC HTTP filter (gRPC A41).
 *
 * Semantics (DESIGN.md, "SMI semantics we commit to"):
 * - Deny by default: the rules are an ALLOW list; a port no TrafficTarget covers gets an ALLOW
 *   list without policies, which denies everything.
 * - Permissive mode: one policy, `permissive`, allowing any principal any request.
 * - One policy per TrafficTarget rule, named `<ns>/<tt>|<kind>/<name>`. Its principals are the
 *   target's sources, its permissions the rule's:
 *   - HTTPRouteGroup: one permission per allowed match (a rule without `matches` already lists
 *     every match of its group in the model); only on ports that carry HTTP.
 *   - TCPRoute: `any` on the route's ports (every port when it names none), HTTP included: a
 *     TCPRoute-only target allows all traffic on its ports.
 *   - UDPRoute: nothing here; UDP never reaches these filters.
 * - A target's `destination.port` limits every rule to that port.
 * - Principals: with mTLS, the SPIFFE ID in the peer certificate (`authenticated.principal_name`).
 *   Without mTLS there is no identity to check: callers are named by the addresses of the source
 *   identity's workloads (`direct_remote_ip`). That is address-based filtering for development,
 *   not identity: anything that can use such an address passes.
 */
import type { AccessModel, HttpMatch } from '../../smi/model';
import * as names from '../names';
import type { JsonObject } from '../types';
import { hostCidr } from './core';
import { exactString, headerMatcher, methodString, pathMatcher, regexString } from './matchers';

/** Permission: anything. */
export function anyPermission(): JsonObject {
  return { any: true };
}

/** Principal: anyone. */
export function anyPrincipal(): JsonObject {
  return { any: true };
}

/**
 * Permission for one SMI HTTP match: every present part must match (path start-anchored, method
 * through `:method`, each header as a full-match regex); a match with no parts allows anything.
 */
export function httpPermission(m: HttpMatch): JsonObject {
  const rules: JsonObject[] = [];
  if (m.pathRegex !== null) rules.push({ url_path: pathMatcher(m.pathRegex) });
  if (m.methods !== null) rules.push({ header: headerMatcher(':method', methodString(m.methods)) });
  for (const h of m.headers) rules.push({ header: headerMatcher(h.name, regexString(h.value)) });
  if (rules.length === 0) return anyPermission();
  if (rules.length === 1) return rules[0]!;
  return { and_rules: { rules } };
}

/** Principal: the peer certificate carries this SPIFFE ID (URI SAN). */
export function identityPrincipal(identity: string): JsonObject {
  return { authenticated: { principal_name: exactString(identity) } };
}

/**
 * Principals for a caller's address (plaintext mode). A server listening on a dual-stack socket
 * sees IPv4 peers as IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`), so an IPv4 address is given in
 * both forms.
 */
export function addressPrincipals(ip: string): JsonObject[] {
  if (ip.includes(':')) return [{ direct_remote_ip: hostCidr(ip) }];
  return [{ direct_remote_ip: hostCidr(ip) }, { direct_remote_ip: hostCidr(`::ffff:${ip}`) }];
}

/** One RBAC policy. Both lists must be non-empty (Envoy rejects empty ones). */
export interface Policy {
  readonly permissions: JsonObject[];
  readonly principals: JsonObject[];
}

/** `envoy.config.rbac.v3.RBAC`: an ALLOW list; policies in name order. */
export function allowRules(policies: ReadonlyMap<string, Policy>): JsonObject {
  const out: JsonObject = {};
  for (const name of [...policies.keys()].sort()) {
    const p = policies.get(name)!;
    out[name] = { permissions: p.permissions, principals: p.principals };
  }
  return { action: 'ALLOW', policies: out };
}

/** What {@link inboundRules} needs to know about one workload port. */
export interface InboundRbacInput {
  /** TrafficTargets whose destination is the workload's identity. */
  readonly access: readonly AccessModel[];
  /** The port on the workload the traffic arrives on. */
  readonly port: number;
  /** Whether the port carries HTTP (so HTTPRouteGroup rules can apply). */
  readonly http: boolean;
  /** Permissive mode: allow everything. */
  readonly permissive: boolean;
  /** Principals standing for a source identity (empty: that source cannot be recognized). */
  readonly principals: (identity: string) => JsonObject[];
}

/** Whether a port is in a list where null means every port. */
function covers(ports: readonly number[] | null, port: number): boolean {
  return ports === null || ports.includes(port);
}

/** The RBAC rules of one workload port; see the file comment for the semantics. */
export function inboundRules(i: InboundRbacInput): JsonObject {
  const policies = new Map<string, Policy>();
  if (i.permissive) {
    policies.set(names.PERMISSIVE_POLICY, { permissions: [anyPermission()], principals: [anyPrincipal()] });
    return allowRules(policies);
  }
  for (const a of i.access) {
    if (!covers(a.destinationInboundPorts, i.port)) continue;
    const principals = a.sources.flatMap((s) => i.principals(s.identity));
    if (principals.length === 0) continue;
    for (const rule of a.rules) {
      let permissions: JsonObject[] = [];
      if (rule.kind === 'TCPRoute') {
        if (covers(rule.inboundPorts, i.port)) permissions = [anyPermission()];
      } else if (rule.kind === 'HTTPRouteGroup' && i.http) {
        permissions = rule.matches.map(httpPermission);
      }
      if (permissions.length === 0) continue;
      policies.set(names.rbacPolicy(a.namespace, a.name, rule.kind, rule.name), { permissions, principals });
    }
  }
  return allowRules(policies);
}
