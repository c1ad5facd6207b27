/**
 * Helpers for identity tests: temporary CA folders, a certificate endpoint with bootstrap
 * tokens, and waiting on conditions. Everything listens on 127.0.0.1 only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CaOptions, CertificateAuthority } from '../../src/identity/ca';
import { writeFileAtomic } from '../../src/identity/files';
import { type CertificateServer, startCertificateServer } from '../../src/identity/signing';
import { FileCaStore } from '../../src/identity/store';
import { ServingIdentity } from '../../src/identity/tls';
import { BootstrapTokens } from '../../src/identity/tokens';
import { setLogLevel } from '../../src/log';

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
