/**
 * The agent's xDS relay, for proxyless gRPC workloads. grpc-js-xds can reach its xDS server only
 * in plaintext (its bootstrap knows the `insecure` and `google_default` channel credentials, not
 * mTLS), while Weft's xDS port requires a mesh certificate. The agent, which already holds the
 * workload's certificate, listens on loopback and forwards each ADS stream to Weft over mTLS
 * with that certificate, byte for byte. Weft therefore sees the workload's proven identity, and
 * a workload can never get config for an identity its certificate does not prove.
 *
 * - Only loopback addresses are accepted for the listening side: the relay adds no
 *   authentication of its own, so it must not be reachable from other machines.
 * - The upstream credentials read the certificate files on every new connection (a grpc
 *   `file_watcher` provider), so a renewed certificate is used from the next reconnect on; open
 *   streams are never cut by a renewal.
 * - Messages are not decoded: a status or end from either side is passed to the other.
 */
import { X509Certificate } from 'node:crypto';
import {
  type ChannelCredentials,
  Client,
  type ClientDuplexStream,
  experimental,
  Metadata,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServiceDefinition,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import { type Logger, logger } from '../log';
import { uriSans } from './x509';

const log: Logger = logger('agent');

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';
const passthrough = (b: Buffer): Buffer => b;

function bidi(path: string): ServiceDefinition[string] {
  return {
    path,
    requestStream: true,
    responseStream: true,
    requestSerialize: passthrough,
    requestDeserialize: passthrough,
    responseSerialize: passthrough,
    responseDeserialize: passthrough,
  };
}

const relayDefinition: ServiceDefinition = {
  StreamAggregatedResources: bidi(`${ADS}/StreamAggregatedResources`),
  DeltaAggregatedResources: bidi(`${ADS}/DeltaAggregatedResources`),
};

/** Files of the workload identity, as the agent writes them. */
export interface RelayCertificateFiles {
  certificateFile: string;
  privateKeyFile: string;
  caCertificateFile: string;
}

/**
 * Channel credentials to Weft's xDS port from certificate files: mTLS with the workload
 * certificate, trusting the bundle file, and accepting the server only if its URI SAN is
 * `serverIdentity` (Weft's certificate names no host). Files are re-read every `refreshMs`.
 */
export function fileChannelCredentials(
  files: RelayCertificateFiles,
  serverIdentity: string,
  refreshMs = 1000,
): ChannelCredentials {
  const provider = new experimental.FileWatcherCertificateProvider({
    ...files,
    refreshIntervalMs: refreshMs,
  });
  return experimental.createCertificateProviderChannelCredentials(provider, provider, {
    checkServerIdentity: (_host, cert) => {
      const uris = uriSans(new X509Certificate(cert.raw));
      if (uris.length === 1 && uris[0] === serverIdentity) return undefined;
      return new Error(`the xDS server presents ${uris.join(', ') || 'no URI SAN'}, not ${serverIdentity}`);
    },
  });
}

/** Options of {@link XdsRelay.start}. */
export interface XdsRelayOptions {
  /** Loopback `host:port` the workload's bootstrap points at (port 0: any free port). */
  listen: string;
  /** Weft's xDS `host:port`. */
  upstream: string;
  /** mTLS credentials to Weft (see {@link fileChannelCredentials}). */
  credentials: ChannelCredentials;
}

function isLoopback(address: string): boolean {
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A running relay. */
export class XdsRelay {
  /** Streams relayed since start. */
  readonly stats = { streams: 0, open: 0 };
  private readonly calls = new Set<ClientDuplexStream<Buffer, Buffer>>();

  private constructor(
    private readonly server: Server,
    private readonly client: Client,
    /** The bound port. */
    readonly port: number,
  ) {}

  /** Listens on `o.listen` and relays every ADS stream to `o.upstream`. */
  static async start(o: XdsRelayOptions): Promise<XdsRelay> {
    if (!isLoopback(o.listen)) {
      throw new Error(
        `--xds-relay ${o.listen}: the relay serves the workload's config without authentication, so it listens on loopback only; use 127.0.0.1:<port>`,
      );
    }
    const client = new Client(o.upstream, o.credentials, { 'grpc.max_receive_message_length': -1 });
    const server = new Server({ 'grpc.max_receive_message_length': -1 });
    let relay: XdsRelay | undefined;
    const handler =
      (path: string) =>
      (call: ServerDuplexStream<Buffer, Buffer>): void =>
        relay?.relay(path, call);
    server.addService(relayDefinition, {
      StreamAggregatedResources: handler(`${ADS}/StreamAggregatedResources`),
      DeltaAggregatedResources: handler(`${ADS}/DeltaAggregatedResources`),
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(o.listen, ServerCredentials.createInsecure(), (err, p) =>
        err ? reject(err) : resolve(p),
      ),
    );
    relay = new XdsRelay(server, client, port);
    log.info('xDS relay listening', { listen: o.listen, port, upstream: o.upstream });
    return relay;
  }

  private relay(path: string, down: ServerDuplexStream<Buffer, Buffer>): void {
    this.stats.streams++;
    this.stats.open++;
    const up = this.client.makeBidiStreamRequest(path, passthrough, passthrough, new Metadata());
    this.calls.add(up);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.stats.open--;
      this.calls.delete(up);
    };
    down.on('data', (b: Buffer) => {
      if (!up.write(b)) down.pause();
    });
    up.on('drain', () => down.resume());
    up.on('data', (b: Buffer) => {
      if (!down.write(b)) up.pause();
    });
    down.on('drain', () => up.resume());
    down.on('end', () => up.end());
    down.on('cancelled', () => {
      up.cancel();
      finish();
    });
    down.on('error', () => {
      up.cancel();
      finish();
    });
    up.on('error', (err: ServiceError) => {
      finish();
      if (err.code !== status.CANCELLED)
        log.warn('xDS stream to Weft failed', { code: err.code, error: err.details });
      // grpc-js sends an error emitted on a server stream as the call's status.
      down.emit('error', { code: err.code, details: err.details, metadata: new Metadata() });
    });
    up.on('status', (s: { code: status }) => {
      if (s.code === status.OK) {
        finish();
        down.end();
      }
    });
  }

  /** Stops listening and cancels every relayed stream. */
  async stop(): Promise<void> {
    for (const c of this.calls) c.cancel();
    this.calls.clear();
    this.server.forceShutdown();
    this.client.close();
  }
}
