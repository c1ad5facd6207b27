/** Small builders for raw Kubernetes objects used by the input-stage tests. */

/** A raw object, as parsed from YAML. */
export type Raw = Record<string, unknown>;

/** `metadata` with a name, a namespace (`default`) and any extra fields. */
export function meta(name: string, namespace = 'default', extra: Raw = {}): Raw {
  return { name, namespace, ...extra };
}

/** A v1 Service; by default it selects `app: <name>` and serves port 80 to 8080 as `http`. */
export function service(
  name: string,
  opts: { ns?: string; selector?: Record<string, string> | null; ports?: Raw[]; clusterIP?: string } = {},
): Raw {
  const spec: Raw = {
    ports: opts.ports ?? [{ name: 'http', port: 80, targetPort: 8080 }],
  };
  if (opts.selector !== null) spec.selector = opts.selector ?? { app: name };
  if (opts.clusterIP !== undefined) spec.clusterIP = opts.clusterIP;
  return { apiVersion: 'v1', kind: 'Service', metadata: meta(name, opts.ns), spec };
}

/** A v1 Pod labelled `app: <name>`, running as ServiceAccount `<name>`, with container port `web` 8080. */
export function pod(
  name: string,
  opts: {
    ns?: string;
    labels?: Record<string, string>;
    sa?: string;
    ip?: string;
    ready?: boolean;
    ports?: Raw[];
    phase?: string;
  } = {},
): Raw {
  const status: Raw = { phase: opts.phase ?? 'Running' };
  if (opts.ip !== undefined) status.podIP = opts.ip;
  if (opts.ready !== undefined)
    status.conditions = [{ type: 'Ready', status: opts.ready ? 'True' : 'False' }];
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: meta(name, opts.ns, { labels: opts.labels ?? { app: name } }),
    spec: {
      serviceAccountName: opts.sa ?? name,
      containers: [{ name: 'app', ports: opts.ports ?? [{ name: 'web', containerPort: 8080 }] }],
    },
    status,
  };
}

/** An apps/v1 Deployment whose selector and template labels are `app: <name>`. */
export function deployment(
  name: string,
  opts: { ns?: string; labels?: Record<string, string>; sa?: string } = {},
): Raw {
  const labels = opts.labels ?? { app: name };
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(name, opts.ns),
    spec: {
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: { serviceAccountName: opts.sa ?? name, containers: [{ name: 'app' }] },
      },
    },
  };
}

/** A v1 ServiceAccount. */
export function serviceAccount(name: string, ns = 'default'): Raw {
  return { apiVersion: 'v1', kind: 'ServiceAccount', metadata: meta(name, ns) };
}

/** A TrafficSplit (v1alpha4 unless told), optionally with matches and a creation time. */
export function split(
  name: string,
  root: string,
  backends: { service: string; weight: unknown }[],
  opts: { version?: string; ns?: string; matches?: Raw[]; created?: string } = {},
): Raw {
  const spec: Raw = { service: root, backends };
  if (opts.matches) spec.matches = opts.matches;
  const extra: Raw = opts.created ? { creationTimestamp: opts.created } : {};
  return {
    apiVersion: `split.smi-spec.io/${opts.version ?? 'v1alpha4'}`,
    kind: 'TrafficSplit',
    metadata: meta(name, opts.ns, extra),
    spec,
  };
}

/** An HTTPRouteGroup with `matches` where the given version documents it (top level before v1alpha3). */
export function routeGroup(name: string, matches: Raw[], opts: { version?: string; ns?: string } = {}): Raw {
  const version = opts.version ?? 'v1alpha4';
  const topLevel = version === 'v1alpha1' || version === 'v1alpha2';
  const base = {
    apiVersion: `specs.smi-spec.io/${version}`,
    kind: 'HTTPRouteGroup',
    metadata: meta(name, opts.ns),
  };
  return topLevel ? { ...base, matches } : { ...base, spec: { matches } };
}

/** A v1alpha4 TCPRoute with optional ports and match name. */
export function tcpRoute(name: string, ports?: number[], matchName?: string): Raw {
  const matches: Raw = {};
  if (ports) matches.ports = ports;
  if (matchName) matches.name = matchName;
  return {
    apiVersion: 'specs.smi-spec.io/v1alpha4',
    kind: 'TCPRoute',
    metadata: meta(name),
    spec: { matches },
  };
}

/** A v1alpha4 UDPRoute with optional ports. */
export function udpRoute(name: string, ports?: number[]): Raw {
  return {
    apiVersion: 'specs.smi-spec.io/v1alpha4',
    kind: 'UDPRoute',
    metadata: meta(name),
    spec: { matches: ports ? { ports } : {} },
  };
}

/** A TrafficTarget (v1alpha3 unless told) with `spec.destination`, `spec.sources` and `spec.rules`. */
export function target(
  name: string,
  destination: Raw,
  sources: Raw[],
  rules: Raw[],
  opts: { ns?: string; version?: string } = {},
): Raw {
  return {
    apiVersion: `access.smi-spec.io/${opts.version ?? 'v1alpha3'}`,
    kind: 'TrafficTarget',
    metadata: meta(name, opts.ns),
    spec: { destination, sources, rules },
  };
}

/** A ServiceAccount subject for a TrafficTarget. */
export function sa(name: string, namespace?: string): Raw {
  return namespace === undefined
    ? { kind: 'ServiceAccount', name }
    : { kind: 'ServiceAccount', name, namespace };
}

/** An IdentityBinding (`access.smi-spec.io/v1alpha4`) with the given `spec.schemes`. */
export function binding(name: string, schemes: Raw, ns?: string): Raw {
  return {
    apiVersion: 'access.smi-spec.io/v1alpha4',
    kind: 'IdentityBinding',
    metadata: meta(name, ns),
    spec: { schemes },
  };
}

/** An IdentityBinding subject for a v1alpha4 TrafficTarget. */
export function ib(name: string, namespace?: string): Raw {
  const ref: Raw = { kind: 'IdentityBinding', group: 'access.smi-spec.io', name };
  if (namespace !== undefined) ref.namespace = namespace;
  return ref;
}

/** Recursively freezes a value, so any mutation by the code under test throws in strict mode. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** A fixed linear congruential generator of unsigned 32-bit numbers, so tests never use randomness. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s;
  };
}

/** A deterministic permutation (see {@link lcg}). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  const next = lcg(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = next() % (i + 1);
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}
