/**
 * `weft ca`: the mesh CA. `init` creates it in a folder (serve also does on first start),
 * `rotate` adds a new root with an overlap window, `status` shows each root's role, `bundle`
 * prints the trust bundle, `issue` makes a certificate and key locally (development: an Envoy's
 * client certificate for xDS, a test workload), and `token` adds a development bootstrap token.
 * `rotate`, `status`, `bundle` and `issue` work on the folder, a root the user brings, or, with
 * `--kubernetes`/`--kubeconfig`, the Secret a Kubernetes-mode Weft keeps its root in.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  CertificateAuthority,
  DEFAULT_ACTIVATE_AFTER_MS,
  DEFAULT_ROOT_TTL_MS,
  DEFAULT_TRUST_DOMAIN,
  DEFAULT_WORKLOAD_TTL_MS,
  rotateCa,
} from '../identity/ca';
import { formatDuration, parseDuration } from '../identity/duration';
import { writeFileAtomic } from '../identity/files';
import { CA_FILE, CERT_FILE, KEY_FILE } from '../identity/names';
import { type CaStore, FileCaStore, ProvidedCaStore } from '../identity/store';
import { addBootstrapToken } from '../identity/tokens';
import { KubeClient, loadKubeConfig } from '../kube/client';
import { DEFAULT_CA_SECRET, SecretCaStore } from '../kube/secret-ca-store';
import { setLogLevel } from '../log';
import type { CommandRegistrar } from './index';
import { UsageError } from './remote';
import { renderTable } from './table';

interface StoreFlags {
  caDir?: string;
  caCert?: string;
  caKey?: string;
  caTrust?: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  namespace: string;
  caSecret: string;
}

function storeFrom(f: StoreFlags): CaStore {
  const inCluster = f.kubernetes || f.kubeconfig !== undefined;
  const sources = [f.caDir !== undefined, f.caCert !== undefined || f.caKey !== undefined, inCluster];
  if (sources.filter(Boolean).length > 1)
    throw new UsageError(
      'give one CA: --ca-dir DIR, --ca-cert and --ca-key, or --kubernetes/--kubeconfig FILE',
    );
  if (f.caDir) return new FileCaStore(f.caDir);
  if (f.caCert && f.caKey) return new ProvidedCaStore(f.caCert, f.caKey, f.caTrust);
  if (inCluster)
    return new SecretCaStore(new KubeClient(loadKubeConfig(f.kubeconfig)), f.namespace, f.caSecret);
  throw new UsageError('give --ca-dir DIR, --ca-cert and --ca-key, or --kubernetes/--kubeconfig FILE');
}

/** Runs `fn`, turning errors into a message on stderr and exit code 1 (2 for bad arguments). */
async function run(
  name: string,
  setExitCode: (code: number) => void,
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
    setExitCode(0);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`weft ca ${name}: ${message}\n`);
    // A flag that cannot be used (a duration that is not one, no CA named) is a usage error.
    setExitCode(err instanceof UsageError || / is not a duration;/.test(message) ? 2 : 1);
  }
}

const withStore = (c: Command): Command =>
  c
    .option('--ca-dir <dir>', 'the CA folder (ca.pem, ca-key.pem, ca.json, previous/, bundle.pem)')
    .option('--ca-cert <file>', 'a root certificate you bring (PEM)')
    .option('--ca-key <file>', 'its private key (PEM)')
    .option('--ca-trust <file>', 'extra roots to keep trusting (PEM), with --ca-cert')
    .option(
      '--kubernetes',
      'the CA in Kubernetes mode: Secret --ca-secret in --namespace (current kubectl context)',
    )
    .option('--kubeconfig <file>', 'as --kubernetes, with this kubeconfig')
    .option('--namespace <ns>', "Weft's namespace, where its CA Secret lives", 'weft-system')
    .option('--ca-secret <name>', 'the CA Secret (weft serve --ca-secret)', DEFAULT_CA_SECRET);

