/**
 * The sidecar injector: a mutating admission webhook (AdmissionReview v1 at `/inject`) served by
 * fastify over HTTPS.
 *
 * - Its serving certificate comes from the mesh CA, for the DNS name the API server dials
 *   (`weft.<mesh-namespace>.svc`), renewed at two thirds of its life and re-issued when the CA
 *   changes; the new certificate applies to the next handshakes without a restart.
 * - At start (and after a CA change) it writes the CA's trust bundle into every
 *   `webhooks[].clientConfig.caBundle` of the `weft-sidecar-injector` MutatingWebhookConfiguration,
 *   so the API server trusts it; Weft's RBAC allows get and patch on that one object only.
 * - It never blocks a pod: a pod it cannot handle is admitted unchanged, with an AdmissionReview
 *   warning (shown by kubectl) and a Warning Event naming the pod and the reason. The webhook
 *   configuration's failurePolicy Ignore does the same when Weft cannot be reached at all.
 * - The same server validates EnvoyPatches (`/validate-envoypatch`, the
 *   `weft-envoypatch-validator` ValidatingWebhookConfiguration): a patch that would apply nowhere
 *   is refused with the reason, so `kubectl apply` prints it. What it checks is the caller's
 *   (`validatePatch`, src/mesh/patch-admission.ts); its caBundle is kept like the injector's.
 * - It validates SMI objects too (`/validate-smi`, the `weft-smi-validator` configuration): an
 *   object invalid in itself is refused with its condition's message; findings that depend on
 *   other objects come back as warnings (`validateSmi`, src/mesh/smi-admission.ts).
 */
import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyInstance } from 'fastify';
import type { CertificateAuthority, IssuedKeyPair } from '../identity/ca';
import { ServingCertificate } from '../identity/serving-cert';
import { controlPlaneIdentity, SERVING_TTL_MS } from '../identity/tls';
import { messageOf } from '../identity/x509';
import { KubeApiError, type KubeClient, type KubeObject } from '../kube/client';
import { logger } from '../log';
import { type InjectorOptions, injectPod } from './mutate';

const log = logger('inject');

/** The MutatingWebhookConfiguration whose caBundle Weft keeps (deploy/helm/weft). */
export const WEBHOOK_CONFIGURATION = 'weft-sidecar-injector';
/** The path the API server posts AdmissionReviews to. */
export const INJECT_PATH = '/inject';
/** The ValidatingWebhookConfiguration of EnvoyPatches, whose caBundle Weft keeps too. */
export const PATCH_WEBHOOK_CONFIGURATION = 'weft-envoypatch-validator';
/** Where the API server posts EnvoyPatch AdmissionReviews. */
export const VALIDATE_PATCH_PATH = '/validate-envoypatch';
/** The ValidatingWebhookConfiguration of SMI objects, whose caBundle Weft keeps too. */
export const SMI_WEBHOOK_CONFIGURATION = 'weft-smi-validator';
/** Where the API server posts SMI AdmissionReviews. */
export const VALIDATE_SMI_PATH = '/validate-smi';
/**
 * How long a patch check may take before the patch is admitted with a warning: under the chart's
 * default timeoutSeconds (5), leaving time for the round trip.
 */
export const PATCH_CHECK_BUDGET_MS = 3500;

/** The answer of an EnvoyPatch check (see src/mesh/patch-admission.ts). */
export interface PatchCheck {
  readonly allowed: boolean;
  readonly message?: string;
  readonly warnings?: readonly string[];
}

/** Options of {@link InjectionWebhook.start}. */
export interface WebhookOptions {
  /** `host:port` to listen on (`weft serve --webhook-address`). */
  address: string;
  ca: CertificateAuthority;
  /** For Events and the caBundle; without it the webhook only answers. */
  client?: KubeClient;
  injector: InjectorOptions;
  /** Weft's namespace: the certificate is for `weft.<ns>.svc` (default weft-system). */
  meshNamespace?: string;
  /** Extra DNS names and IP addresses of the serving certificate (a webhook reached by URL). */
  extraDnsNames?: readonly string[];
  extraIpAddresses?: readonly string[];
  /** The configuration to keep the caBundle of (default weft-sidecar-injector). */
  configuration?: string;
  /**
   * Checks an EnvoyPatch (the object of a CREATE or UPDATE) within `budgetMs`; without it,
   * `/validate-envoypatch` admits everything.
   */
  validatePatch?: (patch: KubeObject, budgetMs: number) => Promise<PatchCheck>;
  /** The validating configuration to keep the caBundle of (default weft-envoypatch-validator). */
  patchConfiguration?: string;
  /**
   * Checks an SMI object (the object of a CREATE or UPDATE, with its namespace); without it,
   * `/validate-smi` admits everything.
   */
  validateSmi?: (object: KubeObject) => PatchCheck;
  /** The SMI validating configuration to keep the caBundle of (default weft-smi-validator). */
  smiConfiguration?: string;
}

