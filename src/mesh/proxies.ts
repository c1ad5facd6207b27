/**
 * Which workload a connecting proxy is, from what it tells us and, under mTLS, what its
 * certificate proves.
 *
 * A proxy names itself in its xDS node:
 * - `node.metadata.NAMESPACE` plus `POD_NAME` (a Pod) or `WORKLOAD` (a Deployment), or
 * - `node.id` of the form `<namespace>/<name>` naming a Pod, else a Deployment.
 * Its flavor is `node.metadata.FLAVOR` (`envoy` or `grpc`), else `envoy` when the user agent is
 * Envoy and `grpc` otherwise.
 */
import type { MeshModel, WorkloadModel } from '../smi/model';
import type { NodeInfo } from '../xds/proxy-state';

/** The proxy flavors Weft compiles for. */
export type Flavor = 'envoy' | 'grpc';

/** A proxy resolved to a workload of the model. */
export interface ResolvedProxy {
  readonly workload: WorkloadModel;
  readonly flavor: Flavor;
}

/** Why a proxy could not be resolved: a sentence for the log. */
export interface Unresolved {
  readonly error: string;
}

function meta(node: NodeInfo, key: string): string | undefined {
  const v = node.metadata[key];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** The flavor of a proxy from its node. */
export function flavorOf(node: NodeInfo): Flavor {
  const f = meta(node, 'FLAVOR');
  if (f === 'envoy' || f === 'grpc') return f;
  return node.userAgent.toLowerCase() === 'envoy' ? 'envoy' : 'grpc';
}

/** Resolves a proxy; `identity` (from its certificate) must match the workload's when given. */
export function resolveProxy(
  model: MeshModel,
  node: NodeInfo,
  identity?: string,
): ResolvedProxy | Unresolved {
  let namespace = meta(node, 'NAMESPACE');
  let pod = meta(node, 'POD_NAME');
  let deployment = meta(node, 'WORKLOAD');
  if (!namespace && node.id.includes('/')) {
    const [ns, name] = node.id.split('/', 2);
    namespace = ns;
    pod = name;
    deployment = name;
  }
  if (!namespace || (!pod && !deployment)) {
    return {
      error: `proxy "${node.id}" does not say which workload it is: set node.id to <namespace>/<pod> or node.metadata NAMESPACE and POD_NAME`,
    };
  }
  const workload =
    (pod && model.workloads.find((w) => w.kind === 'Pod' && w.namespace === namespace && w.name === pod)) ||
    (deployment &&
      model.workloads.find(
        (w) => w.kind === 'Deployment' && w.namespace === namespace && w.name === deployment,
      ));
  if (!workload) {
    return {
      error: `proxy "${node.id}": no Pod or Deployment ${namespace}/${pod ?? deployment} in the mesh`,
    };
  }
  if (identity !== undefined && identity !== workload.identity) {
    return {
      error: `proxy "${node.id}" claims workload ${namespace}/${workload.name} (${workload.identity}) but its certificate is ${identity}; refused`,
    };
  }
  return { workload, flavor: flavorOf(node) };
}

/** The snapshot-cache group of a resolved proxy: one per flavor and workload. */
export function groupName(p: ResolvedProxy): string {
  return `${p.flavor}/${p.workload.kind}/${p.workload.namespace}/${p.workload.name}`;
}