/** Registers `weft ca`. */
export const registerCa: CommandRegistrar = (program: Command, setExitCode) => {
  const ca = program
    .command('ca')
    .description(
      'Manage the mesh CA: a folder, a root you bring, or the Secret of Kubernetes mode (--kubernetes).\n' +
        'Workload identities are SPIFFE IDs\n' +
        'spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, certified by short-lived X.509-SVIDs.',
    );

  ca.command('init')
    .description(
      'Create a CA folder with a new ECDSA P-256 root (weft serve --ca-dir also does this on first start).',
    )
    .requiredOption('--ca-dir <dir>', 'folder to create the CA in')
    .option('--trust-domain <domain>', 'trust domain', DEFAULT_TRUST_DOMAIN)
    .option('--root-ttl <duration>', 'lifetime of the root', formatDuration(DEFAULT_ROOT_TTL_MS))
    .action(async (f: { caDir: string; trustDomain: string; rootTtl: string }) =>
      run('init', setExitCode, async () => {
        setLogLevel('warn');
        const store = new FileCaStore(f.caDir);
        if (await store.load())
          throw new Error(`${store.dir} already holds a CA; use weft ca status or weft ca rotate`);
        const c = await CertificateAuthority.open(store, {
          trustDomain: f.trustDomain,
          rootTtlMs: parseDuration(f.rootTtl, '--root-ttl'),
        });
        c.close();
        const s = c.status()[0]!;
        process.stdout.write(
          `created CA in ${store.dir}\ntrust domain: ${c.trustDomain}\nroot: ${s.fingerprint} valid until ${s.notAfter.toISOString()}\n`,
        );
      }),
    );

  withStore(ca.command('rotate'))
    .description(
      'Add a new root. It is trusted at once and signs after --activate-after (so every peer has it\n' +
        'in its bundle first); the old root stays trusted until activation plus --cert-ttl, when no\n' +
        'certificate it issued is still valid. A running weft serve (every replica, in Kubernetes\n' +
        'mode) picks the change up by itself. Needs --ca-dir or --kubernetes/--kubeconfig: a root you\n' +
        'bring is rotated by replacing its files.',
    )
    .option(
      '--activate-after <duration>',
      'delay before the new root signs',
      formatDuration(DEFAULT_ACTIVATE_AFTER_MS),
    )
    .option(
      '--cert-ttl <duration>',
      'the longest workload certificate lifetime in use (weft serve --cert-ttl)',
      formatDuration(DEFAULT_WORKLOAD_TTL_MS),
    )
    .option('--root-ttl <duration>', 'lifetime of the new root', formatDuration(DEFAULT_ROOT_TTL_MS))
    .action(async (f: StoreFlags & { activateAfter: string; certTtl: string; rootTtl: string }) =>
      run('rotate', setExitCode, async () => {
        setLogLevel('warn');
        const r = await rotateCa(storeFrom(f), {
          activateAfterMs: parseDuration(f.activateAfter, '--activate-after'),
          workloadTtlMs: parseDuration(f.certTtl, '--cert-ttl'),
          rootTtlMs: parseDuration(f.rootTtl, '--root-ttl'),
        });
        process.stdout.write(
          `new root ${r.newRoot}\n` +
            `trusted now; signs from ${r.activatesAt.toISOString()}\n` +
            `previous roots trusted until ${r.previousTrustedUntil.toISOString()}\n`,
        );
      }),
    );

  withStore(ca.command('status'))
    .description(
      'Show every root: signing, pending (trusted, signs later), retiring (trusted until), untrusted.',
    )
    .option('--trust-domain <domain>', 'trust domain (default: from the root)')
    .action(async (f: StoreFlags & { trustDomain?: string }) =>
      run('status', setExitCode, async () => {
        setLogLevel('warn');
        const c = await CertificateAuthority.open(
          storeFrom(f),
          f.trustDomain ? { trustDomain: f.trustDomain } : {},
        );
        c.close();
        process.stdout.write(`trust domain: ${c.trustDomain}\n\n`);
        const rows = c
          .status()
          .map((s) => [
            s.role,
            s.fingerprint.slice(0, 16),
            s.subject,
            s.notBefore.toISOString(),
            s.notAfter.toISOString(),
            s.role === 'pending'
              ? `signs from ${s.activatesAt?.toISOString()}`
              : s.role === 'retiring'
                ? `trusted until ${s.trustedUntil?.toISOString()}`
                : '-',
            s.source,
          ]);
        process.stdout.write(
          renderTable(['ROLE', 'FINGERPRINT', 'SUBJECT', 'NOT BEFORE', 'NOT AFTER', 'WHEN', 'SOURCE'], rows),
        );
      }),
    );

  withStore(ca.command('bundle'))
    .description('Print the trust bundle (every root peers must trust now), PEM.')
    .action(async (f: StoreFlags) =>
      run('bundle', setExitCode, async () => {
        setLogLevel('warn');
        const c = await CertificateAuthority.open(storeFrom(f));
        c.close();
        process.stdout.write(c.bundlePem());
      }),
    );

  withStore(ca.command('issue'))
    .description(
      'Issue a workload certificate with a key made here, into --out (cert.pem, key.pem, ca.pem).\n' +
        'For development: e.g. the client certificate an Envoy presents to the xDS server.',
    )
    .requiredOption('--identity <id>', '<namespace>/<service-account> or a full spiffe:// ID')
    .requiredOption('--out <dir>', 'folder to write the files to')
    .option('--ttl <duration>', 'certificate lifetime', formatDuration(DEFAULT_WORKLOAD_TTL_MS))
    .action(async (f: StoreFlags & { identity: string; out: string; ttl: string }) =>
      run('issue', setExitCode, async () => {
        setLogLevel('warn');
        const c = await CertificateAuthority.open(storeFrom(f));
        c.close();
        const issued = await c.issueWithNewKey(f.identity, parseDuration(f.ttl, '--ttl'));
        await mkdir(f.out, { recursive: true });
        await writeFileAtomic(join(f.out, KEY_FILE), issued.keyPem, 0o600);
        await writeFileAtomic(join(f.out, CA_FILE), c.bundlePem());
        await writeFileAtomic(join(f.out, CERT_FILE), issued.chainPem);
        process.stdout.write(
          `${issued.identity}\nvalid until ${issued.notAfter.toISOString()}\nwritten to ${f.out}/{${CERT_FILE},${KEY_FILE},${CA_FILE}}\n`,
        );
      }),
    );

  ca.command('token')
    .description(
      'Add a development bootstrap token entitling one identity to the token file (created 0600)\n' +
        'and print it. weft serve --bootstrap-tokens FILE reads the file; weft agent --token-file sends it.',
    )
    .requiredOption('--tokens <file>', 'the bootstrap token file')
    .requiredOption('--identity <id>', '<namespace>/<service-account> or a full spiffe:// ID')
    .option('--trust-domain <domain>', 'trust domain', DEFAULT_TRUST_DOMAIN)
    .option('--name <name>', 'a name for the token, shown in logs')
    .action(async (f: { tokens: string; identity: string; trustDomain: string; name?: string }) =>
      run('token', setExitCode, async () => {
        const token = await addBootstrapToken(f.tokens, f.identity, f.trustDomain, f.name);
        process.stdout.write(`${token}\n`);
      }),
    );
};
