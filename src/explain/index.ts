/**
 * `weft explain`: would a call from one identity to a service port be allowed, by which
 * TrafficTarget and rule, or why not (the closest rule and what did not match); and which split
 * backends, with which weights, it goes to.
 *
 * It reads the production model (`buildModel`) and decides with the translators' semantics, so its
 * answer is what the compiled config does:
 * - routing as `translate/routes.ts`: a split on the root service covers the port when a backend
 *   serves it; with `matches`, matching requests are split and the rest go to the root; all
 *   weights 0 go to the endpoint-less blackhole;
 * - access as `rbacPolicies` in `translate/common.ts`, checked at each destination's inbound port
 *   (the target port): `destination.port` and TCPRoute ports as inbound ports; HTTP rules only on
 *   HTTP ports (http, grpc); a TCPRoute rule allows everything on its ports, HTTP included;
 *   `pathRegex` anchored at the start only (Envoy: `(?:re).*` over the whole path), methods `null`
 *   for any, header values as RE2 regexes over the whole value; permissive mode allows all.
 */
import { RE2 } from 're2-wasm';
import {
  type AccessModel,
  type HttpMatch,
  identityOf,
  type MeshModel,
  type ServiceModel,
  type ServicePortModel,
} from '../smi/model';

/** The call to explain. */
export interface ExplainRequest {
  /** The caller's ServiceAccount. */
  readonly from: { readonly namespace: string; readonly serviceAccount: string };
  /** The Service and the port the caller dials. */
  readonly to: { readonly namespace: string; readonly service: string; readonly port: number };
  /** HTTP method; default GET on http ports, POST on grpc ports. */
  readonly method?: string;
  /** Request path; default `/`. */
  readonly path?: string;
  /** Request headers, names case-insensitive. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** One access decision at one destination. */
export interface AccessVerdict {
  /** The destination identity (the ServiceAccount the destination's workloads run as). */
  readonly destination: string;
  /** The port the destination's sidecar sees (the Service's target port), or null if unknown. */
  readonly inboundPort: number | null;
  readonly allowed: boolean;
  /** What allowed it: permissive mode, or a TrafficTarget's rule (and match). */
  readonly allowedBy?: {
    readonly trafficTarget?: string;
    readonly rule?: string;
    readonly match?: string;
    readonly permissive?: boolean;
  };
  /** When denied: the rule that came closest and what it did not match. */
  readonly closest?: {
    readonly trafficTarget: string;
    readonly rule: string;
    readonly failed: readonly string[];
  };
  /** Why, in one sentence. */
  readonly reason: string;
}

/** Where the call goes: one backend Service, its weight and its share. */
export interface RouteBackend {
  readonly service: string;
  readonly weight: number;
  /** Share in percent (rounded to 0.1). */
  readonly percent: number;
  /** Access at this backend's workloads, one verdict per destination identity. */
  readonly access: readonly AccessVerdict[];
}

/** What `weft explain` answers. */
export interface Explanation {
  /** True when every backend that gets traffic allows the call. */
  readonly allowed: boolean;
  readonly source: string;
  readonly destination: string;
  /** The request as it was judged (defaults filled in). */
  readonly request: { method: string; path: string; headers: Record<string, string>; protocol: string };
  /** `split <ns>/<name>` with the match that applied, or `no TrafficSplit`, or the blackhole. */
  readonly routing: string;
  readonly backends: readonly RouteBackend[];
  /** One paragraph for a person. */
  readonly summary: string;
}

/** A call that cannot be explained: the destination does not exist, say. */
export class ExplainError extends Error {}

const compiled = new Map<string, RE2>();
function re(pattern: string): RE2 {
  let r = compiled.get(pattern);
  if (!r) {
    r = new RE2(pattern, 'u');
    compiled.set(pattern, r);
  }
  return r;
}

interface Call {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** What of `m` the call does not meet; empty when it matches. */
export function matchFailures(m: HttpMatch, call: Call): string[] {
  const failed: string[] = [];
  // Envoy matches `(?:re).*` against the whole path: a match anchored at the start only.
  if (m.pathRegex !== null && !re(`^(?:${m.pathRegex})`).test(call.path))
    failed.push(`path ${call.path} does not match pathRegex ${m.pathRegex} (anchored at the start)`);
  if (m.methods !== null && !m.methods.includes(call.method))
    failed.push(`method ${call.method} is not one of ${m.methods.join(', ')}`);
  for (const h of m.headers) {
    const v = call.headers[h.name];
    if (v === undefined) failed.push(`header ${h.name} is missing (wanted ${h.value})`);
    else if (!re(`^(?:${h.value})$`).test(v)) failed.push(`header ${h.name}: ${v} does not match ${h.value}`);
  }
  return failed;
}

function portOf(svc: ServiceModel, port: number): ServicePortModel | undefined {
  return (
    svc.ports.find((p) => p.port === port && p.protocol === 'TCP') ?? svc.ports.find((p) => p.port === port)
  );
}

function inboundPortOf(svc: ServiceModel, p: ServicePortModel): number | null {
  if (typeof p.targetPort === 'number') return p.targetPort;
  for (const ep of svc.endpoints) {
    const e = ep.ports.find((x) => x.name === p.name);
    if (e) return e.port;
  }
  return null;
}

interface Candidate {
  trafficTarget: string;
  rule: string;
  match?: string;
  failed: string[];
}

/** Access to one destination identity on one inbound port, as the inbound RBAC decides it. */
function judgeAccess(
  model: MeshModel,
  destination: string,
  inboundPort: number | null,
  http: boolean,
  source: string,
  call: Call,
): AccessVerdict {
  if (model.settings.permissive)
    return {
      destination,
      inboundPort,
      allowed: true,
      allowedBy: { permissive: true },
      reason: 'permissive mode (MeshConfig spec.permissive: true) allows every call',
    };
  const targets = model.access.filter((a: AccessModel) => a.destination.identity === destination);
  const candidates: Candidate[] = [];
  for (const a of targets) {
    const tt = `${a.namespace}/${a.name}`;
    const base: string[] = [];
    if (!a.sources.some((s) => s.identity === source))
      base.push(
        `sources are ${[...a.sources.map((s) => `${s.namespace}/${s.serviceAccount}`), ...a.peerIdentities].join(', ') || 'none'}, not the caller`,
      );
    if (
      a.destinationInboundPorts !== null &&
      (inboundPort === null || !a.destinationInboundPorts.includes(inboundPort))
    )
      base.push(
        `destination.port allows port ${a.destinationInboundPorts.join(', ')}, the call arrives on ${inboundPort ?? 'an unknown port'}`,
      );
    if (a.rules.length === 0)
      candidates.push({ trafficTarget: tt, rule: '-', failed: [...base, 'it has no usable rules'] });
    for (const rule of a.rules) {
      const ruleName = `${rule.kind}/${rule.name}`;
      if (rule.kind !== 'HTTPRouteGroup') {
        const failed = [...base];
        if (rule.kind === 'UDPRoute') failed.push('a UDPRoute rule allows UDP only');
        else if (
          rule.inboundPorts !== null &&
          (inboundPort === null || !rule.inboundPorts.includes(inboundPort))
        )
          failed.push(
            `the TCPRoute allows ports ${rule.ports?.join(', ')}, the call arrives on ${inboundPort ?? 'an unknown port'}`,
          );
        candidates.push({ trafficTarget: tt, rule: ruleName, failed });
        continue;
      }
      if (!http) {
        candidates.push({
          trafficTarget: tt,
          rule: ruleName,
          failed: [
            ...base,
            'the port is not HTTP (appProtocol or port name), so HTTPRouteGroup rules do not apply',
          ],
        });
        continue;
      }
      if (rule.matches.length === 0)
        candidates.push({
          trafficTarget: tt,
          rule: ruleName,
          failed: [...base, 'the rule names no usable match'],
        });
      for (const m of rule.matches)
        candidates.push({
          trafficTarget: tt,
          rule: ruleName,
          match: m.name,
          failed: [...base, ...matchFailures(m, call)],
        });
    }
  }
  const winner = candidates.find((c) => c.failed.length === 0);
  if (winner)
    return {
      destination,
      inboundPort,
      allowed: true,
      allowedBy: {
        trafficTarget: winner.trafficTarget,
        rule: winner.rule,
        ...(winner.match ? { match: winner.match } : {}),
      },
      reason: `allowed by TrafficTarget ${winner.trafficTarget}, rule ${winner.rule}${winner.match ? `, match ${winner.match}` : ''}`,
    };
  if (candidates.length === 0)
    return {
      destination,
      inboundPort,
      allowed: false,
      reason: `denied: no TrafficTarget has destination ${destination} (deny by default); add one naming the caller as a source`,
    };
  const closest = [...candidates].sort((x, y) => x.failed.length - y.failed.length)[0]!;
  return {
    destination,
    inboundPort,
    allowed: false,
    closest: {
      trafficTarget: closest.trafficTarget,
      rule: `${closest.rule}${closest.match ? ` match ${closest.match}` : ''}`,
      failed: closest.failed,
    },
    reason: `denied: no rule allows it; closest is TrafficTarget ${closest.trafficTarget}, rule ${closest.rule}${closest.match ? ` match ${closest.match}` : ''}: ${closest.failed.join('; ')}`,
  };
}

/** Explains one call against the model. Throws {@link ExplainError} when the destination is unknown. */
export function explain(model: MeshModel, req: ExplainRequest): Explanation {
  const td = model.settings.trustDomain;
  const source = identityOf(req.from.namespace, req.from.serviceAccount, td);
  const svcKey = `${req.to.namespace}/${req.to.service}`;
  const svcOf = (ns: string, name: string): ServiceModel | undefined =>
    model.services.find((s) => s.namespace === ns && s.name === name);
  const root = svcOf(req.to.namespace, req.to.service);
  if (!root)
    throw new ExplainError(
      `no Service ${svcKey} in the mesh (is its namespace labelled weft.dev/mesh=enabled?)`,
    );
  const rootPort = portOf(root, req.to.port);
  if (!rootPort)
    throw new ExplainError(
      `Service ${svcKey} has no port ${req.to.port}; its ports are ${root.ports.map((p) => p.port).join(', ') || 'none'}`,
    );
  const http = rootPort.appProtocol === 'http' || rootPort.appProtocol === 'grpc';
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = v;
  const call: Call = {
    method: (req.method ?? (rootPort.appProtocol === 'grpc' ? 'POST' : 'GET')).toUpperCase(),
    path: req.path ?? '/',
    headers,
  };

  // Routing, as translate/routes.ts builds the outbound routes of this port.
  const split = model.splits.find(
    (s) => s.namespace === req.to.namespace && s.rootService === req.to.service,
  );
  let routing = 'no TrafficSplit on this service: the call goes to the service itself';
  let targets: { service: string; weight: number }[] = [{ service: req.to.service, weight: 1 }];
  if (split?.backends.some((b) => b.ports.includes(req.to.port))) {
    const name = `${split.namespace}/${split.name}`;
    let covered = split.matches === null;
    let which = '';
    if (split.matches !== null && http) {
      const hit = split.matches.find((m) => matchFailures(m, call).length === 0);
      if (hit) {
        covered = true;
        which = ` (match ${hit.routeGroup}/${hit.name})`;
      }
    }
    if (!http && split.matches !== null) covered = false;
    if (covered) {
      const backends = split.backends.filter((b) => b.ports.includes(req.to.port));
      const total = backends.reduce((n, b) => n + b.weight, 0);
      if (total === 0) {
        routing = `TrafficSplit ${name}${which}: every weight is 0, so the call goes to the endpoint-less blackhole and fails`;
        targets = [];
      } else {
        routing = `TrafficSplit ${name}${which}`;
        targets = backends.map((b) => ({ service: b.service, weight: b.weight }));
      }
    } else {
      routing = `TrafficSplit ${name} has matches and the call meets none of them: it goes to the root service`;
    }
  }
  const total = targets.reduce((n, t) => n + t.weight, 0);
  const backends: RouteBackend[] = targets.map((t) => {
    const svc = svcOf(req.to.namespace, t.service);
    const port = svc ? portOf(svc, req.to.port) : undefined;
    const inbound = svc && port ? inboundPortOf(svc, port) : null;
    const destinations = [
      ...new Set(
        (svc?.workloads ?? [])
          .map((w) =>
            model.workloads.find(
              (x) => x.kind === w.kind && x.namespace === w.namespace && x.name === w.name,
            ),
          )
          .filter((w) => w !== undefined)
          .map((w) => w.identity),
      ),
    ].sort();
    return {
      service: `${req.to.namespace}/${t.service}`,
      weight: t.weight,
      percent: total === 0 ? 0 : Math.round((t.weight / total) * 1000) / 10,
      access: destinations.map((d) => judgeAccess(model, d, inbound, http, source, call)),
    };
  });
  const live = backends.filter((b) => b.weight > 0);
  const allowed =
    live.length > 0 && live.every((b) => b.access.length > 0 && b.access.every((a) => a.allowed));
  const lines: string[] = [];
  for (const b of live) {
    if (b.access.length === 0) lines.push(`${b.service}: no workload backs it, so nothing answers the call`);
    for (const a of b.access) lines.push(`${b.service} (${b.percent}%): ${a.reason}`);
  }
  if (live.length === 0) lines.push(routing);
  return {
    allowed,
    source,
    destination: `${svcKey}:${req.to.port}`,
    request: { ...call, protocol: rootPort.appProtocol },
    routing,
    backends,
    summary: lines.join('\n'),
  };
}