interface AdmissionRequest {
  uid: string;
  kind?: { kind?: string };
  namespace?: string;
  name?: string;
  operation?: string;
  dryRun?: boolean;
  object?: KubeObject;
}

interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: { code: number; reason: string; message: string };
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
}

/** Counters of what the webhook did (metrics and tests). */
export interface WebhookStats {
  injected: number;
  skipped: number;
  failed: number;
  bundlePatches: number;
  /** EnvoyPatches checked, and of which refused. */
  patchesChecked: number;
  patchesRefused: number;
  /** SMI objects checked, and of which refused. */
  smiChecked: number;
  smiRefused: number;
}

/** A running sidecar injector. */
export class InjectionWebhook {
  readonly stats: WebhookStats = {
    injected: 0,
    skipped: 0,
    failed: 0,
    bundlePatches: 0,
    patchesChecked: 0,
    patchesRefused: 0,
    smiChecked: 0,
    smiRefused: 0,
  };
  private closed = false;
  private readonly cert: ServingCertificate;

  private constructor(
    private readonly o: WebhookOptions,
    private readonly app: FastifyInstance,
    first: IssuedKeyPair,
    /** The URL it listens on. */
    readonly url: string,
  ) {
    this.cert = new ServingCertificate(
      {
        ca: o.ca,
        issue: () => issue(o),
        apply: (next) =>
          (app.server as HttpsServer).setSecureContext({ key: next.keyPem, cert: next.chainPem }),
        onCaChange: () => void this.patchBundle(),
        what: 'the injector',
      },
      first,
    );
  }

  /** Issues the serving certificate, listens, and patches the caBundle (a failure there is logged). */
  static async start(o: WebhookOptions): Promise<InjectionWebhook> {
    const first = await issue(o);
    const app = Fastify({
      https: { key: first.keyPem, cert: first.chainPem },
      // A pod with many containers and large environments can be big; the API server caps it anyway.
      bodyLimit: 8 * 1024 * 1024,
      logger: false,
    });
    let self: InjectionWebhook | undefined;
    // The injector and the validating webhooks: the same AdmissionReview envelope around each.
    const handlers: [string, (r: AdmissionRequest) => AdmissionResponse | Promise<AdmissionResponse>][] = [
      [INJECT_PATH, (r) => self!.review(r)],
      [VALIDATE_PATCH_PATH, (r) => self!.validatePatch(r)],
      [VALIDATE_SMI_PATH, (r) => self!.validateSmi(r)],
    ];
    for (const [path, answer] of handlers) {
      app.post(path, async (req, reply) => {
        const review = req.body as { apiVersion?: string; request?: AdmissionRequest } | undefined;
        if (!review?.request?.uid) {
          return reply
            .code(400)
            .send({ error: 'expected an admission.k8s.io/v1 AdmissionReview with a request' });
        }
        return {
          apiVersion: 'admission.k8s.io/v1',
          kind: 'AdmissionReview',
          response: await answer(review.request),
        };
      });
    }
    const i = o.address.lastIndexOf(':');
    const url = await app.listen({
      host: o.address.slice(0, i).replace(/^\[|\]$/g, ''),
      port: Number(o.address.slice(i + 1)),
    });
    self = new InjectionWebhook(o, app, first, url);
    log.info('sidecar injector listening', { url: `${url}${INJECT_PATH}` });
    await self.patchBundle();
    return self;
  }

  /** The port it listens on. */
  get port(): number {
    return Number(new URL(this.url).port);
  }

