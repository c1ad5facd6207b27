/**
 * Helpers for identity tests: temporary CA folders, a certificate endpoint with bootstrap
 * tokens, and waiting on conditions. Everything listens on 127.0.0.1 only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status } from '@grpc/grpc-js';
import { type CaOptions, CertificateAuthority } from '../../src/identity/ca';
import { writeFileAtomic } from '../../src/identity/files';
import { IDENTITY_SECRET, TRUST_SECRET } from '../../src/identity/names';
import { type CertificateServer, startCertificateServer } from '../../src/identity/signing';
import { FileCaStore } from '../../src/identity/store';
import {
  controlPlaneChannelCredentials,
  controlPlaneIdentity,
  ServingIdentity,
} from '../../src/identity/tls';
import { BootstrapTokens } from '../../src/identity/tokens';
import { setLogLevel } from '../../src/log';
import { AdsClient } from '../../src/xds/client';
import { SECRET } from '../../src/xds/resource-types';

setLogLevel(process.env.WEFT_LOG_LEVEL === undefined ? 'silent' : (process.env.WEFT_LOG_LEVEL as 'debug'));

/** A fresh temporary folder, removed by the returned cleanup. */
export function tempDir(prefix = 'weft-identity-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Opens (creating) a CA in a new temporary folder. */
export async function newCa(
  o: CaOptions = {},
): Promise<{ ca: CertificateAuthority; dir: string; cleanup: () => void }> {
  const t = tempDir('weft-ca-');
  const ca = await CertificateAuthority.open(new FileCaStore(t.dir), { trustDomain: 'mesh.test', ...o });
  return {
    ca,
    dir: t.dir,
    cleanup: () => {
      ca.close();
      t.cleanup();
    },
  };
}

/** A certificate endpoint with a bootstrap token file mapping `tokens` to identities. */
export async function startSigning(
  ca: CertificateAuthority,
  dir: string,
  tokens: Record<string, string>,
  ttlMs?: number,
): Promise<{
  server: CertificateServer;
  serving: ServingIdentity;
  target: string;
  stop: () => Promise<void>;
}> {
  const file = join(dir, 'tokens.yaml');
  const body = Object.entries(tokens)
    .map(([token, identity]) => `  - token: ${token}\n    identity: ${identity}\n`)
    .join('');
  await writeFileAtomic(file, `tokens:\n${body}`, 0o600);
  const reviewer = await BootstrapTokens.load(file, ca.trustDomain);
  const serving = await ServingIdentity.start(ca);
  const server = await startCertificateServer({
    ca,
    reviewer,
    address: '127.0.0.1:0',
    serving,
    ...(ttlMs ? { ttlMs } : {}),
  });
  return {
    server,
    serving,
    target: `127.0.0.1:${server.port}`,
    stop: async () => {
      await server.stop();
      serving.close();
    },
  };
}

/** Polls `pred` every 10 ms until it holds; throws after `timeoutMs`. */
export async function waitUntil(pred: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The gRPC status a call ends with: OK when it resolves, the error's code when it rejects. */
export async function codeOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return status.OK;
  } catch (e) {
    return (e as { code?: number }).code ?? -1;
  }
}

/** Resolves to true when something accepts TCP connections on the loopback port. */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Options of {@link secretsClient}. */
export interface SecretsClientOptions {
  /** Weft's xDS port on 127.0.0.1. */
  port: number;
  nodeId: string;
  /** Roots the client trusts for Weft's certificate. */
  bundlePem: string;
  /** The client certificate and key it presents. */
  certPem: string;
  keyPem: string;
  trustDomain?: string;
}

/**
 * An Envoy-flavored xDS client on its own mTLS connection to Weft, subscribed to its two SDS
 * secrets. Stream errors are swallowed; add an `error` listener to see them.
 */
export function secretsClient(o: SecretsClientOptions): AdsClient {
  const c = new AdsClient({
    target: `127.0.0.1:${o.port}`,
    nodeId: o.nodeId,
    metadata: { FLAVOR: 'envoy' },
    mode: 'sotw',
    ownConnection: true,
    credentials: controlPlaneChannelCredentials({
      bundlePem: o.bundlePem,
      serverIdentity: controlPlaneIdentity(o.trustDomain ?? 'cluster.local'),
      certPem: o.certPem,
      keyPem: o.keyPem,
    }),
  });
  c.on('error', () => undefined);
  c.subscribe(SECRET, [IDENTITY_SECRET, TRUST_SECRET]);
  return c;
}

/** The value of an unlabelled metric on a Weft admin server (NaN when absent). */
export async function metricValue(adminUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{\\})? (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}
