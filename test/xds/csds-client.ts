/** A CSDS client for tests: fetches client status with grpc-js and decodes it with protobufjs. */
import { Client, credentials } from '@grpc/grpc-js';
import { messageType } from '../../src/envoy/protos';

/** One proxy's status as CSDS reports it. */
export interface CsdsProxy {
  node: string;
  configs: { typeUrl: string; name: string; version: string; clientStatus: string; error?: string }[];
}

/** Calls FetchClientStatus for node ids starting with `prefix` (all when empty). */
export async function csdsFetch(target: string, exactId?: string): Promise<CsdsProxy[]> {
  const reqT = messageType('envoy.service.status.v3.ClientStatusRequest');
  const resT = messageType('envoy.service.status.v3.ClientStatusResponse');
  const client = new Client(target, credentials.createInsecure());
  const req = exactId ? { node_matchers: [{ node_id: { exact: exactId } }] } : {};
  try {
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      client.makeUnaryRequest(
        '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus',
        (r: object) => Buffer.from(reqT.encode(reqT.fromObject(r)).finish()),
        (b: Buffer) => b,
        req,
        (err, value) => (err || !value ? reject(err) : resolve(value)),
      );
    });
    const res = resT.toObject(resT.decode(bytes), { enums: String, arrays: true }) as {
      config: {
        node?: { id?: string };
        generic_xds_configs: {
          type_url: string;
          name: string;
          version_info: string;
          client_status?: string;
          error_state?: { details?: string };
        }[];
      }[];
    };
    return res.config.map((c) => ({
      node: c.node?.id ?? '',
      configs: c.generic_xds_configs.map((g) => ({
        typeUrl: g.type_url,
        name: g.name,
        version: g.version_info,
        clientStatus: g.client_status ?? 'UNKNOWN',
        error: g.error_state?.details,
      })),
    }));
  } finally {
    client.close();
  }
}
