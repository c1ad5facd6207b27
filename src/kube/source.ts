/**
 * Weft's inputs from a Kubernetes API server: one informer per kind it reads, the objects of mesh
 * namespaces (those labelled `weft.dev/mesh=enabled`) handed to the compiler in batches.
 */
import { EventEmitter } from 'node:events';
import { Batcher } from './batch';
import type { KubeClient, KubeObject } from './client';
import { Informer, type InformerOptions, type ResourceKind } from './informer';

/** Label that makes a namespace part of the mesh. */
export const MESH_LABEL = 'weft.dev/mesh';
/** Its value. */
export const MESH_LABEL_VALUE = 'enabled';

/** Every kind Weft watches, at the version it reads (the storage version for SMI kinds). */
export const WATCHED_KINDS: readonly ResourceKind[] = [
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false },
  { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true },
  { group: '', version: 'v1', plural: 'serviceaccounts', kind: 'ServiceAccount', namespaced: true },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
  {
    group: 'discovery.k8s.io',
    version: 'v1',
    plural: 'endpointslices',
    kind: 'EndpointSlice',
    namespaced: true,
  },
  { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true },
  {
    group: 'split.smi-spec.io',
    version: 'v1alpha4',
    plural: 'trafficsplits',
    kind: 'TrafficSplit',
    namespaced: true,
  },
  {
    group: 'access.smi-spec.io',
    version: 'v1alpha4',
    plural: 'traffictargets',
    kind: 'TrafficTarget',
    namespaced: true,
  },
  {
    group: 'access.smi-spec.io',
    version: 'v1alpha4',
    plural: 'identitybindings',
    kind: 'IdentityBinding',
    namespaced: true,
  },
  {
    group: 'specs.smi-spec.io',
    version: 'v1alpha4',
    plural: 'httproutegroups',
    kind: 'HTTPRouteGroup',
    namespaced: true,
  },
  {
    group: 'specs.smi-spec.io',
    version: 'v1alpha4',
    plural: 'tcproutes',
    kind: 'TCPRoute',
    namespaced: true,
  },
  {
    group: 'specs.smi-spec.io',
    version: 'v1alpha4',
    plural: 'udproutes',
    kind: 'UDPRoute',
    namespaced: true,
  },
  { group: 'weft.dev', version: 'v1alpha1', plural: 'meshconfigs', kind: 'MeshConfig', namespaced: true },
  { group: 'weft.dev', version: 'v1alpha1', plural: 'envoypatches', kind: 'EnvoyPatch', namespaced: true },
];

/** Options of {@link KubeSource}. */
export interface KubeSourceOptions extends InformerOptions {
  /** Namespace whose MeshConfig (and, later, mesh-wide patches) Weft reads. Default `weft-system`. */
  meshNamespace?: string;
  /** Quiet window before a batch runs (default 100 ms). */
  quietMs?: number;
  /** Longest a change waits for its batch (default 1 s). */
  maxDelayMs?: number;
  /** Kinds to watch (default {@link WATCHED_KINDS}). */
  kinds?: readonly ResourceKind[];
}

/**
 * Inputs from the API server. Emits `batch` (after changes settle) and `synced` (once every
 * informer has listed).
 */
export class KubeSource extends EventEmitter {
  readonly informers: Informer[];
  private readonly batcher: Batcher;
  private readonly meshNamespace: string;
  private syncedOnce = false;

  constructor(client: KubeClient, opts: KubeSourceOptions = {}) {
    super();
    this.meshNamespace = opts.meshNamespace ?? 'weft-system';
    this.informers = (opts.kinds ?? WATCHED_KINDS).map((k) => new Informer(client, k, opts));
    this.batcher = new Batcher(opts.quietMs ?? 100, opts.maxDelayMs ?? 1000, () => {
      this.emit('batch');
    });
    for (const inf of this.informers) {
      inf.on('change', () => {
        if (this.syncedOnce) this.batcher.trigger();
      });
    }
  }

  /** Starts every informer; resolves when all have listed once. */
  async start(): Promise<void> {
    for (const inf of this.informers) inf.start();
    await Promise.all(this.informers.map((i) => i.whenSynced()));
    this.syncedOnce = true;
    this.emit('synced');
  }

  /** True once every informer has listed. */
  get synced(): boolean {
    return this.syncedOnce;
  }

  /** Informers not yet synced, for readiness messages. */
  unsynced(): string[] {
    return this.informers.filter((i) => !i.synced).map((i) => i.kind.kind);
  }

  /** The live object of `kind` named `namespace/name` (namespace empty when cluster-scoped). */
  get(kind: string, namespace: string, name: string): KubeObject | undefined {
    const inf = this.informers.find((i) => i.kind.kind === kind);
    return inf?.get(inf.kind.namespaced ? `${namespace}/${name}` : name);
  }

  /** Stops every informer and pending batch. */
  stop(): void {
    this.batcher.stop();
    for (const inf of this.informers) inf.stop();
  }

  /**
   * The objects the compiler reads: namespaced objects of mesh namespaces, every Namespace, and the
   * MeshConfig of the mesh namespace. Sorted by kind then key for determinism.
   */
  objects(): KubeObject[] {
    const meshNamespaces = new Set<string>();
    const namespaces = this.informers.find((i) => i.kind.kind === 'Namespace')?.list() ?? [];
    for (const ns of namespaces) {
      if (ns.metadata?.labels?.[MESH_LABEL] === MESH_LABEL_VALUE && ns.metadata.name)
        meshNamespaces.add(ns.metadata.name);
    }
    const out: KubeObject[] = [];
    for (const inf of this.informers) {
      for (const o of inf.list()) {
        const ns = o.metadata?.namespace;
        if (!inf.kind.namespaced) {
          if (ns === undefined && meshNamespaces.has(o.metadata?.name ?? '')) out.push(o);
          continue;
        }
        if (inf.kind.kind === 'MeshConfig') {
          if (ns === this.meshNamespace) out.push(o);
          continue;
        }
        // Mesh-wide EnvoyPatches live in the mesh's own namespace, which need not be in the mesh.
        if (inf.kind.kind === 'EnvoyPatch' && ns === this.meshNamespace) {
          out.push(o);
          continue;
        }
        if (ns !== undefined && meshNamespaces.has(ns)) out.push(o);
      }
    }
    return out;
  }
}
