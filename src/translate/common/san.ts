/**
 * Which server identities a client accepts when it calls a service over mTLS. Shared by both
 * flavors, which put the result in different fields (Envoy: `match_typed_subject_alt_names` with
 * URI SANs; gRPC: `match_subject_alt_names`, the field grpc-js reads).
 */
import type { JsonObject } from '../types';
import { exactString, prefixString } from './matchers';

/**
 * StringMatchers accepting the SPIFFE IDs that serve a service. A service whose backing workloads
 * are unknown (endpoints managed by hand) has no identity to pin: its calls accept any identity of
 * the trust domain (`spiffe://<td>/` prefix), never an empty list, which would turn the check off.
 */
export function serverIdentityMatchers(identities: readonly string[], trustDomain: string): JsonObject[] {
  if (identities.length === 0) return [prefixString(`spiffe://${trustDomain}/`)];
  return identities.map(exactString);
}
