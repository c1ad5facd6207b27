/**
 * The mesh CA and its certificates: the X.509-SVID profile, validity windows, chain verification
 * with Node's own X509Certificate, two-phase root rotation with an overlap bundle, SDS secrets,
 * and the faults a person must be told about by file, field and fix.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkJson } from '../../src/envoy/codec';
import { backdateMs, CaError, CertificateAuthority, rotateCa } from '../../src/identity/ca';
import { IDENTITY_SECRET, TRUST_SECRET } from '../../src/identity/names';
import { SECRET_MESSAGE, WorkloadSecrets } from '../../src/identity/sds';
import {
  identityFromArgument,
  identityOfServiceAccountUser,
  parseSpiffeId,
  SpiffeIdError,
  spiffeId,
  workloadOf,
} from '../../src/identity/spiffe';
import { FileCaStore, ProvidedCaStore } from '../../src/identity/store';
import { ServingIdentity } from '../../src/identity/tls';
import {
  createCsr,
  dnsSans,
  generateKey,
  keyUsages,
  parseCertificates,
  sanIsCritical,
  uriSans,
} from '../../src/identity/x509';
import * as translateNames from '../../src/translate/names';
import { newCa, tempDir, waitUntil } from './util';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function spkiOf(pemKey: string): Uint8Array {
  return new Uint8Array(createPublicKey(pemKey).export({ type: 'spki', format: 'der' }));
}

describe('SPIFFE IDs', () => {
  it('formats and parses the ServiceAccount form', () => {
    const id = spiffeId('mesh.test', 'bookstore', 'bookbuyer');
    assert.equal(id, 'spiffe://mesh.test/ns/bookstore/sa/bookbuyer');
    assert.deepEqual(workloadOf(id), {
      trustDomain: 'mesh.test',
      namespace: 'bookstore',
      serviceAccount: 'bookbuyer',
    });
    assert.deepEqual(parseSpiffeId('spiffe://mesh.test'), { trustDomain: 'mesh.test', path: '' });
    assert.equal(identityFromArgument('bookstore/bookbuyer', 'mesh.test'), id);
    assert.equal(identityFromArgument(id, undefined), id);
    assert.equal(identityOfServiceAccountUser('system:serviceaccount:bookstore:bookbuyer', 'mesh.test'), id);
    assert.equal(identityOfServiceAccountUser('alice', 'mesh.test'), undefined);
  });

  it('refuses every malformed spelling, saying why', () => {
    for (const [bad, why] of [
      ['http://mesh.test/ns/a/sa/b', /must start with spiffe:\/\//],
      ['spiffe://Mesh.Test/ns/a/sa/b', /lowercase/],
      ['spiffe://mesh.test/ns//sa/b', /empty path segment/],
      ['spiffe://mesh.test/ns/a/sa/b/', /empty path segment/],
      ['spiffe://mesh.test/ns/../sa/b', /"\." and "\.\."/],
      ['spiffe://mesh.test/ns/a/sa/b?x=1', /no query/],
      ['spiffe://mesh.test:443/ns/a/sa/b', /may only contain/],
    ] as const) {
      assert.throws(
        () => parseSpiffeId(bad),
        (e: Error) => e instanceof SpiffeIdError && why.test(e.message),
        bad,
      );
    }
    assert.throws(() => identityFromArgument('bookbuyer', 'mesh.test'), /<namespace>\/<service-account>/);
    assert.equal(workloadOf('spiffe://mesh.test/other/path'), undefined);
  });

  it('shares the secret and certificate provider names with translation', () => {
    assert.equal(IDENTITY_SECRET, 'weft-identity');
    assert.equal(TRUST_SECRET, 'weft-ca');
    assert.equal(translateNames.IDENTITY_SECRET, IDENTITY_SECRET);
    assert.equal(translateNames.TRUST_SECRET, TRUST_SECRET);
  });
});

describe('the mesh CA', () => {
  const cleanups: (() => void)[] = [];
  after(() => {
    for (const c of cleanups) c();
  });

  it('creates an ECDSA P-256 root on first start, with the key file 0600', async () => {
    const { ca, dir, cleanup } = await newCa();
    cleanups.push(cleanup);
    assert.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
    const [root] = parseCertificates(readFileSync(join(dir, 'ca.pem'), 'utf8'), 'ca.pem');
    assert.ok(root!.ca);
    assert.equal(root!.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.deepEqual(keyUsages(root!).sort(), ['cRLSign', 'keyCertSign']);
    assert.deepEqual(uriSans(root!), ['spiffe://mesh.test']);
    assert.ok(root!.checkIssued(root!) && root!.verify(root!.publicKey), 'self-signed');
    assert.equal(readFileSync(join(dir, 'bundle.pem'), 'utf8'), ca.bundlePem());
    // A second start loads the same root.
    const again = await CertificateAuthority.open(new FileCaStore(dir));
    assert.equal(again.trustDomain, 'mesh.test');
    assert.equal(again.bundlePem(), ca.bundlePem());
    again.close();
  });

  it('issues X.509-SVIDs: one exact SPIFFE URI SAN, no DNS SAN, the right usages, a 24 h window', async () => {
    const { ca, cleanup } = await newCa();
    cleanups.push(cleanup);
    const before = Date.now();
    const issued = await ca.issueWithNewKey('bookstore/bookbuyer');
    const after = Date.now();
    const leaf = new X509Certificate(issued.chainPem);
    assert.equal(leaf.subjectAltName, 'URI:spiffe://mesh.test/ns/bookstore/sa/bookbuyer');
    assert.deepEqual(uriSans(leaf), ['spiffe://mesh.test/ns/bookstore/sa/bookbuyer']);
    assert.deepEqual(dnsSans(leaf), []);
    assert.ok(sanIsCritical(leaf), 'the subject is empty, so the SAN is critical');
    assert.ok(!leaf.subject, 'empty subject');
    assert.equal(leaf.ca, false);
    assert.deepEqual(keyUsages(leaf), ['digitalSignature']);
    assert.deepEqual([...(leaf.keyUsage ?? [])].sort(), [SERVER_AUTH, CLIENT_AUTH].sort());
    // Validity: [now - backdate, now + 24 h], to the second X.509 keeps.
    const day = 24 * 3600_000;
    const nb = new Date(leaf.validFrom).getTime();
    const na = new Date(leaf.validTo).getTime();
    assert.ok(
      nb >= before - backdateMs(day) - 1000 && nb <= after - backdateMs(day),
      `notBefore ${leaf.validFrom}`,
    );
    assert.ok(na >= before + day - 1000 && na <= after + day, `notAfter ${leaf.validTo}`);
    assert.equal(
      issued.renewAt.getTime(),
      issued.notBefore.getTime() + (2 / 3) * (issued.notAfter.getTime() - issued.notBefore.getTime()),
    );
    // The chain verifies with Node's X509Certificate against the bundle root, and the key matches.
    const [root] = parseCertificates(ca.bundlePem(), 'bundle');
    assert.ok(leaf.checkIssued(root!));
    assert.ok(leaf.verify(root!.publicKey));
    assert.ok(leaf.checkPrivateKey(createPrivateKey(issued.keyPem)));
    assert.deepEqual(ca.verifyPeer(leaf), {
      ok: true,
      identity: 'spiffe://mesh.test/ns/bookstore/sa/bookbuyer',
    });
  });

  it('signs the key of a CSR, ignoring whatever else the CSR asks for, and refuses a forged CSR', async () => {
    const { ca, cleanup } = await newCa();
    cleanups.push(cleanup);
    const key = await generateKey();
    const csr = await createCsr(key);
    const issued = await ca.issueForCsr(csr, 'spiffe://mesh.test/ns/a/sa/b', 3600_000);
    assert.ok(issued.certificate.checkPrivateKey(key));
    assert.equal(issued.notAfter.getTime() - issued.notBefore.getTime(), 3600_000 + backdateMs(3600_000));
    // Flip one byte of the signature: the CSR no longer proves possession of its key.
    const der = Buffer.from(csr.replace(/-----[A-Z ]+-----|\s/g, ''), 'base64');
    der[der.length - 5] = der[der.length - 5]! ^ 0xff;
    const forged = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    await assert.rejects(ca.issueForCsr(forged, 'a/b'), /does not verify|does not parse/);
    await assert.rejects(ca.issueForCsr(csr, 'spiffe://other.test/ns/a/sa/b'), /trust domain other\.test/);
  });

  it('refuses peers that are expired, foreign or not X.509-SVIDs', async () => {
    const { ca, cleanup } = await newCa();
    const foreign = await newCa();
    cleanups.push(cleanup, foreign.cleanup);
    const f = await foreign.ca.issueWithNewKey('a/b');
    assert.match(
      (ca.verifyPeer(f.certificate) as { reason: string }).reason,
      /does not chain to a mesh root/,
    );
    const short = await ca.issueWithNewKey('a/b', 1000);
    await new Promise((r) => setTimeout(r, 1100));
    assert.match((ca.verifyPeer(short.certificate) as { reason: string }).reason, /expired at/);
    assert.match((ca.verifyPeer(ca.bundle()[0]!) as { reason: string }).reason, /CA certificate/);
  });
});

describe('root rotation', () => {
  it('trusts old and new roots during the overlap, switches the signer at activation, drops the old root after', async () => {
    let now = Date.now();
    const t = tempDir();
    const store = new FileCaStore(t.dir);
    const clock = (): number => now;
    const ca = await CertificateAuthority.open(store, { trustDomain: 'mesh.test', now: clock });
    const oldRoot = ca.signer().certificate;
    const oldLeaf = await ca.issueWithNewKey('a/b');

    const r = await rotateCa(store, { now, activateAfterMs: 10 * 60_000, workloadTtlMs: 24 * 3600_000 });
    assert.equal(r.activatesAt.getTime(), now + 10 * 60_000);
    assert.equal(r.previousTrustedUntil.getTime(), r.activatesAt.getTime() + 24 * 3600_000);
    let changes = 0;
    ca.on('change', () => changes++);
    assert.equal(await ca.reload(), true);
    assert.equal(changes, 1, 'the bundle grew');

    // Phase 1: both trusted, the old root still signs.
    assert.equal(ca.bundle().length, 2);
    assert.equal(ca.signer().certificate.fingerprint256, oldRoot.fingerprint256);
    assert.deepEqual(
      ca.status().map((s) => s.role),
      ['signing', 'pending'],
    );
    const bundleFile = readFileSync(join(t.dir, 'bundle.pem'), 'utf8');
    assert.equal(parseCertificates(bundleFile, 'bundle.pem').length, 2);

    // Phase 2: after activation the new root signs; old certificates still verify.
    now = r.activatesAt.getTime() + 1000;
    const newRoot = ca.signer().certificate;
    assert.notEqual(newRoot.fingerprint256, oldRoot.fingerprint256);
    assert.deepEqual(
      ca.status().map((s) => s.role),
      ['retiring', 'signing'],
    );
    const newLeaf = await ca.issueWithNewKey('a/b');
    assert.ok(newLeaf.certificate.verify(newRoot.publicKey));
    const bundle = ca.bundle();
    for (const leaf of [oldLeaf.certificate, newLeaf.certificate]) {
      assert.ok(bundle.some((root) => leaf.checkIssued(root) && leaf.verify(root.publicKey)));
    }

    // Phase 3: after the old root's trust end only the new root remains.
    now = r.previousTrustedUntil.getTime() + 1000;
    assert.deepEqual(
      ca.bundle().map((c) => c.fingerprint256),
      [newRoot.fingerprint256],
    );
    assert.deepEqual(
      ca.status().map((s) => s.role),
      ['untrusted', 'signing'],
    );
    // The next rotation forgets it on disk.
    await rotateCa(store, { now, activateAfterMs: 0 });
    const reloaded = await store.load();
    assert.equal(reloaded?.roots.length, 2);
    ca.close();
    t.cleanup();
  });

  it('moves SDS certificates and the serving certificate to the new root at activation, not at renewal time', async () => {
    let now = Date.now();
    const t = tempDir();
    const store = new FileCaStore(t.dir);
    const ca = await CertificateAuthority.open(store, { trustDomain: 'mesh.test', now: () => now });
    const secrets = new WorkloadSecrets(ca);
    const serving = await ServingIdentity.start(ca);
    try {
      const id = 'spiffe://mesh.test/ns/a/sa/b';
      await secrets.secretsFor(id);
      const r = await rotateCa(store, { now, activateAfterMs: 30_000, workloadTtlMs: 30_000 });
      await ca.reload();
      assert.ok(ca.isFromSigner(secrets.certificateOf(id)!.certificate), 'the old root still signs');
      now = r.activatesAt.getTime() + 1;
      ca.tick();
      const newRoot = ca.signer().certificate;
      await waitUntil(
        () => secrets.certificateOf(id)!.certificate.checkIssued(newRoot),
        10_000,
        'the SDS certificate from the new root',
      );
      await waitUntil(
        () => serving.certificate.certificate.checkIssued(newRoot),
        10_000,
        'the serving certificate',
      );
      assert.ok(ca.isFromSigner(secrets.certificateOf(id)!.certificate));
      assert.equal(ca.signFailures, 0);
    } finally {
      serving.close();
      secrets.close();
      ca.close();
      t.cleanup();
    }
  });

  it('cuts certificates a retiring root issues at its trust end', async () => {
    let now = Date.now();
    const t = tempDir();
    const store = new FileCaStore(t.dir);
    const ca = await CertificateAuthority.open(store, {
      trustDomain: 'mesh.test',
      now: () => now,
      workloadTtlMs: 48 * 3600_000,
    });
    const r = await rotateCa(store, { now, activateAfterMs: 60_000, workloadTtlMs: 3600_000 });
    await ca.reload();
    now += 1000;
    const leaf = await ca.issueWithNewKey('a/b');
    assert.equal(leaf.notAfter.getTime(), r.previousTrustedUntil.getTime());
    ca.close();
    t.cleanup();
  });
});

describe('SDS secrets', () => {
  it('gives each identity its own certificate and the bundle, in valid Envoy Secret JSON, renewed before expiry', async () => {
    const { ca, cleanup } = await newCa();
    const secrets = new WorkloadSecrets(ca, { ttlMs: 1500 });
    try {
      const a = await secretsPair(secrets, 'bookstore/bookbuyer');
      const b = await secretsPair(secrets, 'bookstore/bookstore');
      for (const s of [...a.list, ...b.list]) assert.deepEqual(checkJson(SECRET_MESSAGE, s), []);
      assert.deepEqual(
        a.list.map((s) => s.name),
        [IDENTITY_SECRET, TRUST_SECRET],
      );
      assert.deepEqual(uriSans(a.cert), ['spiffe://mesh.test/ns/bookstore/sa/bookbuyer']);
      assert.deepEqual(uriSans(b.cert), ['spiffe://mesh.test/ns/bookstore/sa/bookstore']);
      assert.notEqual(a.key, b.key, 'no identity sees another one key');
      // Cached: asking again gives the same certificate.
      const again = await secretsPair(secrets, 'spiffe://mesh.test/ns/bookstore/sa/bookbuyer');
      assert.equal(again.cert.fingerprint256, a.cert.fingerprint256);
      // Renewal at 2/3 of 1.5 s raises a change for that identity with a new certificate.
      const changed: string[][] = [];
      secrets.on('change', (ids: string[]) => changed.push(ids));
      await waitUntil(
        () => changed.some((ids) => ids.includes('spiffe://mesh.test/ns/bookstore/sa/bookbuyer')),
        5000,
      );
      const renewed = secrets.current('spiffe://mesh.test/ns/bookstore/sa/bookbuyer')!;
      const renewedCert = new X509Certificate(
        (renewed[0]!.tls_certificate as Record<string, Record<string, string>>).certificate_chain!
          .inline_string!,
      );
      assert.notEqual(renewedCert.fingerprint256, a.cert.fingerprint256);
    } finally {
      secrets.close();
      cleanup();
    }
  });
});

async function secretsPair(secrets: WorkloadSecrets, id: string) {
  const list = await secrets.secretsFor(id);
  const tls = list[0]!.tls_certificate as {
    certificate_chain: { inline_string: string };
    private_key: { inline_string: string };
  };
  return {
    list,
    cert: new X509Certificate(tls.certificate_chain.inline_string),
    key: tls.private_key.inline_string,
  };
}

describe('CA faults name the file, the field and the fix', () => {
  it('a corrupt ca.pem', async () => {
    const { dir, cleanup } = await newCa();
    writeFileSync(
      join(dir, 'ca.pem'),
      '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n',
    );
    await assert.rejects(CertificateAuthority.open(new FileCaStore(dir)), (e: Error) => {
      assert.ok(e instanceof CaError);
      assert.match(e.message, new RegExp(`${join(dir, 'ca.pem')}: certificate #1 does not parse`));
      assert.match(e.message, /restore it from a backup/);
      return true;
    });
    cleanup();
  });

  it('a key that is not PEM, and a key of another root', async () => {
    const { dir, cleanup } = await newCa();
    const other = await newCa();
    const good = readFileSync(join(dir, 'ca-key.pem'), 'utf8');
    writeFileSync(join(dir, 'ca-key.pem'), 'garbage');
    await assert.rejects(
      CertificateAuthority.open(new FileCaStore(dir)),
      /ca-key\.pem: no PEM private key .*restore it from a backup/,
    );
    writeFileSync(join(dir, 'ca-key.pem'), readFileSync(join(other.dir, 'ca-key.pem')));
    await assert.rejects(
      CertificateAuthority.open(new FileCaStore(dir)),
      /ca-key\.pem does not belong to .*ca\.pem: their public keys differ/,
    );
    writeFileSync(join(dir, 'ca-key.pem'), good);
    await CertificateAuthority.open(new FileCaStore(dir)).then((c) => c.close());
    cleanup();
    other.cleanup();
  });

  it('a certificate that cannot sign (CA:FALSE) brought with --ca-cert', async () => {
    const { ca, dir, cleanup } = await newCa();
    const leaf = await ca.issueWithNewKey('a/b');
    writeFileSync(join(dir, 'leaf.pem'), leaf.chainPem);
    writeFileSync(join(dir, 'leaf-key.pem'), leaf.keyPem);
    await assert.rejects(
      CertificateAuthority.open(new ProvidedCaStore(join(dir, 'leaf.pem'), join(dir, 'leaf-key.pem'))),
      /leaf\.pem: basicConstraints has CA:FALSE, so it cannot sign certificates; give Weft a CA certificate/,
    );
    cleanup();
  });

  it('a bad field in ca.json', async () => {
    const { dir, cleanup } = await newCa();
    writeFileSync(
      join(dir, 'ca.json'),
      JSON.stringify({ version: 1, previous: [{ certificate: 'x.pem', trustedUntil: 'soon' }] }),
    );
    await assert.rejects(
      CertificateAuthority.open(new FileCaStore(dir)),
      /ca\.json: previous\[0\]\.trustedUntil: not an ISO 8601 date/,
    );
    cleanup();
  });

  it('clock skew: a root not valid yet on this machine', async () => {
    const { dir, cleanup } = await newCa();
    const past = Date.now() - 3600_000;
    await assert.rejects(
      CertificateAuthority.open(new FileCaStore(dir), { now: () => past }),
      /ca\.pem: notBefore .* is \d+ s ahead of this machine's clock: this machine's clock is behind.*fix the clock/,
    );
    cleanup();
  });

  it('a trust domain that disagrees with the root', async () => {
    const { dir, cleanup } = await newCa();
    await assert.rejects(
      CertificateAuthority.open(new FileCaStore(dir), { trustDomain: 'other.test' }),
      /is the root of trust domain "mesh\.test" but Weft runs with --trust-domain other\.test/,
    );
    cleanup();
  });

  it('a corrupted CA on reload keeps the loaded roots serving', async () => {
    const { ca, dir, cleanup } = await newCa();
    const before = ca.bundlePem();
    writeFileSync(join(dir, 'ca.pem'), 'nothing');
    const failures: Error[] = [];
    ca.on('reloadFailed', (e: Error) => failures.push(e));
    assert.equal(await ca.reload(), false);
    assert.match(failures[0]?.message ?? '', /ca\.pem: no PEM certificate/);
    assert.equal(ca.bundlePem(), before);
    const leaf = await ca.issueWithNewKey('a/b');
    assert.ok(leaf.certificate.verify(ca.bundle()[0]!.publicKey));
    cleanup();
  });

  it('no CA and a read-only store refuse to rotate', async () => {
    const { dir, cleanup } = await newCa();
    await assert.rejects(
      rotateCa(new ProvidedCaStore(join(dir, 'ca.pem'), join(dir, 'ca-key.pem'))),
      /replace those files instead/,
    );
    const empty = tempDir();
    await assert.rejects(rotateCa(new FileCaStore(empty.dir)), /no CA in folder .* weft ca init/);
    empty.cleanup();
    cleanup();
  });

  it('spkiOf helper round-trips a key', async () => {
    const { ca, cleanup } = await newCa();
    const pair = await ca.issueWithNewKey('a/b');
    const issued = await ca.issue(spkiOf(pair.keyPem), 'a/b');
    assert.ok(issued.certificate.checkPrivateKey(createPrivateKey(pair.keyPem)));
    cleanup();
  });
});
