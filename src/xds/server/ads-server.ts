/**
 * The gRPC xDS server: `AggregatedDiscoveryService` (state of the world and delta) and
 * `ClientStatusDiscoveryService`, over one `@grpc/grpc-js` server. Services are defined with
 * hand-written serializers: requests decode through protobufjs, responses are bytes assembled
 * from shared, pre-encoded resources.
 */
import {
  type handleBidiStreamingCall,
  type handleUnaryCall,
  Server,
  type ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServiceDefinition,
  status,
} from '@grpc/grpc-js';
import { type Logger, logger } from '../../log';
import { SnapshotCache } from '../cache/cache';
import { ProxyRegistry, type ProxyStatus } from '../proxy-state';
import {
  type DeltaDiscoveryRequest,
  type DiscoveryRequest,
  decodeDeltaDiscoveryRequest,
  decodeDiscoveryRequest,
} from '../wire';
import {
  type ClientStatusRequest,
  type CsdsSource,
  decodeClientStatusRequest,
  encodeClientStatusResponse,
} from './csds';
import { DeltaStream } from './delta';
import { SotwStream } from './sotw';
import type { AdsStream, GroupFunction, XdsStats } from './stream';

const log: Logger = logger('xds');

/** Largest request accepted: a reconnecting delta client lists every resource it has. */
export const MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

/** Options of {@link AdsServer}. */
export interface AdsServerOptions {
  /** Snapshot cache to serve from (a new one by default). */
  cache?: SnapshotCache;
  /** ACK/NACK registry (a new one by default). */
  registry?: ProxyRegistry;
  /** Maps a proxy to its group; by default the node's `cluster`, or its id when cluster is empty. */
  groupOf?: GroupFunction;
  /** Identity proven by a peer's TLS certificate (set by the identity stage when xDS is mTLS). */
  identityOf?: (call: ServerDuplexStream<unknown, unknown>) => string | undefined;
  /** Keepalive ping interval in ms (default 30 s) so dead proxies are noticed. */
  keepaliveMs?: number;
  /**
   * Which connected proxies a CSDS caller may see. By default every one (plaintext development);
   * with mTLS the identity stage limits a workload to its own proxies, since CSDS shows config.
   */
  csdsScope?: (call: CsdsCall) => (proxy: ProxyStatus) => boolean;
}

/** A CSDS call, unary or streaming: what {@link AdsServerOptions.csdsScope} reads the peer from. */
export type CsdsCall = ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>;

const identity = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
const passthrough = (b: Buffer): Buffer => b;

function method<Req>(path: string, decode: (b: Buffer) => Req, stream: boolean) {
  const what = path.slice(path.lastIndexOf('/') + 1);
  return {
    path,
    requestStream: stream,
    responseStream: stream,
    requestSerialize: (): Buffer => {
      throw new Error('server-side definition: requests are never serialized here');
    },
    requestDeserialize: (b: Buffer): Req => {
      try {
        return decode(b);
      } catch (err) {
        // grpc-js fails just this call with INTERNAL; say why once, here.
        log.warn('malformed request; failing the stream', {
          rpc: what,
          bytes: b.length,
          error: err instanceof Error ? err.message : String(err),
        });
        throw err;
      }
    },
    responseSerialize: identity,
    responseDeserialize: passthrough,
  };
}

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const CSDS = '/envoy.service.status.v3.ClientStatusDiscoveryService';

/** The ADS service definition with Weft's serializers. */
export const adsServiceDefinition: ServiceDefinition = {
  StreamAggregatedResources: method(`${ADS}/StreamAggregatedResources`, decodeDiscoveryRequest, true),
  DeltaAggregatedResources: method(`${ADS}/DeltaAggregatedResources`, decodeDeltaDiscoveryRequest, true),
};

/** The CSDS service definition. */
export const csdsServiceDefinition: ServiceDefinition = {
  StreamClientStatus: method(`${CSDS}/StreamClientStatus`, decodeClientStatusRequest, true),
  FetchClientStatus: method(`${CSDS}/FetchClientStatus`, decodeClientStatusRequest, false),
};

/** A running (or ready to run) xDS server. */
export class AdsServer {
  /** The snapshots served. */
  readonly cache: SnapshotCache;
  /** Per-proxy state and ACK/NACK records. */
  readonly registry: ProxyRegistry;
  /** What the server has sent since start. */
  readonly stats: XdsStats = { responses: 0, bytesSent: 0 };
  private readonly streams = new Map<number, AdsStream<unknown>>();
  private grpcServer: Server | undefined;
  private readonly groupOf: GroupFunction;
  private readonly identityOf: (call: ServerDuplexStream<unknown, unknown>) => string | undefined;
  private readonly csdsScope: (call: CsdsCall) => (proxy: ProxyStatus) => boolean;
  private readonly keepaliveMs: number;
  private readonly alsoServed: ((server: Server) => void)[] = [];

