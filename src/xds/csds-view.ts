/**
 * CSDS read back: a ClientStatusResponse decoded into per-proxy entries with each resource as
 * canonical JSON (the shape Envoy's config dump uses), and a client that fetches one from an xDS
 * port. `weft proxy config` reads this, from the xDS port (with a mesh certificate) or through the
 * admin server's `/debug/config`, which encodes the same response.
 */
import { type ChannelCredentials, Client, credentials } from '@grpc/grpc-js';
import { decode, fullNameOf } from '../envoy/codec';
import { messageType } from '../envoy/protos';
import { SHORT_NAME } from './resource-types';

const FETCH = '/envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus';

/** One resource a proxy was sent (or asked for), as CSDS reports it. */
export interface CsdsEntry {
  /** The type URL. */
  readonly typeUrl: string;
  /** The short type (`lds`, `rds`, `cds`, `eds`, `sds`), or the type URL when unknown. */
  readonly type: string;
  readonly name: string;
  /** Version sent; `''` when it was asked for and never sent. */
  readonly version: string;
  /** `ACKED`, `NACKED`, `REQUESTED` (sent, no answer yet, or never sent). */
  readonly clientStatus: string;
  /** The proxy's own error text, when it NACKed this resource. */
  readonly error?: string;
  /** The resource as canonical JSON; absent for secrets (never sent over CSDS) and unsent names. */
  readonly config?: unknown;
}

/** One proxy (one xDS stream) in a CSDS answer. */
export interface CsdsProxyConfig {
  readonly node: string;
  readonly entries: CsdsEntry[];
}

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

/** Encodes a ClientStatusRequest for exact node ids (every proxy when empty). */
export function encodeClientStatusRequest(nodeIds: readonly string[]): Uint8Array {
  const reqT = messageType('envoy.service.status.v3.ClientStatusRequest');
  return reqT
    .encode(reqT.fromObject({ node_matchers: nodeIds.map((id) => ({ node_id: { exact: id } })) }))
    .finish();
}

/** Decodes ClientStatusResponse bytes; resources that do not decode say why in `config`. */
export function decodeClientStatusResponse(bytes: Uint8Array): CsdsProxyConfig[] {
  const resT = messageType('envoy.service.status.v3.ClientStatusResponse');
  const res = resT.toObject(resT.decode(bytes), { enums: String, arrays: true }) as RawResponse;
  return (res.config ?? []).map((c) => ({
    node: c.node?.id ?? '',
    entries: (c.generic_xds_configs ?? []).map((g) => {
      let config: unknown;
      if (g.xds_config?.type_url && g.xds_config.value) {
        try {
          config = decode(fullNameOf(g.xds_config.type_url), g.xds_config.value);
        } catch (err) {
          config = { undecodable: err instanceof Error ? err.message : String(err) };
        }
      }
      const typeUrl = g.type_url ?? '';
      return {
        typeUrl,
        type: (SHORT_NAME as Record<string, string>)[typeUrl] ?? typeUrl,
        name: g.name ?? '',
        version: g.version_info ?? '',
        clientStatus: (g.client_status ?? 'UNKNOWN').replace(/^CLIENT_/, ''),
        ...(g.error_state?.details ? { error: g.error_state.details } : {}),
        ...(config !== undefined ? { config } : {}),
      };
    }),
  }));
}

/**
 * Calls FetchClientStatus on `target` for the proxies with these node ids (every proxy Weft lets
 * the caller see when empty). On an mTLS xDS port `creds` must carry a mesh certificate: Weft's
 * own identity sees every proxy, a workload's identity only its own proxies.
 */
export async function fetchClientStatus(
  target: string,
  nodeIds: readonly string[],
  creds: ChannelCredentials = credentials.createInsecure(),
  timeoutMs = 5000,
): Promise<CsdsProxyConfig[]> {
  const client = new Client(target, creds);
  try {
    const bytes = await new Promise<Buffer>((resolve, reject) => {
      client.makeUnaryRequest(
        FETCH,
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => b,
        encodeClientStatusRequest(nodeIds),
        { deadline: Date.now() + timeoutMs },
        (err, value) => (err || !value ? reject(err ?? new Error('empty CSDS answer')) : resolve(value)),
      );
    });
    return decodeClientStatusResponse(bytes);
  } finally {
    client.close();
  }
}
