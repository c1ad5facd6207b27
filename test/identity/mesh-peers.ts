/**
 * Proxyless gRPC workloads with real identities, as a workload would run them: a `weft agent`
 * (certificate files from Weft's certificate endpoint) and its xDS relay beside each echo server
 * or client, and grpc-js-xds reading the certificates through `file_watcher` providers.
 */

import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import { type RunningServe, type ServeOptions, startServe } from '../../src/cli/serve';
import { WorkloadAgent } from '../../src/identity/agent';
import { CA_FILE, CERT_FILE, IDENTITY_SECRET, KEY_FILE, TRUST_SECRET } from '../../src/identity/names';
import { controlPlaneIdentity } from '../../src/identity/tls';
import { uriSans } from '../../src/identity/x509';
import { startAgentRelay, type XdsRelay } from '../../src/identity/xds-relay';
import { type EchoServer, proxylessBootstrap, startEchoServer } from '../../src/workload/echo';
import type { FixtureAddresses } from '../mesh/mesh-fixture';

/** One workload's identity plumbing. */
export interface Sidecar {
  readonly agent: WorkloadAgent;
  readonly relay: XdsRelay;
  readonly dir: string;
  /** The workload's bootstrap: xDS through the relay, certificates from the agent's files. */
  readonly bootstrap: Record<string, unknown>;
  /** mTLS channel credentials from the agent's files, checking the server's SPIFFE ID. */
  directCredentials(serverIdentity: string): ChannelCredentials;
  stop(): Promise<void>;
}

/** Options of {@link startSidecar}. */
export interface SidecarOptions {
  /** Folder for the agent's files. */
  dir: string;
  /** Node id `<namespace>/<pod>`. */
  nodeId: string;
  token: string;
  /** Weft's certificate endpoint and xDS port. */
  caTarget: string;
  xdsTarget: string;
  /** PEM bundle to trust first (the CA folder's bundle.pem). */
  bootstrapBundlePem: string;
  trustDomain: string;
  metadata?: Record<string, string>;
}

/** Starts an agent (first certificate written) and its xDS relay on a free loopback port. */
export async function startSidecar(o: SidecarOptions): Promise<Sidecar> {
  const agent = new WorkloadAgent({
    server: o.caTarget,
    token: async () => o.token,
    outDir: o.dir,
    bootstrapBundlePem: o.bootstrapBundlePem,
    bundleRefreshMs: 2000,
  });
  await agent.start();
  const files = {
    certificateFile: join(o.dir, CERT_FILE),
    privateKeyFile: join(o.dir, KEY_FILE),
    caCertificateFile: join(o.dir, CA_FILE),
  };
  const relay = await startAgentRelay({
    agent,
    outDir: o.dir,
    listen: '127.0.0.1:0',
    upstream: o.xdsTarget,
    serverIdentity: controlPlaneIdentity(o.trustDomain),
  });
  const bootstrap = proxylessBootstrap({
    xdsServer: `127.0.0.1:${relay.port}`,
    nodeId: o.nodeId,
    ...(o.metadata ? { metadata: o.metadata } : {}),
    certificateProviders: {
      [IDENTITY_SECRET]: { certificate_file: files.certificateFile, private_key_file: files.privateKeyFile },
      [TRUST_SECRET]: { ca_certificate_file: files.caCertificateFile },
    },
  });
  return {
    agent,
    relay,
    dir: o.dir,
    bootstrap,
    directCredentials: (serverIdentity) =>
      credentials.createSsl(
        readFileSync(files.caCertificateFile),
        readFileSync(files.privateKeyFile),
        readFileSync(files.certificateFile),
        {
          checkServerIdentity: (_host, cert) => {
            const uris = uriSans(new X509Certificate(cert.raw));
            return uris[0] === serverIdentity ? undefined : new Error(`server is ${uris.join(',')}`);
          },
        },
      ),
    stop: async () => {
      agent.stop();
      await relay.stop();
    },
  };
}

/**
 * Credentials that let grpc-js-xds apply the TLS the xDS config asks for (`certificate_provider_instance`);
 * the fallback is used only where the config asks for no TLS, which Weft never does with mTLS on.
 */
export const xdsServerCredentials = (): ServerCredentials =>
  new xds.XdsServerCredentials(ServerCredentials.createInsecure());
/** Channel credentials counterpart of {@link xdsServerCredentials}. */
export const xdsChannelCredentials = (): ChannelCredentials =>
  new xds.XdsChannelCredentials(credentials.createInsecure());

/** The serial number of the certificate the agent has written now. */
export function writtenSerial(s: Sidecar): string {
  return new X509Certificate(readFileSync(join(s.dir, CERT_FILE))).serialNumber;
}

/** Options of {@link startSecureMesh}. */
export interface SecureMeshOptions {
  /** The mesh's config folder (workloads and policy). */
  configDir: string;
  /** A temporary folder for the CA (`ca/`), the token file and each agent's files. */
  dir: string;
  addresses: FixtureAddresses;
  trustDomain: string;
  /** ServiceAccounts in namespace `shop` that get a token and a sidecar; `store` runs the v1 server. */
  serviceAccounts: readonly string[];
  /** More `weft serve` options. */
  serve?: Partial<ServeOptions>;
}

/** A running mesh with identity: Weft with its CA, a sidecar per ServiceAccount, store's v1 server. */
export interface SecureMesh {
  readonly weft: RunningServe;
  readonly caDir: string;
  readonly sidecars: Record<string, Sidecar>;
  /** The xDS-enabled echo server of `shop/store-v1`, over mTLS from its sidecar's files. */
  readonly server: EchoServer;
}

/**
 * Starts `weft serve` with a CA folder and the certificate endpoint (a bootstrap token per
 * ServiceAccount), a sidecar per ServiceAccount, and store's v1 echo server.
 */
export async function startSecureMesh(o: SecureMeshOptions): Promise<SecureMesh> {
  const tokens = join(o.dir, 'tokens.yaml');
  writeFileSync(
    tokens,
    `tokens:\n${o.serviceAccounts.map((sa) => `  - token: token-of-${sa}-0123456789\n    identity: shop/${sa}\n`).join('')}`,
    { mode: 0o600 },
  );
  const caDir = join(o.dir, 'ca');
  const weft = await startServe({
    configDir: o.configDir,
    xdsAddress: '127.0.0.1:0',
    caDir,
    trustDomain: o.trustDomain,
    caAddress: '127.0.0.1:0',
    bootstrapTokens: tokens,
    ...o.serve,
  });
  const common = {
    caTarget: `127.0.0.1:${weft.identity.certificatePort}`,
    xdsTarget: `127.0.0.1:${weft.port}`,
    bootstrapBundlePem: readFileSync(join(caDir, 'bundle.pem'), 'utf8'),
    trustDomain: o.trustDomain,
  };
  const list = await Promise.all(
    o.serviceAccounts.map((sa) =>
      startSidecar({
        ...common,
        dir: join(o.dir, sa),
        nodeId: sa === 'store' ? 'shop/store-v1' : `shop/${sa}`,
        token: `token-of-${sa}-0123456789`,
      }),
    ),
  );
  const sidecars = Object.fromEntries(o.serviceAccounts.map((sa, i) => [sa, list[i]!]));
  const server = await startEchoServer({
    name: 'v1',
    address: `${o.addresses.v1}:${o.addresses.v1Port}`,
    bootstrap: sidecars.store!.bootstrap,
    credentials: xdsServerCredentials(),
  });
  return { weft, caDir, sidecars, server };
}