  /** The serving certificate presented now. */
  get certificate(): IssuedKeyPair {
    return this.cert.current;
  }

  /** Answers one admission request: always allowed; patched when the pod is injected. */
  review(r: AdmissionRequest): AdmissionResponse {
    const pod = r.object;
    if (r.kind?.kind !== 'Pod' || !pod) {
      this.stats.skipped++;
      return { uid: r.uid, allowed: true };
    }
    // The pod in a CREATE request may have no namespace yet: the request carries it.
    const named: KubeObject = {
      ...pod,
      metadata: { ...pod.metadata, namespace: pod.metadata?.namespace ?? r.namespace },
    };
    let result: ReturnType<typeof injectPod>;
    try {
      result = injectPod(named, this.o.injector);
    } catch (err) {
      result = { outcome: 'error', reason: `pod ${r.namespace}/${r.name || '?'}: ${messageOf(err)}` };
    }
    if (result.outcome === 'inject') {
      this.stats.injected++;
      return {
        uid: r.uid,
        allowed: true,
        patchType: 'JSONPatch',
        patch: Buffer.from(JSON.stringify(result.patch)).toString('base64'),
      };
    }
    if (result.outcome === 'skip') {
      this.stats.skipped++;
      return { uid: r.uid, allowed: true };
    }
    this.stats.failed++;
    const warning = `Weft did not inject its sidecar: ${result.reason}`;
    log.warn('pod admitted without injection', { namespace: r.namespace, reason: result.reason });
    // A dry run must have no side effects (the configuration says sideEffects: None).
    if (!r.dryRun) void this.event(named, warning);
    return { uid: r.uid, allowed: true, warnings: [warning] };
  }

  /**
   * Answers one EnvoyPatch admission request: refused, with the reason, when the patch would apply
   * nowhere. A check that fails to run admits the patch (Weft still checks it before serving).
   */
  async validatePatch(r: AdmissionRequest): Promise<AdmissionResponse> {
    const check = this.o.validatePatch;
    if (!check || r.kind?.kind !== 'EnvoyPatch' || !r.object || r.operation === 'DELETE') {
      return { uid: r.uid, allowed: true };
    }
    this.stats.patchesChecked++;
    const response = await validated(r, 'EnvoyPatch', (o) => check(o, PATCH_CHECK_BUDGET_MS));
    if (!response.allowed) this.stats.patchesRefused++;
    return response;
  }

  /**
   * Answers one SMI admission request: refused, with the condition's message, when the object is
   * invalid in itself; admitted, with warnings, otherwise. A check that throws admits the object
   * (Weft reports its conditions anyway once it reads it).
   */
  async validateSmi(r: AdmissionRequest): Promise<AdmissionResponse> {
    const check = this.o.validateSmi;
    if (!check || !r.object || r.operation === 'DELETE') return { uid: r.uid, allowed: true };
    this.stats.smiChecked++;
    const response = await validated(r, r.kind?.kind ?? 'object', async (o) => check(o));
    if (!response.allowed) this.stats.smiRefused++;
    return response;
  }

  private async event(pod: KubeObject, message: string): Promise<void> {
    const client = this.o.client;
    if (!client) return;
    const ns = pod.metadata?.namespace ?? 'default';
    const m = pod.metadata as { name?: string; generateName?: string } | undefined;
    // The pod does not exist yet (no uid): the Event names it by name, or by its generateName.
    const name = m?.name || m?.generateName || 'pod';
    const now = new Date().toISOString();
    try {
      await client.request('POST', `/api/v1/namespaces/${ns}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${name.replace(/-$/, '')}.weft-inject.`, namespace: ns },
        involvedObject: { apiVersion: 'v1', kind: 'Pod', name, namespace: ns },
        reason: 'SidecarNotInjected',
        message,
        type: 'Warning',
        source: { component: 'weft-injector' },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    } catch (err) {
      log.warn('could not write the injection Event', { namespace: ns, pod: name, error: messageOf(err) });
    }
  }

