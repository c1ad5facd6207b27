/**
 * Resolves EnvoyPatch targets given by meaning (a service port) to generated names, so patches
 * survive renames of generated names. Uses the names module, the single source of those names.
 */
import type { PatchableResources, ServiceTargetResolver } from '../patch/apply';
import { names } from '../translate';

function matching(
  list: { [k: string]: unknown }[],
  field: string,
  pred: (name: string) => boolean,
): string[] {
  return list.map((r) => String(r[field])).filter(pred);
}

/** Names of the resources of `type` serving `service` (every port when none is given). */
export const serviceTargetResolver: ServiceTargetResolver = (
  type,
  service,
  resources: PatchableResources,
) => {
  const want = (port: number): string[] => {
    switch (type) {
      case 'Cluster':
      case 'ClusterLoadAssignment':
        return [names.outboundCluster(service.namespace, service.name, port)];
      case 'RouteConfiguration':
        return [names.outboundRoute(service.namespace, service.name, port)];
      case 'Listener':
        return [];
    }
  };
  const suffix = `|${service.namespace}/${service.name}`;
  const ports = new Set<number>();
  for (const c of resources.clusters) {
    const n = String(c.name);
    if (n.startsWith('outbound|') && n.endsWith(suffix)) ports.add(Number(n.split('|')[1]));
  }
  if (service.port !== undefined) ports.clear();
  if (service.port !== undefined) ports.add(service.port);
  const candidates = [...ports].flatMap(want);
  if (type === 'Listener') {
    // Proxyless gRPC client listeners are named <host>:<port>; Envoy has one outbound listener.
    const { name: svc, namespace: ns } = service;
    const hostOf = (n: string): string => n.slice(0, n.lastIndexOf(':'));
    const portOf = (n: string): number => Number(n.slice(n.lastIndexOf(':') + 1));
    return matching(resources.listeners, 'name', (n) => {
      const h = hostOf(n);
      const ours =
        h === svc || h === `${svc}.${ns}` || h === `${svc}.${ns}.svc` || h.startsWith(`${svc}.${ns}.svc.`);
      return ours && (service.port === undefined || portOf(n) === service.port);
    });
  }
  return candidates;
};
