/**
 * Traffic capture: the iptables rules the capture init container installs in the pod's network
 * namespace, as `iptables-restore` input (nat table).
 *
 * - Inbound TCP (PREROUTING) goes to Envoy's inbound listener, except the sidecar's own health and
 *   metrics ports (kubelet and Prometheus reach them directly) and the ports the user excludes.
 * - Outbound TCP (OUTPUT) goes to Envoy's outbound listener, except traffic of the proxy's UID
 *   (Envoy and `weft agent`; capturing them would loop), traffic to loopback, and the ports and
 *   CIDRs the user excludes.
 * UDP (DNS) is not captured. IPv4 only: an IPv6 address family gets no rules and bypasses the mesh.
 *
 * Pure: the same options give the same text, which is kept as a golden file.
 */
import { INBOUND_PORT, OUTBOUND_PORT } from '../translate/names';
import { SIDECAR } from './bootstrap';

/** What the capture leaves alone beyond the sidecar's own ports. */
export interface CaptureOptions {
  /** UID whose outbound traffic is not captured (Envoy's). */
  proxyUid?: number;
  /** Inbound ports passed straight to the application. */
  excludeInboundPorts?: readonly number[];
  /** Outbound destination ports not captured. */
  excludeOutboundPorts?: readonly number[];
  /** Outbound destination IPv4 CIDRs not captured. */
  excludeOutboundCidrs?: readonly string[];
}

const sortedUnique = <T extends number | string>(xs: readonly T[]): T[] =>
  [...new Set(xs)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** The rules, as `iptables-restore --noflush` input. */
export function captureRules(o: CaptureOptions = {}): string {
  const uid = o.proxyUid ?? SIDECAR.proxyUid;
  const inboundExcluded = sortedUnique([
    SIDECAR.healthPort,
    SIDECAR.statsPort,
    ...(o.excludeInboundPorts ?? []),
  ]);
  const lines = [
    '*nat',
    ':WEFT_INBOUND - [0:0]',
    ':WEFT_IN_REDIRECT - [0:0]',
    ':WEFT_OUTBOUND - [0:0]',
    ':WEFT_OUT_REDIRECT - [0:0]',
    `-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${INBOUND_PORT}`,
    `-A WEFT_OUT_REDIRECT -p tcp -j REDIRECT --to-ports ${OUTBOUND_PORT}`,
    '-A PREROUTING -p tcp -j WEFT_INBOUND',
    ...inboundExcluded.map((p) => `-A WEFT_INBOUND -p tcp --dport ${p} -j RETURN`),
    '-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT',
    '-A OUTPUT -p tcp -j WEFT_OUTBOUND',
    `-A WEFT_OUTBOUND -m owner --uid-owner ${uid} -j RETURN`,
    '-A WEFT_OUTBOUND -d 127.0.0.1/32 -j RETURN',
    ...sortedUnique(o.excludeOutboundPorts ?? []).map(
      (p) => `-A WEFT_OUTBOUND -p tcp --dport ${p} -j RETURN`,
    ),
    ...sortedUnique(o.excludeOutboundCidrs ?? []).map((c) => `-A WEFT_OUTBOUND -d ${c} -j RETURN`),
    '-A WEFT_OUTBOUND -j WEFT_OUT_REDIRECT',
    'COMMIT',
  ];
  return `${lines.join('\n')}\n`;
}

/** Splits a comma-separated list and checks each item; the error names `what` and an example. */
function parseList<T>(
  value: string,
  what: string,
  kind: string,
  example: string,
  item: (s: string) => T | undefined,
): T[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const v = item(s);
      if (v === undefined)
        throw new Error(`${what}: "${s}" is not ${kind}; write them separated by commas, e.g. "${example}"`);
      return v;
    });
}

/** Parses a comma-separated port list (an annotation or flag value); throws naming `what`. */
export function parsePorts(value: string, what: string): number[] {
  return parseList(value, what, 'a port (1-65535)', '22,9000', (s) =>
    /^\d+$/.test(s) && Number(s) >= 1 && Number(s) <= 65535 ? Number(s) : undefined,
  );
}

/** Parses a comma-separated IPv4 CIDR list; throws naming `what`. */
export function parseCidrs(value: string, what: string): string[] {
  return parseList(value, what, 'an IPv4 CIDR', '10.0.0.0/8,169.254.169.254/32', (s) => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(s);
    return m?.slice(1, 5).every((x) => Number(x) <= 255) && Number(m[5]) <= 32 ? s : undefined;
  });
}
