/**
 * `weft check`: what stands between a cluster and a working mesh, as findings that each say what
 * was seen and how to fix it. Before install (`--pre`): the API server, the installing user's
 * rights, the CRDs. After install: Weft's Deployment, its webhooks, its CA, the mesh namespaces,
 * SMI objects Weft ignores because their namespace is not in the mesh, and (when Weft's admin
 * server can be reached) proxies out of sync and NACKs.
 *
 * Only reads: a check never changes the cluster, so it is safe to run at any time and in a loop
 * (`weft install --apply --wait`).
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { SMI_KINDS } from '../smi/normalize';
import { CA_BUNDLE_CONFIGMAP } from './ca-bundle';
import { KubeApiError, type KubeClient, type KubeObject } from './client';
import { DEFAULT_CA_SECRET } from './secret-ca-store';
import { MESH_LABEL, MESH_LABEL_VALUE, WATCHED_KINDS } from './source';

/** How bad a finding is. `skipped` is a check that could not run; it is not a problem. */
export type FindingLevel = 'ok' | 'warning' | 'error' | 'skipped';

/** One thing `weft check` looked at. */
export interface Finding {
  level: FindingLevel;
  /** Which check: `api-server`, `permissions`, `crds`, `deployment`, `webhook`, ... */
  check: string;
  /** The object concerned, as `Kind/namespace/name`, when there is one. */
  object?: string;
  /** What was seen. */
  message: string;
  /** What to do about it (problems only). */
  fix?: string;
}

/** The injector webhook configuration the install creates. */
export const INJECTOR_WEBHOOK = 'weft-sidecar-injector';
/** The EnvoyPatch validating webhook configuration the install creates. */
export const PATCH_VALIDATOR_WEBHOOK = 'weft-envoypatch-validator';
/** The SMI validating webhook configuration the install creates. */
export const SMI_VALIDATOR_WEBHOOK = 'weft-smi-validator';
/** Weft's Deployment (and Service) name in its namespace. */
export const WEFT_DEPLOYMENT = 'weft';

const isNotFound = (err: unknown): boolean => err instanceof KubeApiError && err.status === 404;
const isForbidden = (err: unknown): boolean => err instanceof KubeApiError && err.status === 403;

/** `null` when the object does not exist; other errors are thrown. */
async function getOrNull<T = KubeObject>(client: KubeClient, path: string): Promise<T | null> {
  try {
    return await client.request<T>('GET', path);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * The REST resource (plural) of each kind the install manifests hold. Spelled out rather than
 * discovered: before install the CRD kinds are not served yet, and the question is about them.
 */
const PLURALS: Readonly<Record<string, string>> = {
  CustomResourceDefinition: 'customresourcedefinitions',
  Namespace: 'namespaces',
  PodDisruptionBudget: 'poddisruptionbudgets',
  ServiceAccount: 'serviceaccounts',
  ClusterRole: 'clusterroles',
  ClusterRoleBinding: 'clusterrolebindings',
  Role: 'roles',
  RoleBinding: 'rolebindings',
  Service: 'services',
  Deployment: 'deployments',
  MeshConfig: 'meshconfigs',
  MutatingWebhookConfiguration: 'mutatingwebhookconfigurations',
  ValidatingWebhookConfiguration: 'validatingwebhookconfigurations',
};

/** What the install needs to be allowed to do to one kind of object. */
interface Need {
  kind: string;
  group: string;
  resource: string;
  namespace?: string;
}

function needsOf(objects: readonly KubernetesObject[]): Need[] {
  const out = new Map<string, Need>();
  for (const o of objects) {
    const kind = o.kind ?? '';
    const apiVersion = o.apiVersion ?? '';
    const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
    const resource = PLURALS[kind] ?? `${kind.toLowerCase()}s`;
    const namespace = o.metadata?.namespace;
    const key = `${group}/${resource}/${namespace ?? ''}`;
    if (!out.has(key)) out.set(key, { kind, group, resource, ...(namespace ? { namespace } : {}) });
  }
  return [...out.values()];
}

/** Asks the API server whether the current user may `verb` the resource (SelfSubjectAccessReview). */
async function mayI(
  client: KubeClient,
  verb: string,
  n: Need,
): Promise<{ allowed: boolean; reason: string }> {
  const review = await client.request<{ status?: { allowed?: boolean; reason?: string } }>(
    'POST',
    '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: {
        resourceAttributes: {
          verb,
          group: n.group,
          resource: n.resource,
          ...(n.namespace ? { namespace: n.namespace } : {}),
        },
      },
    },
  );
  return { allowed: review.status?.allowed === true, reason: review.status?.reason ?? '' };
}