  /**
   * Writes the CA bundle into each webhook of the configuration. A JSON patch with a `test` of
   * each webhook's name, so a configuration edited in between is not patched at the wrong index.
   */
  async patchBundle(): Promise<boolean> {
    const injector = await this.patchBundleOf(
      'mutatingwebhookconfigurations',
      this.o.configuration ?? WEBHOOK_CONFIGURATION,
    );
    const validator = this.o.validatePatch
      ? await this.patchBundleOf(
          'validatingwebhookconfigurations',
          this.o.patchConfiguration ?? PATCH_WEBHOOK_CONFIGURATION,
        )
      : true;
    const smi = this.o.validateSmi
      ? await this.patchBundleOf(
          'validatingwebhookconfigurations',
          this.o.smiConfiguration ?? SMI_WEBHOOK_CONFIGURATION,
        )
      : true;
    return injector && validator && smi;
  }

  private async patchBundleOf(resource: string, name: string): Promise<boolean> {
    const client = this.o.client;
    if (!client || this.closed) return false;
    const path = `/apis/admissionregistration.k8s.io/v1/${resource}/${name}`;
    const bundle = Buffer.from(this.o.ca.bundlePem()).toString('base64');
    try {
      const cfg = await client.request<{
        webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
      }>('GET', path);
      const ops = (cfg.webhooks ?? [])
        .map((w, i) => ({ w, i }))
        .filter(({ w }) => w.clientConfig?.caBundle !== bundle)
        .flatMap(({ w, i }) => [
          { op: 'test', path: `/webhooks/${i}/name`, value: w.name },
          { op: 'add', path: `/webhooks/${i}/clientConfig/caBundle`, value: bundle },
        ]);
      if (ops.length === 0) return true;
      await client.request('PATCH', path, ops, 'application/json-patch+json');
      this.stats.bundlePatches++;
      log.info('CA bundle written into the webhook configuration', { configuration: name });
      return true;
    } catch (err) {
      const why =
        err instanceof KubeApiError && err.status === 404
          ? `${resource === 'mutatingwebhookconfigurations' ? 'MutatingWebhookConfiguration' : 'ValidatingWebhookConfiguration'} ${name} does not exist; apply deploy/manifests/weft.yaml (weft install --apply)`
          : messageOf(err);
      log.error(
        'cannot write the CA bundle into the webhook configuration: the API server will not trust the injector',
        {
          configuration: name,
          error: why,
        },
      );
      return false;
    }
  }

  /** Stops listening and renewing. */
  async stop(): Promise<void> {
    this.closed = true;
    this.cert.stop();
    await this.app.close();
  }
}

function issue(o: WebhookOptions): Promise<IssuedKeyPair> {
  const ns = o.meshNamespace ?? 'weft-system';
  return o.ca.issueWithNewKey(controlPlaneIdentity(o.ca.trustDomain), SERVING_TTL_MS, {
    dnsNames: [`weft.${ns}.svc`, `weft.${ns}.svc.cluster.local`, ...(o.extraDnsNames ?? [])],
    ipAddresses: [...(o.extraIpAddresses ?? [])],
  });
}

/**
 * Runs a validating check on the object of `r` and turns its verdict into the response: refused
 * (422) with the check's message, or admitted with its warnings. A check that throws admits the
 * object with a warning, since Weft checks everything again when it reads it.
 */
async function validated(
  r: AdmissionRequest,
  what: string,
  check: (object: KubeObject) => Promise<PatchCheck>,
): Promise<AdmissionResponse> {
  // The object in a CREATE request may have no namespace yet: the request carries it.
  const object: KubeObject = {
    ...r.object,
    metadata: { ...r.object?.metadata, namespace: r.object?.metadata?.namespace ?? r.namespace },
  };
  let verdict: PatchCheck;
  try {
    verdict = await check(object);
  } catch (err) {
    log.warn(`${what} check failed; admitted`, {
      namespace: r.namespace,
      name: r.name,
      error: messageOf(err),
    });
    return { uid: r.uid, allowed: true, warnings: [`Weft could not check this ${what}: ${messageOf(err)}`] };
  }
  if (verdict.allowed) {
    return {
      uid: r.uid,
      allowed: true,
      ...(verdict.warnings?.length ? { warnings: [...verdict.warnings] } : {}),
    };
  }
  return {
    uid: r.uid,
    allowed: false,
    status: { code: 422, reason: 'Invalid', message: verdict.message ?? 'refused by Weft' },
  };
}
