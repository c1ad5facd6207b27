/**
 * The conformance scenario format: YAML files under `e2e/scenarios/<api>/*.yaml`, one scenario
 * each, plus `e2e/scenarios/workloads.yaml` describing the workloads every scenario runs against.
 * Everything is checked with zod; an error names the file and the field path, so a scenario
 * author sees `split/weights.yaml: steps[2].expect.distribution.echo-v1: ...` rather than a stack.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';

/** The SMI APIs the suite is organized by (one folder and one table each). */
export const APIS = ['access', 'specs', 'split'] as const;
/** One of {@link APIS}. */
export type Api = (typeof APIS)[number];

/** gRPC methods of the echo service a scenario may call. */
export const METHODS = ['Get', 'Put', 'Delete'] as const;

const name = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be a DNS label (lower case, digits, -)');

/** A duration such as `5s`, `500ms`, `1.5s`; parsed to milliseconds. */
const duration = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s)$/, 'must be a duration such as 5s or 500ms')
  .transform((s) => (s.endsWith('ms') ? Number(s.slice(0, -2)) : Number(s.slice(0, -1)) * 1000));

/** `75±10` or `75+-10`: a share in percent and an absolute tolerance in percentage points. */
const share = z
  .union([
    z.string().regex(/^\s*\d+(\.\d+)?\s*(±|\+-)\s*\d+(\.\d+)?\s*$/, 'must look like 75±10 or 75+-10'),
    z.object({ share: z.number().min(0).max(100), tolerance: z.number().min(0).max(100) }).strict(),
  ])
  .transform((v) => {
    if (typeof v !== 'string') return v;
    const [s, t] = v.split(/±|\+-/).map((x) => Number(x.trim())) as [number, number];
    return { share: s, tolerance: t };
  })
  .refine((v) => v.share <= 100, 'a share is a percentage (0-100)');

/** A Kubernetes object as written in a scenario (checked by the API server, not here). */
const kubeObject = z
  .object({
    apiVersion: z.string().min(1),
    kind: z.string().min(1),
    metadata: z.object({ name: z.string().min(1), namespace: z.string().optional() }).passthrough(),
  })
  .passthrough();

/** Objects inline (one or a list), or `{ file: path }` relative to the scenario file. */
const objects = z.union([
  kubeObject,
  z.array(kubeObject).min(1),
  z.object({ file: z.string().min(1) }).strict(),
]);

/** One traffic expectation: calls from a workload to a service port, and what must come back. */
const expectSchema = z
  .object({
    /** Shown in the table; default: generated from the fields. */
    name: z.string().optional(),
    from: name,
    /** `service` or `service:port` (default: the first port of the workloads file). */
    to: z.string().regex(/^[a-z0-9-]+(:\d+)?$/, 'must be service or service:port'),
    method: z.enum(METHODS).default('Get'),
    headers: z.record(z.string(), z.string()).default({}),
    calls: z.number().int().min(1).max(2000).default(20),
    within: duration.default(5000),
    allowed: z.literal(true).optional(),
    /** `true`, or the gRPC status code name every call must fail with (PERMISSION_DENIED, ...). */
    denied: z.union([z.literal(true), z.string().regex(/^[A-Z_]+$/)]).optional(),
    /** Backend (server name) -> share; backends not listed must get nothing. */
    distribution: z.record(z.string(), share).optional(),
    /** Backend -> exact number of calls; backends not listed must get nothing. */
    exact: z.record(z.string(), z.number().int().min(0)).optional(),
  })
  .strict()
  .superRefine((e, ctx) => {
    const outcomes = ['allowed', 'denied', 'distribution', 'exact'].filter(
      (k) => e[k as keyof typeof e] !== undefined,
    );
    if (outcomes.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: `needs exactly one outcome of allowed, denied, distribution, exact (got ${outcomes.join(', ') || 'none'})`,
      });
    }
    if (e.exact) {
      const total = Object.values(e.exact).reduce((a, b) => a + b, 0);
      if (total !== e.calls) {
        ctx.addIssue({
          code: 'custom',
          path: ['exact'],
          message: `counts add up to ${total} but calls is ${e.calls}`,
        });
      }
    }
  });

