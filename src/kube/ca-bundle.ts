/**
 * Publishes the mesh's trust bundle as ConfigMap `weft-ca-bundle` (key `bundle.pem`) in every mesh
 * namespace, so pods there can mount it: `weft agent` needs the roots to trust Weft on its first
 * contact, before it holds a certificate. Only the leader writes; a write is made only when a
 * namespace's bundle differs from what this replica last wrote there, so a steady mesh costs no
 * API calls. A ConfigMap is never read (Weft's RBAC grants create and update only).
 */
import { createHash } from 'node:crypto';
import { messageOf } from '../identity/x509';
import { type Logger, logger } from '../log';
import { KubeApiError, type KubeClient, type KubeObject } from './client';

const log: Logger = logger('ca-bundle');

/** Name of the ConfigMap holding the trust bundle in each mesh namespace. */
export const CA_BUNDLE_CONFIGMAP = 'weft-ca-bundle';
/** Its data key. */
export const CA_BUNDLE_KEY = 'bundle.pem';

/** A mesh namespace: its name, and its uid, which tells a namespace deleted and created again apart. */
export interface MeshNamespace {
  name: string;
  uid?: string;
}

/** Keeps `weft-ca-bundle` current in the mesh namespaces. */
export class CaBundlePublisher {
  /**
   * Namespace name -> its uid and the hash of the bundle last written there by this replica. A
   * namespace deleted and created again under the same name has a new uid and gets the bundle
   * again (its ConfigMap went with it); a namespace that left the mesh is forgotten.
   */
  private readonly written = new Map<string, { uid: string; hash: string }>();
  /** ConfigMaps written so far (for metrics and tests). */
  writes = 0;

  constructor(
    private readonly client: KubeClient,
    private readonly bundlePem: () => string,
  ) {}

  /** Writes the bundle into each of `namespaces` where it is not current; never throws. */
  async sync(namespaces: Iterable<MeshNamespace>): Promise<void> {
    const pem = this.bundlePem();
    const hash = createHash('sha256').update(pem).digest('hex');
    const present = new Set<string>();
    for (const { name: ns, uid = '' } of namespaces) {
      present.add(ns);
      const last = this.written.get(ns);
      if (last?.hash === hash && last.uid === uid) continue;
      try {
        await this.write(ns, pem, hash);
        this.written.set(ns, { uid, hash });
        this.writes++;
      } catch (err) {
        // Left unrecorded, so the next sync tries again.
        log.error('cannot publish the trust bundle', {
          configMap: `${ns}/${CA_BUNDLE_CONFIGMAP}`,
          error: messageOf(err),
        });
      }
    }
    for (const ns of [...this.written.keys()]) if (!present.has(ns)) this.written.delete(ns);
  }

  /** Forgets what was written (a new leader cannot know what the last one left). */
  reset(): void {
    this.written.clear();
  }

  private async write(namespace: string, pem: string, hash: string): Promise<void> {
    const base = `/api/v1/namespaces/${encodeURIComponent(namespace)}/configmaps`;
    const body: KubeObject & { data: Record<string, string> } = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: CA_BUNDLE_CONFIGMAP,
        namespace,
        labels: { 'app.kubernetes.io/managed-by': 'weft' },
        annotations: { 'weft.dev/bundle-sha256': hash },
      },
      data: { [CA_BUNDLE_KEY]: pem },
    };
    try {
      // An update without resourceVersion replaces whatever is there: the bundle is Weft's alone.
      await this.client.request('PUT', `${base}/${CA_BUNDLE_CONFIGMAP}`, body);
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 404)) throw err;
      await this.client.request('POST', base, body);
    }
  }
}
