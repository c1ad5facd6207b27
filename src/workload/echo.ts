/**
 * A tiny echo service run as proxyless gRPC workloads: xDS-enabled servers that answer with
 * their own name, and xDS clients that dial `xds:///<service>:<port>`. Weft's demo and tests use
 * them as the real data plane: routing, splits, RBAC and mTLS are enforced by grpc-js-xds from
 * the config Weft serves, not by anything in this file.
 */

import type { Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type ChannelCredentials,
  Client,
  type ConnectionInjector,
  Metadata as GrpcMetadata,
  ServerCredentials as GrpcServerCredentials,
  credentials as grpcCredentials,
  type Metadata,
  type ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type ServiceError,
  type sendUnaryData,
} from '@grpc/grpc-js';
import type { SocketRef } from '@grpc/grpc-js/build/src/channelz';
import * as xds from '@grpc/grpc-js-xds';

let registered = false;
/** Registers the `xds:` resolver with grpc-js once per process. */
export function registerXds(): void {
  if (registered) return;
  xds.register();
  registered = true;
}

/** The gRPC option grpc-js-xds reads a per-channel / per-server bootstrap from. */
export const BOOTSTRAP_OPTION = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';

/** Template of the server Listener name a proxyless gRPC server asks for. */
export const SERVER_LISTENER_TEMPLATE = 'grpc/server?xds.resource.listening_address=%s';

/** Options of {@link proxylessBootstrap}. */
export interface BootstrapOptions {
  /** `host:port` of Weft's xDS server. */
  xdsServer: string;
  /** Node id, by convention `<namespace>/<pod>`. */
  nodeId: string;
  /** Node cluster; Weft's default group function uses it. */
  cluster?: string;
  /** Node metadata (Weft reads `NAMESPACE`, `POD_NAME`, `SERVICE_ACCOUNT`, `WORKLOAD`). */
  metadata?: Record<string, string>;
  /** Certificate provider instances (mTLS): name -> file_watcher config. */
  certificateProviders?: Record<
    string,
    { certificate_file?: string; private_key_file?: string; ca_certificate_file?: string }
  >;
  /** Channel credentials to Weft itself (default insecure). */
  xdsChannelCreds?: { type: string; config?: Record<string, string> }[];
}

/** The bootstrap JSON of a proxyless gRPC workload pointing at Weft. */
export function proxylessBootstrap(o: BootstrapOptions): Record<string, unknown> {
  const boot: Record<string, unknown> = {
    xds_servers: [
      {
        server_uri: o.xdsServer,
        channel_creds: o.xdsChannelCreds ?? [{ type: 'insecure' }],
        server_features: ['xds_v3'],
      },
    ],
    node: { id: o.nodeId, cluster: o.cluster ?? '', metadata: o.metadata ?? {}, locality: {} },
    server_listener_resource_name_template: SERVER_LISTENER_TEMPLATE,
  };
  if (o.certificateProviders) {
    boot.certificate_providers = Object.fromEntries(
      Object.entries(o.certificateProviders).map(([name, config]) => [
        name,
        { plugin_name: 'file_watcher', config: { ...config, refresh_interval: '1s' } },
      ]),
    );
  }
  return boot;
}

/** What an echo server answers. */
export interface EchoReply {
  /** The answering backend's name. */
  backend: string;
  /** The method path that reached it. */
  path: string;
}

const ECHO_SERVICE = 'weft.echo.Echo';
const toBytes = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const fromBytes = (b: Buffer): unknown => JSON.parse(b.toString() || 'null');

/** Methods of the echo service; each answers the same way, so routes can tell them apart. */
export const ECHO_METHODS = ['Get', 'Put', 'Delete'] as const;

