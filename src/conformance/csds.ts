/**
 * A CSDS client: asks an xDS server's `ClientStatusDiscoveryService` what it sent each proxy and
 * whether the proxy ACKed it, with the resources decoded to canonical JSON. This is the config a
 * failure report shows: what the proxy had at that moment, in the form Envoy's config dump uses.
 */
import { type ChannelCredentials, Client, credentials } from '@grpc/grpc-js';
import { decode, fullNameOf } from '../envoy/codec';
import { messageType } from '../envoy/protos';
import type { ProxyConfigs } from './driver';

const FETCH = '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus';

interface RawResponse {
  config?: {
    node?: { id?: string };
    generic_xds_configs?: {
      type_url?: string;
      name?: string;
      version_info?: string;
      xds_config?: { type_url?: string; value?: Uint8Array };
      client_status?: string;
      error_state?: { details?: string };
    }[];
  }[];
}

/**
 * Fetches the status of the proxies whose node id is one of `nodeIds` (all proxies when empty).
 * `creds` are needed when the xDS port is mTLS (a mesh certificate); plaintext otherwise.
 */
export async function fetchProxyConfigs(
  target: string,
  nodeIds: readonly string[],
  creds: ChannelCredentials = credentials.createInsecure(),
): Promise<ProxyConfigs> {
  const reqT = messageType('envoy.service.status.v3.ClientStatusRequest');
  const resT = messageType('envoy.service.status.v3.ClientStatusResponse');
  const client = new Client(target, creds);
  const req = { node_matchers: nodeIds.map((id) => ({ node_id: { exact: id } })) };
  try {
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      client.makeUnaryRequest(
        FETCH,
        (r: object) => Buffer.from(reqT.encode(reqT.fromObject(r)).finish()),
        (b: Buffer) => b,
        req,
        { deadline: Date.now() + 5000 },
        (err, value) => (err || !value ? reject(err ?? new Error('empty CSDS answer')) : resolve(value)),
      );
    });
    const res = resT.toObject(resT.decode(bytes), { enums: String, arrays: true }) as RawResponse;
    const out: ProxyConfigs = {};
    for (const c of res.config ?? []) {
      const id = c.node?.id ?? '';
      // A node id may hold several streams (one per xDS client of the workload); keep them all.
      const list = out[id] ?? [];
      for (const g of c.generic_xds_configs ?? []) {
        let config: unknown;
        if (g.xds_config?.type_url && g.xds_config.value) {
          try {
            config = decode(fullNameOf(g.xds_config.type_url), g.xds_config.value);
          } catch (err) {
            config = { undecodable: (err as Error).message };
          }
        }
        list.push({
          typeUrl: g.type_url ?? '',
          name: g.name ?? '',
          version: g.version_info ?? '',
          clientStatus: g.client_status ?? 'UNKNOWN',
          ...(g.error_state?.details ? { error: g.error_state.details } : {}),
          ...(config !== undefined ? { config } : {}),
        });
      }
      out[id] = list;
    }
    return out;
  } finally {
    client.close();
  }
}
