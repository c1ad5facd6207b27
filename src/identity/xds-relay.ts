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
 * - A TLS connection keeps the client certificate of its handshake, and Weft checks a new
 *   stream's certificate against the roots it trusts now. So after a renewal
 *   ({@link XdsRelay.reconnect}) new streams go over a new connection presenting the new
 *   certificate, while streams already open stay on the old one until they end: a renewal or a
 *   root rotation never cuts a stream, and no new stream rides on a certificate that expired or
 *   whose root left the bundle.
 * - Messages are not decoded: a status or end from either side is passed to the other.
 */
import { X509Certificate } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import { join } from 'node:path';
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
import { CA_FILE, CERT_FILE, KEY_FILE } from './names';
import { clockHint, uriSans } from './x509';

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
  /**
   * mTLS credentials to Weft (see {@link fileChannelCredentials}). A function is called for each
   * new connection, so that connection reads the certificate files afresh.
   */
  credentials: ChannelCredentials | (() => ChannelCredentials);
}

/** One upstream connection and the streams relayed over it. */
interface Upstream {
  readonly client: Client;
  readonly calls: Set<ClientDuplexStream<Buffer, Buffer>>;
}

function isLoopback(address: string): boolean {
  const host = address.slice(0, address.lastIndexOf(':')).replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function upstreamClient(o: XdsRelayOptions): Upstream {
  const creds = typeof o.credentials === 'function' ? o.credentials() : o.credentials;
  // A local subchannel pool: each upstream is its own TLS connection, never a shared older one.
  const client = new Client(o.upstream, creds, {
    'grpc.max_receive_message_length': -1,
    'grpc.use_local_subchannel_pool': 1,
  });
  return { client, calls: new Set() };
}

/** A running relay. */
export class XdsRelay {
  /**
   * Streams relayed since start, open now, upstream connections made (see {@link reconnect}),
   * and streams Weft ended with an error other than a cancellation.
   */
  readonly stats = { streams: 0, open: 0, connections: 1, failed: 0 };
  private readonly old = new Set<Upstream>();

  private constructor(
    private readonly server: Server,
    private upstream: Upstream,
    private readonly o: XdsRelayOptions,
    /** The bound port. */
    readonly port: number,
  ) {}

  /**
   * Makes new streams go over a new connection (with fresh credentials); streams open on the
   * current one stay there, and it is closed when the last of them ends. Call it after the
   * workload certificate changed.
   */
  reconnect(): void {
    const previous = this.upstream;
    this.upstream = upstreamClient(this.o);
    this.stats.connections++;
    if (previous.calls.size === 0) previous.client.close();
    else this.old.add(previous);
    log.info('new xDS streams go over a new connection to Weft', { open: previous.calls.size });
  }

  /** Listens on `o.listen` and relays every ADS stream to `o.upstream`. */
  static async start(o: XdsRelayOptions): Promise<XdsRelay> {
    if (!isLoopback(o.listen)) {
      throw new Error(
        `--xds-relay ${o.listen}: the relay serves the workload's config without authentication, so it listens on loopback only; use 127.0.0.1:<port>`,
      );
    }
    const upstream = upstreamClient(o);
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
    relay = new XdsRelay(server, upstream, o, port);
    log.info('xDS relay listening', { listen: o.listen, port, upstream: o.upstream });
    return relay;
  }

  private relay(path: string, down: ServerDuplexStream<Buffer, Buffer>): void {
    this.stats.streams++;
    this.stats.open++;
    const via = this.upstream;
    const up = via.client.makeBidiStreamRequest(path, passthrough, passthrough, new Metadata());
    via.calls.add(up);
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.stats.open--;
      via.calls.delete(up);
      if (via !== this.upstream && via.calls.size === 0 && this.old.delete(via)) via.client.close();
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
      if (err.code !== status.CANCELLED) {
        this.stats.failed++;
        const hint = clockHint(err.details ?? '', `Weft (${this.o.upstream})`);
        log.warn('xDS stream to Weft failed', {
          code: err.code,
          error: err.details,
          ...(hint ? { hint } : {}),
        });
      }
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
    for (const u of [...this.old, this.upstream]) {
      for (const c of u.calls) c.cancel();
      u.calls.clear();
      u.client.close();
    }
    this.old.clear();
    this.server.forceShutdown();
  }
}

/** Options of {@link startAgentRelay}. */
export interface AgentRelayOptions {
  /** The agent keeping the files fresh (a `WorkloadAgent`); its `written` events drive reconnects. */
  agent: EventEmitter;
  /** The agent's folder (`cert.pem`, `key.pem`, `ca.pem`). */
  outDir: string;
  /** Loopback `host:port` to listen on. */
  listen: string;
  /** Weft's xDS `host:port`. */
  upstream: string;
  /** The SPIFFE ID Weft must present. */
  serverIdentity: string;
}

/**
 * The relay as `weft agent --xds-relay` runs it: mTLS from the agent's files, and a new upstream
 * connection for new streams each time the agent writes a new certificate.
 */
export async function startAgentRelay(o: AgentRelayOptions): Promise<XdsRelay> {
  const files: RelayCertificateFiles = {
    certificateFile: join(o.outDir, CERT_FILE),
    privateKeyFile: join(o.outDir, KEY_FILE),
    caCertificateFile: join(o.outDir, CA_FILE),
  };
  const relay = await XdsRelay.start({
    listen: o.listen,
    upstream: o.upstream,
    credentials: () => fileChannelCredentials(files, o.serverIdentity),
  });
  o.agent.on('written', (w: { file: string }) => {
    if (w.file === CERT_FILE) relay.reconnect();
  });
  return relay;
}
