/**
 * Proxyless gRPC workloads with real identities, as a workload would run them: a `weft agent`
 * (certificate files from Weft's certificate endpoint) and its xDS relay beside each echo server
 * or client, and grpc-js-xds reading the certificates through `file_watcher` providers. The
 * conformance suite's local driver and the end-to-end tests run their workloads this way.
 */

import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type ChannelCredentials, credentials, ServerCredentials } from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import { WorkloadAgent } from '../identity/agent';
import { CA_FILE, CERT_FILE, IDENTITY_SECRET, KEY_FILE, TRUST_SECRET } from '../identity/names';
import { controlPlaneIdentity } from '../identity/tls';
import { uriSans } from '../identity/x509';
import { startAgentRelay, type XdsRelay } from '../identity/xds-relay';
import { proxylessBootstrap } from './echo';

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

/** The agent's files in `dir`, by the names grpc's file_watcher provider takes. */
export function agentFiles(dir: string): {
  certificateFile: string;
  privateKeyFile: string;
  caCertificateFile: string;
} {
  return {
    certificateFile: join(dir, CERT_FILE),
    privateKeyFile: join(dir, KEY_FILE),
    caCertificateFile: join(dir, CA_FILE),
  };
}

/**
 * The bootstrap of a proxyless gRPC workload beside an agent: xDS through the agent's relay
 * (grpc-js-xds speaks only plaintext xDS), certificates from the agent's folder `certDir`. In a
 * pod injected with `weft.dev/flavor: grpc` the relay is 127.0.0.1:15010 and the folder
 * /var/run/weft/certs.
 */
export function agentBootstrap(o: {
  xdsServer: string;
  nodeId: string;
  certDir: string;
  metadata?: Record<string, string>;
}): Record<string, unknown> {
  const files = agentFiles(o.certDir);
  return proxylessBootstrap({
    xdsServer: o.xdsServer,
    nodeId: o.nodeId,
    ...(o.metadata ? { metadata: o.metadata } : {}),
    certificateProviders: {
      [IDENTITY_SECRET]: { certificate_file: files.certificateFile, private_key_file: files.privateKeyFile },
      [TRUST_SECRET]: { ca_certificate_file: files.caCertificateFile },
    },
  });
}

/**
 * mTLS channel credentials from the agent's files in `dir` (read once), accepting only a server
 * whose certificate's SPIFFE ID is `serverIdentity`: a client that is not a gRPC workload, such as
 * a CSDS query to Weft's mTLS xDS port, uses these.
 */
export function agentFileCredentials(dir: string, serverIdentity: string): ChannelCredentials {
  const files = agentFiles(dir);
  return credentials.createSsl(
    readFileSync(files.caCertificateFile),
    readFileSync(files.privateKeyFile),
    readFileSync(files.certificateFile),
    {
      checkServerIdentity: (_host, cert) => {
        const uris = uriSans(new X509Certificate(cert.raw));
        return uris[0] === serverIdentity ? undefined : new Error(`server is ${uris.join(',')}`);
      },
    },
  );
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
  const relay = await startAgentRelay({
    agent,
    outDir: o.dir,
    listen: '127.0.0.1:0',
    upstream: o.xdsTarget,
    serverIdentity: controlPlaneIdentity(o.trustDomain),
  });
  const bootstrap = agentBootstrap({
    xdsServer: `127.0.0.1:${relay.port}`,
    nodeId: o.nodeId,
    certDir: o.dir,
    ...(o.metadata ? { metadata: o.metadata } : {}),
  });
  return {
    agent,
    relay,
    dir: o.dir,
    bootstrap,
    directCredentials: (serverIdentity) => agentFileCredentials(o.dir, serverIdentity),
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