/** Config-level expectation: the conditions Weft reports on one object. */
const conditionsSchema = z
  .object({
    name: z.string().optional(),
    /** `<Kind>/<namespace>/<name>`; the namespace defaults to the workloads' namespace. */
    object: z
      .string()
      .regex(/^[A-Za-z]+\/([a-z0-9-]*\/)?[a-z0-9.-]+$/, 'must be Kind/name or Kind/namespace/name'),
    /** `none`: no condition with severity Error; or the reason that must be reported. */
    expect: z.union([z.literal('none'), z.object({ reason: z.string().min(1) }).strict()]),
    within: duration.default(5000),
  })
  .strict();

const loadSchema = z
  .object({
    name: name,
    from: name,
    to: z.string().regex(/^[a-z0-9-]+(:\d+)?$/, 'must be service or service:port'),
    method: z.enum(METHODS).default('Get'),
  })
  .strict();

const expectLoadSchema = z
  .object({
    name: name,
    /** Most failed calls tolerated (default 0). */
    failed: z.number().int().min(0).default(0),
    /** Backends that must each have answered at least one call. */
    reached: z.array(z.string()).default([]),
  })
  .strict();

const stepSchema = z.union([
  z.object({ apply: objects }).strict(),
  z.object({ delete: objects }).strict(),
  z.object({ expect: expectSchema }).strict(),
  z.object({ expectConditions: conditionsSchema }).strict(),
  z.object({ load: loadSchema }).strict(),
  z.object({ expectLoad: expectLoadSchema }).strict(),
]);

const scenarioSchema = z
  .object({
    name: z.string().min(1),
    description: z.string().min(1),
    /**
     * A known Weft bug this scenario exposes, described where it is tracked. The scenario still
     * runs and counts as failed; the test suite checks it keeps failing until the bug is fixed.
     */
    knownIssue: z.string().min(1).optional(),
    /**
     * Flavors the scenario cannot apply to, each with the reason (shown in the report): e.g. what
     * a sidecar does not carry. The scenario is not run there, and says so rather than vanishing.
     */
    skip: z
      .object({ grpc: z.string().min(1), envoy: z.string().min(1) })
      .partial()
      .strict()
      .optional(),
    steps: z.array(stepSchema).min(1),
  })
  .strict();

/** Workloads every scenario runs against: one namespace, echo servers, callers and Services. */
const workloadsSchema = z
  .object({
    namespace: name,
    /** Named ports every server serves; Services map `port` to the named target port. */
    ports: z.array(z.object({ name: name, port: z.number().int().min(1).max(65535) }).strict()).min(1),
    servers: z
      .array(
        z.object({ name: name, serviceAccount: name, labels: z.record(z.string(), z.string()) }).strict(),
      )
      .min(1),
    clients: z.array(z.object({ name: name, serviceAccount: name }).strict()).min(1),
    services: z.array(z.object({ name: name, selector: z.record(z.string(), z.string()) }).strict()).min(1),
  })
  .strict();

/** A Kubernetes object a step applies or deletes. */
export type KubeManifest = z.infer<typeof kubeObject>;
/** A parsed traffic expectation (durations in ms, shares parsed). */
export type Expectation = z.infer<typeof expectSchema>;
/** A parsed config-level expectation. */
export type ConditionsExpectation = z.infer<typeof conditionsSchema>;
/** Background traffic started by a `load` step. */
export type LoadSpec = z.infer<typeof loadSchema>;
/** What an `expectLoad` step checks when it stops the traffic. */
export type LoadExpectation = z.infer<typeof expectLoadSchema>;
/** The workloads file. */
export type Workloads = z.infer<typeof workloadsSchema>;

/** A step after loading: `apply`/`delete` objects are resolved (files read, namespaces filled in). */
export type Step =
  | { apply: KubeManifest[] }
  | { delete: KubeManifest[] }
  | { expect: Expectation }
  | { expectConditions: ConditionsExpectation }
  | { load: LoadSpec }
  | { expectLoad: LoadExpectation };

/** A loaded scenario. */
export interface Scenario {
  /** The SMI API (its folder). */
  api: Api;
  /** `<api>/<file name without .yaml>`, unique in the suite. */
  id: string;
  name: string;
  description: string;
  /** See the schema: a known bug that makes this scenario fail. */
  knownIssue?: string;
  /** Flavors it does not apply to, with the reason (see the schema). */
  skip?: Partial<Record<'grpc' | 'envoy', string>>;
  /** The file it came from. */
  file: string;
  steps: Step[];
}