/**
 * Checks before install: the user may create and patch (server-side apply) every kind the
 * manifests hold, and which CRDs exist already. The API server itself is checked by the caller
 * (an unreachable one means nothing can be checked at all).
 */
export async function preInstallChecks(
  client: KubeClient,
  objects: readonly KubernetesObject[],
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const denied: string[] = [];
  for (const n of needsOf(objects)) {
    for (const verb of ['create', 'patch']) {
      const a = await mayI(client, verb, n);
      if (!a.allowed) {
        const resource = n.group ? `${n.resource}.${n.group}` : n.resource;
        denied.push(`${verb} ${resource}`);
        findings.push({
          level: 'error',
          check: 'permissions',
          message: `you may not ${verb} ${n.kind} (${resource})${n.namespace ? ` in namespace ${n.namespace}` : ' (cluster-wide)'}, which the install ${verb === 'create' ? 'creates' : 'applies'}`,
          fix: `run the install as a cluster admin, or have one grant you ${verb} on ${resource}${n.namespace ? ` in ${n.namespace}` : ''} (kubectl auth can-i ${verb} ${resource}${n.namespace ? ` -n ${n.namespace}` : ''} shows it)`,
        });
      }
    }
  }
  if (denied.length === 0)
    findings.push({
      level: 'ok',
      check: 'permissions',
      message: `you may create and apply every kind the install holds (${needsOf(objects)
        .map((n) => n.kind)
        .filter((k, i, a) => a.indexOf(k) === i)
        .join(', ')})`,
    });
  const absent: string[] = [];
  for (const crd of objects.filter((o) => o.kind === 'CustomResourceDefinition')) {
    const name = crd.metadata?.name ?? '';
    let live: KubeObject | null;
    try {
      live = await getOrNull(client, `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`);
    } catch (err) {
      if (!isForbidden(err)) throw err;
      findings.push({
        level: 'skipped',
        check: 'crds',
        message: 'you may not read CustomResourceDefinitions, so which exist is not checked',
      });
      break;
    }
    if (!live) {
      absent.push(name);
      continue;
    }
    const partOf = live.metadata?.labels?.['app.kubernetes.io/part-of'];
    if (partOf !== 'weft')
      findings.push({
        level: 'warning',
        check: 'crds',
        object: `CustomResourceDefinition/${name}`,
        message: `CRD ${name} exists and was not installed by Weft (another SMI implementation's?); the install takes it over and replaces its schema`,
        fix: `make sure nothing else serves SMI in this cluster (kubectl get crd ${name} -o yaml shows who manages it)`,
      });
    else
      findings.push({
        level: 'ok',
        check: 'crds',
        object: `CustomResourceDefinition/${name}`,
        message: `CRD ${name} is installed (Weft's); the install updates it`,
      });
  }
  if (absent.length > 0)
    findings.push({
      level: 'ok',
      check: 'crds',
      message: `CRDs not installed yet (the install creates them): ${absent.join(', ')}`,
    });
  return findings;
}

interface DeploymentJson extends KubeObject {
  spec?: { replicas?: number };
  status?: { readyReplicas?: number; replicas?: number; observedGeneration?: number };
}

async function deploymentCheck(client: KubeClient, ns: string): Promise<Finding> {
  const object = `Deployment/${ns}/${WEFT_DEPLOYMENT}`;
  const d = await getOrNull<DeploymentJson>(
    client,
    `/apis/apps/v1/namespaces/${ns}/deployments/${WEFT_DEPLOYMENT}`,
  );
  if (!d)
    return {
      level: 'error',
      check: 'deployment',
      object,
      message: `Deployment ${ns}/${WEFT_DEPLOYMENT} does not exist: Weft is not installed in namespace ${ns}`,
      fix: 'weft install --apply (or pass -n with the namespace Weft is installed in)',
    };
  const wanted = d.spec?.replicas ?? 1;
  const ready = d.status?.readyReplicas ?? 0;
  if (ready >= wanted)
    return {
      level: 'ok',
      check: 'deployment',
      object,
      message: `Deployment ${ns}/${WEFT_DEPLOYMENT}: ${ready}/${wanted} replicas ready`,
    };
  return {
    // One ready replica serves the whole mesh: fewer than wanted is degraded, none is down.
    level: ready === 0 ? 'error' : 'warning',
    check: 'deployment',
    object,
    message: `Deployment ${ns}/${WEFT_DEPLOYMENT}: ${ready}/${wanted} replicas ready`,
    fix: `kubectl -n ${ns} describe deployment ${WEFT_DEPLOYMENT} and kubectl -n ${ns} logs deployment/${WEFT_DEPLOYMENT} say why (image pull, readiness on /readyz)`,
  };
}

