/**
 * The offline compile path behind `weft render` and the golden tests: manifests in, per-proxy
 * resources and conditions out, through exactly the stages `weft serve` uses (parse, buildModel,
 * translate, patches, strict checks).
 */

import type { ManifestFile } from '../inputs/folder';
import { type PatchJudge, patchMeshJudged } from '../patch/envoy-judge';
import { extractPatches, type MeshProxy, patchMesh } from '../patch/mesh';
import { buildModel } from '../smi/build';
import { parseYamlObjects } from '../smi/load';
import type { Condition, MeshModel, WorkloadModel } from '../smi/model';
import { type ProxyResources, translateProxy } from '../translate';
import { serviceTargetResolver } from './patch-targets';

/** Options of {@link renderMesh}. */
export interface RenderOptions {
  /** Only this proxy, as `<namespace>/<workload>`. */
  readonly proxy?: string;
  /** Flavors to render (default: envoy). */
  readonly flavors?: readonly ('envoy' | 'grpc')[];
  /** Mutual TLS between proxies (default true). */
  readonly mtls?: boolean;
  /** Namespace of mesh-wide settings and patches (default weft-system). */
  readonly meshNamespace?: string;
  /** Include the mesh model in the output (golden files do; the CLI does not). */
  readonly includeModel?: boolean;
}

/** One rendered proxy. */
export interface RenderedProxy {
  readonly name: string;
  readonly identity: string;
  readonly flavor: 'envoy' | 'grpc';
  readonly resources: ProxyResources;
}

/** A condition as `weft render` prints it. */
export interface RenderedCondition {
  readonly object: string;
  readonly type: string;
  readonly status: string;
  readonly severity: string;
  readonly reason: string;
  readonly field?: string;
  readonly message: string;
}

/** What `weft render` prints. */
export interface RenderOutput {
  readonly model?: MeshModel;
  readonly proxies: RenderedProxy[];
  readonly conditions: RenderedCondition[];
}

/** Parses files into objects, collecting parse conditions. */
export function parseManifests(files: readonly ManifestFile[]): {
  objects: unknown[];
  conditions: Condition[];
} {
  const objects: unknown[] = [];
  const conditions: Condition[] = [];
  for (const f of files) {
    const r = parseYamlObjects(f.text, f.source);
    objects.push(...r.objects);
    conditions.push(...r.conditions);
  }
  return { objects, conditions };
}

function selected(model: MeshModel, proxy: string | undefined): WorkloadModel[] {
  if (!proxy) return [...model.workloads];
  const [ns, name] = proxy.split('/', 2);
  return model.workloads.filter((w) => w.namespace === ns && w.name === name);
}

/** Compiles manifests offline. Throws only for unusable options (an unknown --proxy). */
export function renderMesh(files: readonly ManifestFile[], opts: RenderOptions = {}): RenderOutput {
  const parts = renderParts(files, opts);
  return assemble(parts, patchMesh(parts.meshProxies, parts.patches, parts.patchOptions), opts);
}

/**
 * {@link renderMesh} with Envoy as the judge of every patched proxy (see src/patch/envoy-judge.ts):
 * a patch Envoy refuses applies nowhere, with Envoy's text, exactly as `weft serve` would refuse
 * it. `weft render`, `weft diff` and `weft status -f` use this when an Envoy binary is at hand.
 */
export async function renderMeshJudged(
  files: readonly ManifestFile[],
  opts: RenderOptions,
  judge: PatchJudge,
): Promise<RenderOutput> {
  const parts = renderParts(files, opts);
  const patched = await patchMeshJudged(parts.meshProxies, parts.patches, parts.patchOptions, judge);
  return assemble(parts, patched, opts);
}

/** Everything before patching: the model, each proxy's unpatched resources, the patches. */
function renderParts(files: readonly ManifestFile[], opts: RenderOptions) {
  const parsed = parseManifests(files);
  const { patches, rest, conditions: patchConditions } = extractPatches(parsed.objects);
  const built = buildModel(rest);
  const model = built.model;
  const workloads = selected(model, opts.proxy);
  if (opts.proxy && workloads.length === 0) {
    throw new Error(
      `--proxy ${opts.proxy}: no workload of that name; workloads are ${model.workloads.map((w) => `${w.namespace}/${w.name}`).join(', ') || '(none)'}`,
    );
  }
  const conditions: Condition[] = [...parsed.conditions, ...patchConditions, ...built.conditions];
  const flavors = opts.flavors ?? ['envoy'];
  const proxies: { id: string; w: WorkloadModel; flavor: 'envoy' | 'grpc'; resources: ProxyResources }[] = [];
  for (const w of workloads) {
    for (const flavor of flavors) {
      const t = translateProxy(model, { workload: w, flavor, mtls: opts.mtls ?? true });
      conditions.push(...t.conditions);
      proxies.push({ id: `${flavor}/${w.namespace}/${w.name}`, w, flavor, resources: t.resources });
    }
  }
  const meshProxies: MeshProxy[] = proxies.map((p) => ({
    id: p.id,
    subject: {
      namespace: p.w.namespace,
      labels: p.w.labels,
      serviceAccount: p.w.serviceAccount,
      flavor: p.flavor,
    },
    resources: p.resources,
  }));
  const patchOptions = { meshNamespace: opts.meshNamespace ?? 'weft-system', resolve: serviceTargetResolver };
  return { model, conditions, proxies, patches, meshProxies, patchOptions };
}

function assemble(
  parts: ReturnType<typeof renderParts>,
  patched: ReturnType<typeof patchMesh>,
  opts: RenderOptions,
): RenderOutput {
  const { model, proxies } = parts;
  const conditions = [...parts.conditions, ...patched.conditions];
  return {
    ...(opts.includeModel ? { model } : {}),
    proxies: proxies.map((p) => ({
      name: `${p.w.namespace}/${p.w.name}`,
      identity: p.w.identity,
      flavor: p.flavor,
      resources: (patched.resources.get(p.id) as ProxyResources | undefined) ?? p.resources,
    })),
    // Every Envoy proxy that may call a Service reports the same problem with it: once is enough.
    conditions: [
      ...new Map(conditions.map((c) => [`${c.object}|${c.type}|${c.reason}|${c.message}`, c])).values(),
    ]
      .map((c) => ({ ...c }))
      .sort((a, b) =>
        a.object === b.object
          ? a.type < b.type
            ? -1
            : a.type > b.type
              ? 1
              : 0
          : a.object < b.object
            ? -1
            : 1,
      ),
  };
}
