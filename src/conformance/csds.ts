/**
 * The conformance drivers' CSDS read: what Weft sent each proxy and whether the proxy ACKed it,
 * with the resources decoded to canonical JSON, keyed by node id. This is the config a failure
 * report shows: what the proxy had at that moment, in the form Envoy's config dump uses. The
 * client itself is `src/xds/csds-view.ts`, which `weft proxy config` uses too.
 */
import { type ChannelCredentials, credentials } from '@grpc/grpc-js';
import { fetchClientStatus } from '../xds/csds-view';
import type { ProxyConfigs } from './driver';

/**
 * Fetches the status of the proxies whose node id is one of `nodeIds` (all proxies when empty).
 * `creds` are needed when the xDS port is mTLS (a mesh certificate); plaintext otherwise.
 */
export async function fetchProxyConfigs(
  target: string,
  nodeIds: readonly string[],
  creds: ChannelCredentials = credentials.createInsecure(),
): Promise<ProxyConfigs> {
  const out: ProxyConfigs = {};
  for (const proxy of await fetchClientStatus(target, nodeIds, creds)) {
    // A node id may hold several streams (one per xDS client of the workload); keep them all.
    const list = out[proxy.node] ?? [];
    for (const e of proxy.entries) {
      list.push({
        typeUrl: e.typeUrl,
        name: e.name,
        version: e.version,
        clientStatus: e.clientStatus,
        ...(e.error !== undefined ? { error: e.error } : {}),
        ...(e.config !== undefined ? { config: e.config } : {}),
      });
    }
    out[proxy.node] = list;
  }
  return out;
}