interface WebhookConfigJson extends KubeObject {
  webhooks?: {
    name: string;
    clientConfig?: {
      caBundle?: string;
      url?: string;
      service?: { name: string; namespace: string };
    };
  }[];
}

interface EndpointSliceJson extends KubeObject {
  endpoints?: { addresses?: string[]; conditions?: { ready?: boolean } }[];
}

async function serviceCheck(client: KubeClient, ns: string, name: string, usedBy: string): Promise<Finding> {
  const object = `Service/${ns}/${name}`;
  const svc = await getOrNull(client, `/api/v1/namespaces/${ns}/services/${name}`);
  if (!svc)
    return {
      level: 'error',
      check: 'webhook',
      object,
      message: `Service ${ns}/${name}, which ${usedBy} calls, does not exist`,
      fix: 'weft install --apply creates it',
    };
  const slices = await client.request<{ items: EndpointSliceJson[] }>(
    'GET',
    `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices?labelSelector=${encodeURIComponent(`kubernetes.io/service-name=${name}`)}`,
  );
  const ready = slices.items
    .flatMap((s) => s.endpoints ?? [])
    .filter((e) => e.conditions?.ready !== false && (e.addresses?.length ?? 0) > 0).length;
  if (ready > 0)
    return {
      level: 'ok',
      check: 'webhook',
      object,
      message: `Service ${ns}/${name} has ${ready} ready endpoint${ready === 1 ? '' : 's'}`,
    };
  return {
    level: 'error',
    check: 'webhook',
    object,
    message: `Service ${ns}/${name} has no ready endpoints: the API server cannot reach ${usedBy} (failure policy Ignore: pods start without a sidecar, EnvoyPatches go unchecked)`,
    fix: `get a Weft pod ready (see the Deployment finding); kubectl -n ${ns} get endpointslices -l kubernetes.io/service-name=${name}`,
  };
}

async function webhookChecks(
  client: KubeClient,
  kind: 'MutatingWebhookConfiguration' | 'ValidatingWebhookConfiguration',
  name: string,
): Promise<Finding[]> {
  const plural =
    kind === 'MutatingWebhookConfiguration'
      ? 'mutatingwebhookconfigurations'
      : 'validatingwebhookconfigurations';
  const object = `${kind}/${name}`;
  const w = await getOrNull<WebhookConfigJson>(
    client,
    `/apis/admissionregistration.k8s.io/v1/${plural}/${name}`,
  );
  if (!w)
    return [
      {
        level: 'error',
        check: 'webhook',
        object,
        message: `${kind} ${name} does not exist`,
        fix: 'weft install --apply creates it',
      },
    ];
  const out: Finding[] = [];
  const services = new Map<string, { ns: string; name: string }>();
  for (const hook of w.webhooks ?? []) {
    const cc = hook.clientConfig ?? {};
    if (!cc.caBundle)
      out.push({
        level: 'error',
        check: 'webhook',
        object,
        message: `${kind} ${name}: webhook ${hook.name} has no caBundle, so the API server cannot trust Weft's certificate (Weft writes it when it starts)`,
        fix: 'get Weft running (see the Deployment finding); its logs say if patching the webhook failed',
      });
    else
      out.push({
        level: 'ok',
        check: 'webhook',
        object,
        message: `${kind} ${name}: webhook ${hook.name} is configured with a caBundle`,
      });
    if (cc.service)
      services.set(`${cc.service.namespace}/${cc.service.name}`, {
        ns: cc.service.namespace,
        name: cc.service.name,
      });
  }
  for (const s of services.values()) out.push(await serviceCheck(client, s.ns, s.name, `${kind} ${name}`));
  return out;
}

/**
 * Lists `path`, asking again for up to `patienceMs` while the API server answers 429: it does so
 * for a kind whose CRD was just created while it sets up the storage, and says to retry.
 */
