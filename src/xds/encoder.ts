/**
 * The production resource encoder: strict canonical JSON to protobuf, through the Envoy codec.
 * A resource that fails strict decoding throws; callers validate before building snapshots.
 */
import { encode } from '../envoy/codec';
import { type JsonObject, ResourceEncoder } from './cache/snapshot';
import { messageNameOf, type ResourceTypeUrl } from './resource-types';

/** Encodes one resource of `typeUrl` from its canonical JSON. */
export function encodeEnvoyResource(typeUrl: ResourceTypeUrl, json: JsonObject): Uint8Array {
  return encode(messageNameOf(typeUrl), json);
}

/** A {@link ResourceEncoder} using Envoy's codec. */
export function envoyResourceEncoder(): ResourceEncoder {
  return new ResourceEncoder(encodeEnvoyResource);
}