function echoDefinition(): ServiceDefinition {
  const def: Record<string, ServiceDefinition[string]> = {};
  for (const m of ECHO_METHODS) {
    def[m] = {
      path: `/${ECHO_SERVICE}/${m}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: toBytes,
      requestDeserialize: fromBytes,
      responseSerialize: toBytes,
      responseDeserialize: fromBytes,
    };
  }
  return def;
}

/** A running echo server. */
export interface EchoServer {
  readonly name: string;
  readonly address: string;
  /** Calls served, by method path. */
  readonly served: Map<string, number>;
  stop(): Promise<void>;
}

/** Options of {@link startEchoServer}. */
export interface EchoServerOptions {
  /** Name put in every reply. */
  name: string;
  /** `ip:port` to listen on (port must be non-zero: it names the server Listener). */
  address: string;
  /** Bootstrap; when set the server is xDS-enabled and waits for its Listener from Weft. */
  bootstrap?: Record<string, unknown>;
  credentials?: ServerCredentials;
}

/** Starts an echo server; with a bootstrap it resolves once Weft has sent its Listener. */
export async function startEchoServer(o: EchoServerOptions): Promise<EchoServer> {
  registerXds();
  const served = new Map<string, number>();
  const server = o.bootstrap
    ? new FixedXdsServer({ [BOOTSTRAP_OPTION]: JSON.stringify(o.bootstrap), drainGraceTimeMs: 100 })
    : new (await import('@grpc/grpc-js')).Server();
  const impl: Record<
    string,
    (call: ServerUnaryCall<unknown, EchoReply>, cb: sendUnaryData<EchoReply>) => void
  > = {};
  for (const m of ECHO_METHODS) {
    impl[m] = (call, cb) => {
      const path = call.getPath();
      served.set(path, (served.get(path) ?? 0) + 1);
      cb(null, { backend: o.name, path });
    };
  }
  server.addService(echoDefinition(), impl);
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(o.address, o.credentials ?? GrpcServerCredentials.createInsecure(), (err) =>
      err ? reject(err) : resolve(),
    );
  });
  return {
    name: o.name,
    address: o.address,
    served,
    stop: () =>
      new Promise<void>((resolve) => {
        server.forceShutdown();
        resolve();
      }),
  };
}

/** The part of grpc-js-xds 1.14's XdsServer internals {@link FixedXdsServer.bindAsync} touches. */
interface XdsServerInternals {
  boundPortMap?: Map<string, { tcpServer?: NetServer }>;
}

/** grpc-js-xds 1.14's xDS server with two of its bugs worked around (see each method). */
class FixedXdsServer extends xds.XdsServer {
  /**
   * grpc-js-xds binds the socket with `listen(port)` once its Listener arrives, dropping the host
   * of the address it was given: the server would listen on every interface, and a listen error
   * (the port taken meanwhile) is an unhandled 'error' event that ends the process. Here the
   * socket is bound to the given host and a listen error goes to `callback`. This touches the
   * server's internals, so it does nothing more when they are not as expected.
   */
  override bindAsync(
    port: string,
    creds: ServerCredentials,
    callback: (error: Error | null, port: number) => void,
  ): void {
    super.bindAsync(port, creds, callback);
    const tcp = (this as unknown as XdsServerInternals).boundPortMap?.get(port)?.tcpServer;
    if (!tcp || typeof tcp.listen !== 'function') return;
    const host = port.startsWith('[')
      ? port.slice(1, port.lastIndexOf(']'))
      : port.slice(0, port.lastIndexOf(':'));
    const listen = tcp.listen.bind(tcp) as (p: number, host: string, cb?: () => void) => NetServer;
    tcp.listen = ((p: number, cb?: () => void) => listen(p, host, cb)) as NetServer['listen'];
    tcp.on('error', (err: Error) =>
      callback(new Error(`echo server cannot listen on ${port}: ${err.message}`), 0),
    );
  }

  /**
   * Listener updates reach every connection. grpc-js-xds serves each version of a Listener
   * through its own connection injector and drains the previous one when a new version arrives,
   * but a connection still in its TLS handshake at that moment gets its HTTP/2 session after the
   * drain and is never closed: it keeps the old filter chain, so the old RBAC for as long as the
   * client reuses it (a caller allowed again kept being denied). Here every injector also closes,
   * after the drain's grace time, each connection it was given that is still open, and refuses
   * connections once destroyed.
   */
  protected override experimentalCreateConnectionInjectorWithChannelzRef(
    credentials: ServerCredentials,
    channelzRef: SocketRef,
    ownsChannelzRef?: boolean,
  ): ConnectionInjector {
    const inner = super.experimentalCreateConnectionInjectorWithChannelzRef(
      credentials,
      channelzRef,
      ownsChannelzRef,
    );
    const open = new Set<Duplex>();
    let destroyed = false;
    return {
      injectConnection: (socket) => {
        if (destroyed) {
          socket.destroy();
          return;
        }
        open.add(socket);
        socket.once('close', () => open.delete(socket));
        inner.injectConnection(socket);
      },
      drain: (graceTimeMs) => {
        inner.drain(graceTimeMs);
        setTimeout(() => {
          for (const socket of open) socket.destroy();
        }, graceTimeMs).unref();
      },
      destroy: () => {
        destroyed = true;
        inner.destroy();
      },
    };
  }
}

/** An echo client dialing through xDS. */
export class EchoClient {
  private readonly client: Client;

  /**
   * @param target `xds:///<host>:<port>`, or a plain `host:port` without xDS.
   * @param bootstrap the workload's bootstrap (required for `xds:` targets).
   */
  constructor(
    readonly target: string,
    bootstrap?: Record<string, unknown>,
    credentials?: ChannelCredentials,
  ) {
    registerXds();
    this.client = new Client(target, credentials ?? grpcCredentials.createInsecure(), {
      ...(bootstrap ? { [BOOTSTRAP_OPTION]: JSON.stringify(bootstrap) } : {}),
    });
  }

  /** Calls `method` (default `Get`) with optional request headers; rejects with the gRPC error. */
  call(
    method: (typeof ECHO_METHODS)[number] = 'Get',
    headers: Record<string, string> = {},
    timeoutMs = 5000,
  ): Promise<EchoReply> {
    const md: Metadata = new GrpcMetadata();
    for (const [k, v] of Object.entries(headers)) md.set(k, v);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(
        `/${ECHO_SERVICE}/${method}`,
        toBytes,
        (b: Buffer) => fromBytes(b) as EchoReply,
        {},
        md,
        { deadline: Date.now() + timeoutMs },
        (err: ServiceError | null, value?: EchoReply) => (err || !value ? reject(err) : resolve(value)),
      );
    });
  }

  /** Closes the channel. */
  close(): void {
    this.client.close();
  }
}
