/**
 * Builders for `envoy.config.core.v3` messages: config sources, addresses, CIDR ranges. Each call
 * returns a fresh object, so no two resources share a node and a later stage may edit one safely.
 */
import type { JsonObject } from '../types';

/** ConfigSource: aggregated discovery over the stream the proxy already has (RDS, EDS, SDS). */
export function adsConfigSource(): JsonObject {
  return { ads: {}, resource_api_version: 'V3' };
}

/** Address with a socket address. */
export function socketAddress(ip: string, port: number): JsonObject {
  return { socket_address: { address: ip, port_value: port } };
}

/** CidrRange covering exactly one address (/32 or /128). */
export function hostCidr(ip: string): JsonObject {
  return { address_prefix: ip, prefix_len: ip.includes(':') ? 128 : 32 };
}
