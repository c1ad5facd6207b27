/**
 * The cluster tier's DNS: what CoreDNS does for Services in a cluster, and only that. Pods resolve
 * `<service>.<namespace>.svc.<domain>` (and the shorter forms, through the search list kubelet
 * writes into their resolv.conf) to the Service's ClusterIP; every other name is NXDOMAIN, since
 * nothing outside the node can be reached. It listens on UDP port 53 of the node's IP, kubelet's
 * `clusterDNS`. No image of CoreDNS can be pulled here, so this runs on the node instead of in a
 * pod; injected sidecars need it to find `weft.weft-system.svc`.
 */
import { createSocket, type Socket } from 'node:dgram';

/** A Service's ClusterIP by `<name>.<namespace>`; undefined for headless Services. */
export type ServiceIps = Map<string, string>;

/** Options of {@link startClusterDns}. */
export interface ClusterDnsOptions {
  address: string;
  /** The cluster's DNS domain (cluster.local). */
  domain: string;
  /** Reads the Services' ClusterIPs from the API server. */
  services: () => Promise<ServiceIps>;
}

/** A running DNS server. */
export interface ClusterDns {
  /** Queries answered with an address. */
  readonly answered: number;
  close(): Promise<void>;
}

const TYPE_A = 1;
const RCODE_NXDOMAIN = 3;

/** The question of a DNS query: its name (lowercase, no trailing dot), type and its wire end. */
function question(msg: Buffer): { name: string; type: number; end: number } | undefined {
  let i = 12;
  const labels: string[] = [];
  while (i < msg.length) {
    const len = msg[i]!;
    if (len === 0) break;
    if (len > 63) return undefined; // no compression in questions
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('latin1'));
    i += 1 + len;
  }
  if (i + 5 > msg.length) return undefined;
  return { name: labels.join('.').toLowerCase(), type: msg.readUInt16BE(i + 1), end: i + 5 };
}

/** The answer to `query`: its question echoed, and one A record when `ip` is given. */
function answer(query: Buffer, q: { end: number }, rcode: number, ip?: string): Buffer {
  const header = Buffer.alloc(12);
  query.copy(header, 0, 0, 2); // id
  // QR, AA, and the query's RD; RA off (nothing is forwarded).
  header.writeUInt16BE(0x8400 | (query.readUInt16BE(2) & 0x0100) | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(ip ? 1 : 0, 6);
  const parts = [header, query.subarray(12, q.end)];
  if (ip) {
    const rr = Buffer.alloc(16);
    rr.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
    rr.writeUInt16BE(TYPE_A, 2);
    rr.writeUInt16BE(1, 4); // IN
    rr.writeUInt32BE(5, 6); // TTL: Services change while tests run
    rr.writeUInt16BE(4, 10);
    ip.split('.').forEach((o, k) => {
      rr[12 + k] = Number(o);
    });
    parts.push(rr);
  }
  return Buffer.concat(parts);
}

/** Starts the DNS server on UDP `address`:53. */
export async function startClusterDns(o: ClusterDnsOptions): Promise<ClusterDns> {
  const suffix = `.svc.${o.domain}`;
  let ips: ServiceIps = new Map();
  let readAt = 0;
  let reading: Promise<void> | undefined;
  // Services are read again when a name is not known and the last read is over a second old, so
  // a new Service resolves at once and a flood of queries costs one read a second.
  const refresh = (): Promise<void> => {
    if (Date.now() - readAt < 1000) return Promise.resolve();
    reading ??= o
      .services()
      .then((m) => {
        ips = m;
        readAt = Date.now();
      })
      .catch(() => {})
      .finally(() => {
        reading = undefined;
      });
    return reading;
  };
  let answered = 0;
  const socket: Socket = createSocket('udp4');
  socket.on('message', (msg, peer) => {
    const q = question(msg);
    if (!q) return;
    const lookup = async (): Promise<string | undefined> => {
      if (!q.name.endsWith(suffix)) return undefined;
      const key = q.name.slice(0, -suffix.length);
      if (!ips.has(key)) await refresh();
      return ips.get(key);
    };
    void lookup().then((ip) => {
      const known = ip !== undefined;
      // A name that exists but is asked for another type (AAAA) gets no records, not NXDOMAIN.
      const reply = answer(msg, q, known ? 0 : RCODE_NXDOMAIN, known && q.type === TYPE_A ? ip : undefined);
      if (known && q.type === TYPE_A) answered++;
      socket.send(reply, peer.port, peer.address);
    });
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(53, o.address, () => {
      socket.off('error', reject);
      resolve();
    });
  });
  return {
    get answered() {
      return answered;
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