/** A scenario file that is not valid; the message names the file and the field. */
export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
}

function describeIssues(file: string, error: z.ZodError): string {
  return error.issues
    .map((i) => `${file}: ${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`)
    .join('\n');
}

function parseYamlFile(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const out: unknown[] = [];
  for (const d of docs) {
    if (d.errors.length > 0) throw new ScenarioError(`${file}: ${d.errors[0]!.message}`);
    const v = d.toJS() as unknown;
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

/** Loads and checks the workloads file. */
export function loadWorkloads(file: string): Workloads {
  const docs = parseYamlFile(file);
  const r = workloadsSchema.safeParse(docs[0]);
  if (!r.success) throw new ScenarioError(describeIssues(file, r.error));
  return r.data;
}

/**
 * Loads and checks one scenario. `display` is the name used in messages (the path relative to the
 * scenarios folder); `namespace` fills in objects written without one.
 */
export function loadScenario(file: string, namespace: string, display = file): Scenario {
  const docs = parseYamlFile(file);
  if (docs.length !== 1)
    throw new ScenarioError(`${display}: expected one YAML document, found ${docs.length}`);
  const r = scenarioSchema.safeParse(docs[0]);
  if (!r.success) throw new ScenarioError(describeIssues(display, r.error));
  const api = basename(dirname(file));
  if (!(APIS as readonly string[]).includes(api)) {
    throw new ScenarioError(
      `${display}: scenarios live in a folder named after their API (${APIS.join(', ')})`,
    );
  }
  const resolveObjects = (o: z.infer<typeof objects>, at: string): KubeManifest[] => {
    let list: unknown[];
    if (Array.isArray(o)) list = o;
    else if ('file' in o && typeof o.file === 'string' && !('kind' in o)) {
      const p = resolve(dirname(file), o.file);
      try {
        list = parseYamlFile(p);
      } catch (err) {
        throw new ScenarioError(`${display}: ${at}.file: ${(err as Error).message}`);
      }
      const checked = z.array(kubeObject).min(1).safeParse(list);
      if (!checked.success)
        throw new ScenarioError(describeIssues(`${display} (${at}.file ${o.file})`, checked.error));
      list = checked.data;
    } else list = [o];
    return (list as KubeManifest[]).map((m) => ({
      ...m,
      metadata: { ...m.metadata, namespace: m.metadata.namespace ?? namespace },
    }));
  };
  const steps: Step[] = r.data.steps.map((s, i) => {
    if ('apply' in s) return { apply: resolveObjects(s.apply, `steps.${i}.apply`) };
    if ('delete' in s) return { delete: resolveObjects(s.delete, `steps.${i}.delete`) };
    return s as Step;
  });
  return {
    api: api as Api,
    id: `${api}/${basename(file).replace(/\.ya?ml$/, '')}`,
    name: r.data.name,
    description: r.data.description,
    ...(r.data.knownIssue ? { knownIssue: r.data.knownIssue } : {}),
    ...(r.data.skip && Object.keys(r.data.skip).length > 0 ? { skip: r.data.skip } : {}),
    file,
    steps,
  };
}

/** The suite: the workloads and every scenario under `<root>/<api>/*.yaml`, in API then file order. */
export interface Suite {
  root: string;
  workloads: Workloads;
  scenarios: Scenario[];
}

/** Loads `<root>/workloads.yaml` and every scenario; `only` keeps ids containing one of its strings. */
export function loadSuite(root: string, only: readonly string[] = []): Suite {
  const workloads = loadWorkloads(join(root, 'workloads.yaml'));
  const scenarios: Scenario[] = [];
  const errors: string[] = [];
  for (const api of APIS) {
    const dir = join(root, api);
    let files: string[] = [];
    try {
      files = readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f) && statSync(join(dir, f)).isFile())
        .sort();
    } catch {
      continue;
    }
    for (const f of files) {
      const file = join(dir, f);
      try {
        const s = loadScenario(file, workloads.namespace, relative(root, file));
        if (only.length === 0 || only.some((o) => s.id.includes(o))) scenarios.push(s);
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
  }
  if (errors.length > 0) throw new ScenarioError(errors.join('\n'));
  return { root, workloads, scenarios };
}
