/**
 * Client Status Discovery Service: what the control plane sent each connected proxy and whether
 * the proxy ACKed or NACKed it, in the standard `envoy.service.status.v3` shape so tools such as
 * `grpcdebug` or Istio's `pilot-agent` style dumps can read it.
 */
import { type Type, Writer } from 'protobufjs';
import { messageType } from '../../envoy/protos';
import type { EncodedResource } from '../cache/snapshot';
import type { ProxyStatus } from '../proxy-state';
import { PUSH_ORDER, SECRET, SHORT_NAME } from '../resource-types';

/** A node matcher from a ClientStatusRequest: the string-matcher forms on `node_id`. */
interface NodeIdMatcher {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
}

/** Decoded ClientStatusRequest fields Weft honours. */
export interface ClientStatusRequest {
  matchers: NodeIdMatcher[];
  excludeResourceContents: boolean;
}

let requestType: Type | undefined;
let nodeType: Type | undefined;

/** Decodes a ClientStatusRequest. */
export function decodeClientStatusRequest(bytes: Uint8Array): ClientStatusRequest {
  requestType ??= messageType('envoy.service.status.v3.ClientStatusRequest');
  const obj = requestType.toObject(requestType.decode(bytes), { arrays: true, defaults: false }) as {
    node_matchers?: { node_id?: NodeIdMatcher }[];
    exclude_resource_contents?: boolean;
  };
  return {
    matchers: (obj.node_matchers ?? []).map((m) => m.node_id ?? {}),
    excludeResourceContents: obj.exclude_resource_contents ?? false,
  };
}

function matches(id: string, m: NodeIdMatcher): boolean {
  if (m.exact !== undefined) return id === m.exact;
  if (m.prefix !== undefined) return id.startsWith(m.prefix);
  if (m.suffix !== undefined) return id.endsWith(m.suffix);
  if (m.contains !== undefined) return id.includes(m.contains);
  return true;
}

/** What the server knows of one stream's resources, per type. */
export type SentResources = ReadonlyMap<string, ReadonlyMap<string, EncodedResource>>;

/** Source of the per-proxy data CSDS reports. */
export interface CsdsSource {
  proxies(): ProxyStatus[];
  sentResources(streamId: number): SentResources;
}

// Enum values of envoy.admin.v3.ClientResourceStatus and envoy.service.status.v3.ConfigStatus.
const CLIENT_REQUESTED = 1;
const CLIENT_ACKED = 3;
const CLIENT_NACKED = 4;
const CONFIG_SYNCED = 1;
const CONFIG_NOT_SENT = 2;
const CONFIG_STALE = 3;
const CONFIG_ERROR = 4;

function timestamp(w: Writer, field: number, at: Date): void {
  const ms = at.getTime();
  w.uint32((field << 3) | 2)
    .fork()
    .uint32(8)
    .int64(Math.floor(ms / 1000))
    .uint32(16)
    .int32((ms % 1000) * 1e6)
    .ldelim();
}

/** Builds the ClientStatusResponse bytes for the proxies the request matches. */
export function encodeClientStatusResponse(source: CsdsSource, req: ClientStatusRequest): Uint8Array {
  nodeType ??= messageType('envoy.config.core.v3.Node');
  const w = Writer.create();
  for (const p of source.proxies()) {
    if (req.matchers.length > 0 && !req.matchers.some((m) => matches(p.node.id, m))) continue;
    const sent = source.sentResources(p.streamId);
    w.uint32(10).fork(); // ClientConfig config = 1
    w.uint32(10).fork(); // Node node = 1
    nodeType.encode(nodeType.fromObject({ id: p.node.id, cluster: p.node.cluster }), w);
    w.ldelim();
    for (const typeUrl of PUSH_ORDER) {
      const t = p.types[SHORT_NAME[typeUrl]];
      if (!t) continue;
      const resources = sent.get(typeUrl) ?? new Map<string, EncodedResource>();
      for (const r of resources.values()) {
        w.uint32(26).fork(); // GenericXdsConfig generic_xds_configs = 3
        w.uint32(10).string(typeUrl);
        w.uint32(18).string(r.name);
        w.uint32(26).string(r.version);
        // Secrets are listed by name and version only: a private key never leaves over CSDS
        // (Envoy's own config dump redacts them too).
        if (!req.excludeResourceContents && typeUrl !== SECRET) w.uint32(34).bytes(r.any);
        if (t.sentAt) timestamp(w, 5, t.sentAt);
        const nacked = t.lastNack?.resourceNames.includes(r.name) === true;
        const configStatus = nacked ? CONFIG_ERROR : t.awaiting ? CONFIG_STALE : CONFIG_SYNCED;
        const clientStatus = nacked ? CLIENT_NACKED : t.awaiting ? CLIENT_REQUESTED : CLIENT_ACKED;
        w.uint32(48).int32(configStatus);
        w.uint32(56).int32(clientStatus);
        if (nacked && t.lastNack) {
          w.uint32(66).fork(); // UpdateFailureState error_state = 8
          timestamp(w, 2, t.lastNack.at);
          w.uint32(26).string(t.lastNack.message);
          w.uint32(34).string(t.lastNack.version);
          w.ldelim();
        }
        w.ldelim();
      }
      // Names the proxy asked for that it was never sent (absent from its snapshot, or the
      // response not written yet): listing them shows a subscription the config does not meet.
      if (t.subscribed === '*') continue;
      for (const name of t.subscribed) {
        if (resources.has(name)) continue;
        w.uint32(26).fork();
        w.uint32(10).string(typeUrl);
        w.uint32(18).string(name);
        w.uint32(48).int32(CONFIG_NOT_SENT);
        w.uint32(56).int32(CLIENT_REQUESTED);
        w.ldelim();
      }
    }
    w.ldelim();
  }
  return w.finish();
}
