/**
 * Helpers for xDS tests: an ADS server on loopback and resource JSON for simple cases.
 */
import { ServerCredentials } from '@grpc/grpc-js';
import { messageType } from '../../src/envoy/protos';
import { setLogLevel } from '../../src/log';
import { type JsonObject, ResourceEncoder, type SnapshotInput } from '../../src/xds/cache/snapshot';
import { AdsClient, type AdsClientOptions } from '../../src/xds/client';
import { messageNameOf, type ResourceTypeUrl } from '../../src/xds/resource-types';
import { AdsServer, type AdsServerOptions } from '../../src/xds/server/ads-server';

setLogLevel(process.env.WEFT_LOG_LEVEL === undefined ? 'silent' : (process.env.WEFT_LOG_LEVEL as 'debug'));

/**
 * Encodes with protobufjs' object form. Enough for the plain resources of protocol tests; the
 * full canonical-JSON codec is tested on its own.
 */
export function objectFormEncoder(typeUrl: ResourceTypeUrl, json: JsonObject): Uint8Array {
  const t = messageType(messageNameOf(typeUrl));
  return t.encode(t.fromObject(json)).finish();
}

/** A started server and helpers around it. */
export interface TestAds {
  server: AdsServer;
  port: number;
  target: string;
  encoder: ResourceEncoder;
  set(group: string, input: SnapshotInput): boolean;
  client(opts: Partial<AdsClientOptions> & { nodeId: string }): AdsClient;
  stop(): Promise<void>;
}

/** Starts an ADS server on 127.0.0.1 with an ephemeral port. */
export async function startAds(
  opts: AdsServerOptions = {},
  encode: (t: ResourceTypeUrl, j: JsonObject) => Uint8Array = objectFormEncoder,
): Promise<TestAds> {
  const server = new AdsServer(opts);
  const port = await server.listen('127.0.0.1:0', ServerCredentials.createInsecure());
  const encoder = new ResourceEncoder(encode);
  const clients: AdsClient[] = [];
  const target = `127.0.0.1:${port}`;
  return {
    server,
    port,
    target,
    encoder,
    set: (group, input) => server.cache.set(group, encoder.snapshot(input)),
    client: (o) => {
      const c = new AdsClient({ target, mode: 'sotw', cluster: 'g', ...o });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    },
    stop: async () => {
      for (const c of clients) c.close();
      await server.shutdown(1000);
    },
  };
}

/** A minimal Cluster. */
export function cluster(name: string, extra: JsonObject = {}): JsonObject {
  return { name, type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } }, ...extra };
}

/** A ClusterLoadAssignment with `ports` on 127.0.0.1. */
export function endpoints(name: string, ports: number[]): JsonObject {
  return {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: ports.map((port) => ({
          endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
        })),
      },
    ],
  };
}

/** A plain Listener with a name. */
export function listener(name: string, port = 15001): JsonObject {
  return { name, address: { socket_address: { address: '0.0.0.0', port_value: port } } };
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls a condition driven by server-side events (no timing in assertions, only a bound). */
export async function waitUntil(pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
}