async function listRetrying(
  client: KubeClient,
  path: string,
  patienceMs = 10_000,
): Promise<{ items: KubeObject[] }> {
  const deadline = Date.now() + patienceMs;
  for (;;) {
    try {
      return await client.request<{ items: KubeObject[] }>('GET', path);
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 429) || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** SMI kinds (and Weft's EnvoyPatch), which Weft reads only in mesh namespaces. */
export const MESH_SCOPED_KINDS = WATCHED_KINDS.filter(
  (k) => SMI_KINDS.has(k.kind) || k.kind === 'EnvoyPatch',
);

/** An object Weft ignores because its namespace is not labelled into the mesh. */
export interface UnmeshedObject {
  /** `Kind/namespace/name`. */
  object: string;
  namespace: string;
}

/** The fix for an object in a namespace outside the mesh. */
export const labelFix = (ns: string): string =>
  `kubectl label namespace ${ns} ${MESH_LABEL}=${MESH_LABEL_VALUE}`;

/** The message for an object in a namespace outside the mesh. */
export const unmeshedMessage = (u: UnmeshedObject): string =>
  `${u.object} is in namespace ${u.namespace}, which is not in the mesh (no label ${MESH_LABEL}=${MESH_LABEL_VALUE}): Weft ignores it`;

/**
 * SMI objects (and EnvoyPatches) in namespaces without `weft.dev/mesh=enabled`, other than Weft's
 * own namespace: Weft ignores them without a word, which is the first thing to look for when a
 * split "does nothing". Kinds the API server does not serve (CRDs not installed) are skipped.
 */
export async function unmeshedObjects(client: KubeClient, meshNamespace: string): Promise<UnmeshedObject[]> {
  const meshed = new Set(
    (
      await client.request<{ items: KubeObject[] }>(
        'GET',
        `/api/v1/namespaces?labelSelector=${encodeURIComponent(`${MESH_LABEL}=${MESH_LABEL_VALUE}`)}`,
      )
    ).items.map((n) => n.metadata?.name ?? ''),
  );
  meshed.add(meshNamespace);
  const out: UnmeshedObject[] = [];
  for (const k of MESH_SCOPED_KINDS) {
    let list: { items: KubeObject[] };
    try {
      list = await listRetrying(client, `/apis/${k.group}/${k.version}/${k.plural}`);
    } catch (err) {
      if (isNotFound(err)) continue;
      throw err;
    }
    for (const o of list.items) {
      const ns = o.metadata?.namespace ?? '';
      if (meshed.has(ns)) continue;
      out.push({ object: `${k.kind}/${ns}/${o.metadata?.name ?? ''}`, namespace: ns });
    }
  }
  return out.sort((a, b) => a.object.localeCompare(b.object));
}

async function meshNamespaceChecks(client: KubeClient, ns: string): Promise<Finding[]> {
  const out: Finding[] = [];
  const secret = `Secret/${ns}/${DEFAULT_CA_SECRET}`;
  try {
    const s = await getOrNull(client, `/api/v1/namespaces/${ns}/secrets/${DEFAULT_CA_SECRET}`);
    out.push(
      s
        ? {
            level: 'ok',
            check: 'ca',
            object: secret,
            message: `the CA Secret ${ns}/${DEFAULT_CA_SECRET} exists`,
          }
        : {
            level: 'error',
            check: 'ca',
            object: secret,
            message: `the CA Secret ${ns}/${DEFAULT_CA_SECRET} does not exist (Weft creates it when it first starts)`,
            fix: 'get Weft running (see the Deployment finding), or bring your own root: weft ca --help',
          },
    );
  } catch (err) {
    if (!isForbidden(err)) throw err;
    out.push({
      level: 'skipped',
      check: 'ca',
      object: secret,
      message: `you may not read Secret ${ns}/${DEFAULT_CA_SECRET}, so whether it exists is not checked`,
    });
  }
  const namespaces = (
    await client.request<{ items: KubeObject[] }>(
      'GET',
      `/api/v1/namespaces?labelSelector=${encodeURIComponent(`${MESH_LABEL}=${MESH_LABEL_VALUE}`)}`,
    )
  ).items
    .map((n) => n.metadata?.name ?? '')
    .sort();
  if (namespaces.length === 0)
    out.push({
      level: 'warning',
      check: 'namespaces',
      message: `no namespace is labelled ${MESH_LABEL}=${MESH_LABEL_VALUE}: nothing is in the mesh`,
      fix: labelFix('<namespace>'),
    });
  else
    out.push({
      level: 'ok',
      check: 'namespaces',
      message: `mesh namespaces: ${namespaces.join(', ')}`,
    });
  for (const m of namespaces) {
    const object = `ConfigMap/${m}/${CA_BUNDLE_CONFIGMAP}`;
    const cm = await getOrNull(client, `/api/v1/namespaces/${m}/configmaps/${CA_BUNDLE_CONFIGMAP}`);
    out.push(
      cm
        ? {
            level: 'ok',
            check: 'ca',
            object,
            message: `ConfigMap ${m}/${CA_BUNDLE_CONFIGMAP} holds the trust bundle`,
          }
        : {
            level: 'error',
            check: 'ca',
            object,
            message: `ConfigMap ${m}/${CA_BUNDLE_CONFIGMAP} does not exist: sidecars in ${m} cannot trust Weft on first contact (Weft's leader writes it)`,
            fix: `get Weft running (see the Deployment finding); kubectl -n ${ns} get lease weft-leader shows the leader`,
          },
    );
  }
  return out;
}

/** Options of {@link postInstallChecks}. */
export interface PostCheckOptions {
  /** Weft's namespace (default `weft-system`). */
  namespace?: string;
}

/**
 * Checks after install, from the API server alone: the Deployment, the webhooks and their
 * Service, the CA Secret and trust bundles, the mesh namespaces and SMI objects outside them.
 */
export async function postInstallChecks(client: KubeClient, o: PostCheckOptions = {}): Promise<Finding[]> {
  const ns = o.namespace ?? 'weft-system';
  const findings: Finding[] = [await deploymentCheck(client, ns)];
  findings.push(...(await webhookChecks(client, 'MutatingWebhookConfiguration', INJECTOR_WEBHOOK)));
  findings.push(...(await webhookChecks(client, 'ValidatingWebhookConfiguration', PATCH_VALIDATOR_WEBHOOK)));
  findings.push(...(await webhookChecks(client, 'ValidatingWebhookConfiguration', SMI_VALIDATOR_WEBHOOK)));
  findings.push(...(await meshNamespaceChecks(client, ns)));
  let unmeshed: UnmeshedObject[];
  try {
    unmeshed = await unmeshedObjects(client, ns);
  } catch (err) {
    // Listing SMI kinds just after their CRDs were created can meet a 429 while the API server
    // sets up their storage: say so, and let the other findings stand.
    findings.push({
      level: 'skipped',
      check: 'unmeshed',
      message: `SMI objects outside the mesh not checked: ${err instanceof Error ? err.message : String(err)}`,
    });
    return findings;
  }
  for (const u of unmeshed)
    findings.push({
      level: 'warning',
      check: 'unmeshed',
      object: u.object,
      message: unmeshedMessage(u),
      fix: labelFix(u.namespace),
    });
  if (unmeshed.length === 0)
    findings.push({
      level: 'ok',
      check: 'unmeshed',
      message: 'no SMI object sits in a namespace outside the mesh',
    });
  return findings;
}

/** A proxy as Weft's `/debug/proxies` reports it, reduced to what the check reads. */
export interface ProxySyncState {
  proxy: string;
  inSync: boolean;
  lastNack?: { type: string; version: string; message: string };
}

/** Findings from a running Weft's view of its proxies. */
export function proxyFindings(proxies: readonly ProxySyncState[], where: string): Finding[] {
  const out: Finding[] = [];
  for (const p of proxies) {
    if (p.lastNack)
      out.push({
        level: 'error',
        check: 'proxies',
        object: `Proxy/${p.proxy}`,
        message: `proxy ${p.proxy} rejected (NACKed) ${p.lastNack.type} version ${p.lastNack.version}: ${p.lastNack.message}`,
        fix: `weft proxy config ${p.proxy} shows what was sent; weft status names the object behind it (often an EnvoyPatch)`,
      });
    else if (!p.inSync)
      out.push({
        level: 'warning',
        check: 'proxies',
        object: `Proxy/${p.proxy}`,
        message: `proxy ${p.proxy} has not acknowledged the latest configuration yet`,
        fix: `run the check again in a few seconds; if it stays behind, weft proxy status and the proxy's logs say why`,
      });
  }
  if (out.length === 0)
    out.push({
      level: 'ok',
      check: 'proxies',
      message: `${proxies.length} connected prox${proxies.length === 1 ? 'y' : 'ies'}, all in sync (${where})`,
    });
  return out;
}

/** Whether `weft install --apply --wait` may stop waiting: no errors and the Deployment fully ready. */
export function installSettled(findings: readonly Finding[]): boolean {
  return (
    !findings.some((f) => f.level === 'error') &&
    findings.some((f) => f.check === 'deployment' && f.level === 'ok')
  );
}
