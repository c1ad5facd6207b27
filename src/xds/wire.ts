/**
 * Protobuf wire handling for the discovery protocol. Requests are decoded with protobufjs.
 * Responses are assembled by hand from the resources' pre-encoded bytes, so a push to many
 * streams copies bytes but never re-encodes a resource.
 */
import { type Type, Writer } from 'protobufjs';
import { messageType } from '../envoy/protos';
import type { EncodedResource, JsonObject } from './cache/snapshot';
import type { NodeInfo } from './proxy-state';

/** The fields of a DiscoveryRequest that the server uses. */
export interface DiscoveryRequest {
  versionInfo: string;
  node?: NodeInfo;
  /** The Node message as decoded, kept to echo it back in CSDS. */
  rawNode?: JsonObject;
  resourceNames: string[];
  typeUrl: string;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

/** The fields of a DeltaDiscoveryRequest that the server uses. */
export interface DeltaDiscoveryRequest {
  node?: NodeInfo;
  rawNode?: JsonObject;
  typeUrl: string;
  subscribe: string[];
  unsubscribe: string[];
  initialResourceVersions: Record<string, string>;
  responseNonce: string;
  errorDetail?: { code: number; message: string };
}

let sotwType: Type | undefined;
let deltaType: Type | undefined;

const TO_OBJECT = {
  longs: String,
  enums: String,
  bytes: String,
  defaults: false,
  arrays: true,
  objects: true,
};

/** Converts a decoded google.protobuf.Struct (protobufjs object form) to plain JSON. */
export function structToJson(struct: unknown): JsonObject {
  const out: JsonObject = {};
  const fields = (struct as { fields?: Record<string, unknown> } | undefined)?.fields ?? {};
  for (const [k, v] of Object.entries(fields)) out[k] = valueToJson(v);
  return out;
}

function valueToJson(v: unknown): unknown {
  const val = v as {
    nullValue?: unknown;
    numberValue?: number;
    stringValue?: string;
    boolValue?: boolean;
    structValue?: unknown;
    listValue?: { values?: unknown[] };
    null_value?: unknown;
    number_value?: number;
    string_value?: string;
    bool_value?: boolean;
    struct_value?: unknown;
    list_value?: { values?: unknown[] };
  };
  // protobufjs's built-in google.protobuf.Value has camelCase fields; accept both spellings.
  const num = val.number_value ?? val.numberValue;
  const str = val.string_value ?? val.stringValue;
  const bool = val.bool_value ?? val.boolValue;
  const struct = val.struct_value ?? val.structValue;
  const list = val.list_value ?? val.listValue;
  if (num !== undefined) return num;
  if (str !== undefined) return str;
  if (bool !== undefined) return bool;
  if (struct !== undefined) return structToJson(struct);
  if (list !== undefined) return (list.values ?? []).map(valueToJson);
  return null;
}

function nodeOf(raw: unknown): { node?: NodeInfo; rawNode?: JsonObject } {
  if (!raw || typeof raw !== 'object') return {};
  const n = raw as {
    id?: string;
    cluster?: string;
    metadata?: unknown;
    user_agent_name?: string;
    user_agent_version?: string;
    user_agent_build_version?: {
      version?: { major_number?: number; minor_number?: number; patch?: number };
      metadata?: unknown;
    };
  };
  return {
    rawNode: raw as JsonObject,
    node: {
      id: n.id ?? '',
      cluster: n.cluster ?? '',
      metadata: structToJson(n.metadata),
      userAgent: n.user_agent_name ?? '',
      userAgentVersion: userAgentVersionOf(n.user_agent_version, n.user_agent_build_version),
    },
  };
}

/**
 * The proxy's own version: gRPC clients send `user_agent_version` (a string), Envoy sends
 * `user_agent_build_version` (a semantic version, plus build labels in its metadata).
 */
function userAgentVersionOf(
  text: string | undefined,
  build: { version?: { major_number?: number; minor_number?: number; patch?: number } } | undefined,
): string {
  if (text) return text;
  const v = build?.version;
  if (!v) return '';
  return `${v.major_number ?? 0}.${v.minor_number ?? 0}.${v.patch ?? 0}`;
}

function errorDetailOf(raw: unknown): { code: number; message: string } | undefined {
  if (!raw || typeof raw !== 'object') return undefined;
  const e = raw as { code?: number; message?: string };
  return { code: e.code ?? 0, message: e.message ?? '' };
}

/** Decodes a DiscoveryRequest; throws on malformed bytes. */
export function decodeDiscoveryRequest(bytes: Uint8Array): DiscoveryRequest {
  sotwType ??= messageType('envoy.service.discovery.v3.DiscoveryRequest');
  const obj = sotwType.toObject(sotwType.decode(bytes), TO_OBJECT) as {
    version_info?: string;
    node?: unknown;
    resource_names?: string[];
    type_url?: string;
    response_nonce?: string;
    error_detail?: unknown;
  };
  return {
    versionInfo: obj.version_info ?? '',
    ...nodeOf(obj.node),
    resourceNames: obj.resource_names ?? [],
    typeUrl: obj.type_url ?? '',
    responseNonce: obj.response_nonce ?? '',
    errorDetail: errorDetailOf(obj.error_detail),
  };
}

/** Decodes a DeltaDiscoveryRequest; throws on malformed bytes. */
export function decodeDeltaDiscoveryRequest(bytes: Uint8Array): DeltaDiscoveryRequest {
  deltaType ??= messageType('envoy.service.discovery.v3.DeltaDiscoveryRequest');
  const obj = deltaType.toObject(deltaType.decode(bytes), TO_OBJECT) as {
    node?: unknown;
    type_url?: string;
    resource_names_subscribe?: string[];
    resource_names_unsubscribe?: string[];
    initial_resource_versions?: Record<string, string>;
    response_nonce?: string;
    error_detail?: unknown;
  };
  return {
    ...nodeOf(obj.node),
    typeUrl: obj.type_url ?? '',
    subscribe: obj.resource_names_subscribe ?? [],
    unsubscribe: obj.resource_names_unsubscribe ?? [],
    initialResourceVersions: obj.initial_resource_versions ?? {},
    responseNonce: obj.response_nonce ?? '',
    errorDetail: errorDetailOf(obj.error_detail),
  };
}

/** Identifies Weft in every response's `control_plane` field. */
export const CONTROL_PLANE_ID = 'weft';

function controlPlane(w: Writer, field: number): void {
  w.uint32((field << 3) | 2)
    .fork()
    .uint32(10)
    .string(CONTROL_PLANE_ID)
    .ldelim();
}

/** Encodes a DiscoveryResponse from pre-encoded resources. */
export function encodeDiscoveryResponse(
  versionInfo: string,
  typeUrl: string,
  nonce: string,
  resources: Iterable<EncodedResource>,
): Uint8Array {
  const w = Writer.create();
  w.uint32(10).string(versionInfo);
  for (const r of resources) w.uint32(18).bytes(r.any);
  w.uint32(34).string(typeUrl);
  w.uint32(42).string(nonce);
  controlPlane(w, 6);
  return w.finish();
}

/** Encodes a DeltaDiscoveryResponse from pre-encoded resources. */
export function encodeDeltaDiscoveryResponse(
  systemVersion: string,
  typeUrl: string,
  nonce: string,
  resources: Iterable<EncodedResource>,
  removed: Iterable<string>,
): Uint8Array {
  const w = Writer.create();
  w.uint32(10).string(systemVersion);
  for (const r of resources) w.uint32(18).bytes(r.deltaResource);
  w.uint32(34).string(typeUrl);
  w.uint32(42).string(nonce);
  for (const name of removed) w.uint32(50).string(name);
  controlPlane(w, 7);
  return w.finish();
}
