/**
 * A mesh with identity in folder mode for end-to-end tests: `weft serve` with a CA folder and the
 * certificate endpoint, a sidecar per ServiceAccount (from src/workload/mesh-peer), and store's v1
 * echo server over mTLS.
 */

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RunningServe, type ServeOptions, startServe } from '../../src/serve';
import { type EchoServer, startEchoServer } from '../../src/workload/echo';
import { type Sidecar, startSidecar, xdsServerCredentials } from '../../src/workload/mesh-peer';
import type { FixtureAddresses } from '../mesh/mesh-fixture';

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
