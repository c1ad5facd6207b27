/**
 * What `weft install` puts into a cluster and `weft uninstall` takes out: the plain manifests
 * rendered from the Helm chart (`deploy/manifests/weft.yaml`, shipped with Weft), applied with
 * server-side apply so that running it again changes nothing and fields other managers own (the
 * webhook's caBundle, which Weft patches in at run time) are left alone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApiException,
  type KubeConfig,
  type KubernetesObject,
  KubernetesObjectApi,
  PatchStrategy,
} from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';

/** Field manager of `weft install --apply`, as the API server records it in managedFields. */
export const INSTALL_FIELD_MANAGER = 'weft-install';

/** The manifests file, relative to the package root. */
export const INSTALL_MANIFESTS = join('deploy', 'manifests', 'weft.yaml');

const CRD_KIND = 'CustomResourceDefinition';

/**
 * Kinds the install creates once and then leaves to the user: the MeshConfig is where users switch
 * permissive mode and set the trust domain, so a second `weft install --apply` must not reset it,
 * and `weft uninstall` keeps it unless asked.
 */
const USER_OWNED_KINDS: ReadonlySet<string> = new Set(['MeshConfig']);

function isUserOwned(o: KubernetesObject): boolean {
  return USER_OWNED_KINDS.has(o.kind ?? '');
}

/** The text of `deploy/manifests/weft.yaml`, as shipped with this copy of Weft. */
export function installManifestsText(): string {
  // This file is dist/src/kube/install.js at run time: the package root is three levels up.
  const path = join(__dirname, '..', '..', '..', INSTALL_MANIFESTS);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(
      `cannot read Weft's install manifests ${path}: ${(err as Error).message}; ` +
        'this copy of Weft is incomplete (the file comes with the package; scripts/render-deploy.sh makes it)',
    );
  }
}

/** Every object of the install manifests, in file order (CRDs first, then the Namespace). */
export function installObjects(text = installManifestsText()): KubernetesObject[] {
  const objects: KubernetesObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`install manifests: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as KubernetesObject | null;
    if (obj) objects.push(obj);
  }
  return objects;
}

/** `Kind/name` or `Kind/namespace/name`, as the commands print it. */
export function describeObject(o: KubernetesObject): string {
  const ns = o.metadata?.namespace;
  return `${o.kind}/${ns ? `${ns}/` : ''}${o.metadata?.name}`;
}

function isCrd(o: KubernetesObject): boolean {
  return o.kind === CRD_KIND;
}

function apiError(err: unknown): { code: number; message: string } {
  if (err instanceof ApiException) {
    const body = err.body as { message?: string } | string | undefined;
    const message = typeof body === 'string' ? body : (body?.message ?? err.message);
    return { code: err.code, message };
  }
  return { code: 0, message: err instanceof Error ? err.message : String(err) };
}

/** Options of {@link applyInstall} and {@link uninstall}. */
export interface InstallOptions {
  /** Called once per object with what happened to it. */
  report?: (line: string) => void;
  /** How long to wait for new CRDs to be served (default 60 s). */
  timeoutMs?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Applies the install manifests with server-side apply (field manager {@link INSTALL_FIELD_MANAGER},
 * taking over fields another manager set, as `kubectl apply --server-side --force-conflicts`
 * does). CRDs go first, and the other objects wait until the API server serves them: a MeshConfig
 * cannot be applied before its kind exists.
 */
export async function applyInstall(
  kc: KubeConfig,
  objects: readonly KubernetesObject[],
  o: InstallOptions = {},
): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const deadline = Date.now() + (o.timeoutMs ?? 60_000);
  const apply = async (obj: KubernetesObject, retryNotServed: boolean): Promise<void> => {
    for (;;) {
      try {
        if (isUserOwned(obj)) {
          // Created when absent, never re-applied: server-side apply would take back the fields
          // the user changed (permissive: true back to false).
          await api.create(obj, undefined, undefined, INSTALL_FIELD_MANAGER);
          o.report?.(`${describeObject(obj)} created`);
          return;
        }
        await api.patch(
          obj,
          undefined,
          undefined,
          INSTALL_FIELD_MANAGER,
          true,
          PatchStrategy.ServerSideApply,
        );
        o.report?.(`${describeObject(obj)} applied`);
        return;
      } catch (err) {
        const e = apiError(err);
        if (isUserOwned(obj) && e.code === 409) {
          o.report?.(`${describeObject(obj)} kept (it exists; yours to edit)`);
          return;
        }
        // A kind whose CRD was just created is not in discovery yet: 404, or no such resource.
        const notServed = e.code === 404 || /Unrecognized API version and kind/.test(e.message);
        if (retryNotServed && notServed && Date.now() < deadline) {
          await sleep(250);
          continue;
        }
        throw new Error(`could not apply ${describeObject(obj)}: ${e.message}`);
      }
    }
  };
  const crds = objects.filter(isCrd);
  for (const crd of crds) await apply(crd, false);
  for (const crd of crds) await waitEstablished(api, crd, deadline);
  for (const obj of objects) if (!isCrd(obj)) await apply(obj, true);
}

async function waitEstablished(
  api: KubernetesObjectApi,
  crd: KubernetesObject,
  deadline: number,
): Promise<void> {
  const name = crd.metadata?.name ?? '';
  for (;;) {
    const live = (await api.read({
      apiVersion: crd.apiVersion ?? '',
      kind: crd.kind ?? '',
      metadata: { name },
    })) as KubernetesObject & { status?: { conditions?: { type: string; status: string }[] } };
    if (live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True')) return;
    if (Date.now() > deadline)
      throw new Error(
        `CustomResourceDefinition ${name} is not Established yet; check it with kubectl describe crd ${name}`,
      );
    await sleep(200);
  }
}

/** Options of {@link uninstall}. */
export interface UninstallOptions extends InstallOptions {
  /** Delete the CRDs too, and with them every SMI, MeshConfig and EnvoyPatch object. */
  crds?: boolean;
  /** Delete the MeshConfig too (kept by default: it holds the user's mesh settings). */
  deleteConfig?: boolean;
}

/**
 * Deletes the objects of the install manifests, newest first, except the Namespace (it may hold
 * the user's own objects, such as mesh-wide EnvoyPatches), unless `deleteConfig` the MeshConfig
 * (the user's settings), and unless `crds` the CRDs (deleting a CRD deletes every object of its
 * kind). Objects already gone are reported, not errors.
 */
export async function uninstall(
  kc: KubeConfig,
  objects: readonly KubernetesObject[],
  o: UninstallOptions = {},
): Promise<void> {
  const api = KubernetesObjectApi.makeApiClient(kc);
  const doomed = [...objects]
    .reverse()
    .filter((obj) => obj.kind !== 'Namespace' && (o.crds || !isCrd(obj)))
    // With --crds the API server deletes the MeshConfig along with its CRD anyway.
    .filter((obj) => o.deleteConfig || o.crds || !isUserOwned(obj))
    // CRDs last, so Weft's own objects of those kinds (the MeshConfig) go through their own delete.
    .sort((a, b) => Number(isCrd(a)) - Number(isCrd(b)));
  for (const obj of doomed) {
    try {
      await api.delete(obj, undefined, undefined, undefined, undefined, 'Background');
      o.report?.(`${describeObject(obj)} deleted`);
    } catch (err) {
      const e = apiError(err);
      if (e.code === 404 || /Unrecognized API version and kind/.test(e.message)) {
        o.report?.(`${describeObject(obj)} not found`);
        continue;
      }
      throw new Error(`could not delete ${describeObject(obj)}: ${e.message}`);
    }
  }
}