  constructor(opts: AdsServerOptions = {}) {
    this.cache = opts.cache ?? new SnapshotCache();
    this.registry = opts.registry ?? new ProxyRegistry();
    this.groupOf = opts.groupOf ?? ((node) => node.cluster || node.id);
    this.identityOf = opts.identityOf ?? (() => undefined);
    this.csdsScope = opts.csdsScope ?? (() => () => true);
    this.keepaliveMs = opts.keepaliveMs ?? 30_000;
  }

  /**
   * Adds another service to the server this one starts (call before {@link AdsServer.listen}): the
   * metrics sink shares the xDS port, its TLS and its client certificates, so a sidecar needs no
   * second connection or trust setting to report its stats.
   */
  alsoServe(register: (server: Server) => void): void {
    this.alsoServed.push(register);
  }

  /** The identity the TLS certificate of `call`'s peer proves, when xDS is mutual TLS. */
  peerIdentity(call: ServerDuplexStream<unknown, unknown>): string | undefined {
    return this.identityOf(call);
  }

  /** Adds the ADS and CSDS services to an existing gRPC server. */
  addTo(server: Server): void {
    for (const register of this.alsoServed) register(server);
    const ctx = {
      cache: this.cache,
      registry: this.registry,
      groupOf: this.groupOf,
      identityOf: this.identityOf,
      stats: this.stats,
      onClose: (id: number) => this.streams.delete(id),
    };
    const track = (s: AdsStream<unknown>): void => {
      if (!s.isClosed) this.streams.set(s.id, s);
    };
    const sotw: handleBidiStreamingCall<DiscoveryRequest, Uint8Array> = (call) => {
      track(new SotwStream(ctx, call) as AdsStream<unknown>);
    };
    const delta: handleBidiStreamingCall<DeltaDiscoveryRequest, Uint8Array> = (call) => {
      track(new DeltaStream(ctx, call) as AdsStream<unknown>);
    };
    server.addService(adsServiceDefinition, {
      StreamAggregatedResources: sotw,
      DeltaAggregatedResources: delta,
    });
    const scoped = (call: CsdsCall) => this.csdsSource(this.csdsScope(call));
    const fetch: handleUnaryCall<ClientStatusRequest, Uint8Array> = (call, callback) => {
      callback(null, encodeClientStatusResponse(scoped(call), call.request));
    };
    const streamStatus: handleBidiStreamingCall<ClientStatusRequest, Uint8Array> = (call) => {
      const view = scoped(call);
      call.on('data', (req: ClientStatusRequest) => call.write(encodeClientStatusResponse(view, req)));
      call.on('end', () => call.end());
      call.on('error', () => undefined);
    };
    server.addService(csdsServiceDefinition, { FetchClientStatus: fetch, StreamClientStatus: streamStatus });
  }

  private csdsSource(visible: (proxy: ProxyStatus) => boolean): CsdsSource {
    return {
      proxies: () => this.registry.proxies().filter(visible),
      sentResources: (id: number) => this.streams.get(id)?.sentResources() ?? new Map(),
    };
  }

  /**
   * The CSDS answer (ClientStatusResponse bytes) for the proxies `visible` admits: what the admin
   * server's `/debug/config` shows callers who cannot present a mesh certificate.
   */
  clientStatus(req: ClientStatusRequest, visible: (proxy: ProxyStatus) => boolean = () => true): Uint8Array {
    return encodeClientStatusResponse(this.csdsSource(visible), req);
  }

  /** gRPC channel options of the server Weft starts. */
  serverOptions(): Record<string, number> {
    return {
      'grpc.max_receive_message_length': MAX_RECEIVE_BYTES,
      'grpc.max_send_message_length': -1,
      'grpc.keepalive_time_ms': this.keepaliveMs,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      // Proxies may ping as often as every 10 s without being disconnected for abuse.
      'grpc.http2.min_ping_interval_without_data_ms': 10_000,
    };
  }

  /** Starts a gRPC server on `address` (e.g. `127.0.0.1:0`); resolves to the bound port. */
  async listen(address: string, credentials: ServerCredentials): Promise<number> {
    const server = new Server(this.serverOptions());
    this.addTo(server);
    const port = await new Promise<number>((resolve, reject) => {
      server.bindAsync(address, credentials, (err, p) => {
        if (!err) return resolve(p);
        // Nothing is bound, but the server object holds timers of its own: let it go.
        server.forceShutdown();
        reject(err);
      });
    });
    this.grpcServer = server;
    log.info('xDS server listening', { address, port });
    return port;
  }

  /**
   * Re-runs the group function for every open stream (call it after the inputs change): proxies
   * that matched no group, or whose workload changed, move to their group. Returns how many moved.
   */
  regroup(): number {
    let moved = 0;
    for (const s of this.streams.values()) if (s.regroup()) moved++;
    return moved;
  }

  /** Number of open streams. */
  get streamCount(): number {
    return this.streams.size;
  }

  /**
   * Stops accepting streams, ends open ones so proxies reconnect elsewhere, and waits up to
   * `graceMs` for them to close before forcing the transport down.
   */
  async shutdown(graceMs = 5_000): Promise<void> {
    const server = this.grpcServer;
    if (!server) return;
    this.grpcServer = undefined;
    for (const s of this.streams.values()) s.end();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    log.info('xDS server stopped');
  }
}

export { status as grpcStatus };
