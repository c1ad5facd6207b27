/**
 * The Envoy tier's shop mesh as the traffic metrics suites and the bench run it: buyer may call
 * store's `/open`, store splits 90/10 over store-v1 and store-v2, and only the pods asked for run
 * (by default buyer, store-v1 and store-v2). Network 10.217.0.0/24 unless WEFT_METRICS_SUBNET says
 * otherwise; the suites run one at a time, so they share it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvoyMesh, type MeshPod } from '../../src/netns/mesh';
import type { ServeOptions } from '../../src/serve';
import { ConfigDir } from '../mesh/mesh-fixture';
import {
  buyerToStore,
  STORE_SPLIT,
  TIER_PODS,
  TIER_ROUTES,
  TIER_SERVICE_ACCOUNTS,
  type TierAddresses,
  type TierPod,
  tierPod,
  tierWorkloads,
} from './tier-fixture';

/** Options of {@link startShopMesh}. */
export interface ShopMeshOptions {
  /** The network's name (1-6 of `a-z0-9`). */
  network: string;
  envoyBinary: string;
  serve?: Partial<ServeOptions>;
  /** Pods to run (default buyer, store-v1, store-v2). */
  pods?: readonly TierPod[];
  /** More manifests for Weft's config folder, by file name (an EnvoyPatch, say). */
  manifests?: Readonly<Record<string, string>>;
  /** Runs after the manifests are written and before Weft starts (a scraper to start, say). */
  beforeStart?: (a: TierAddresses, workDir: string) => void | Promise<void>;
}

/** A running shop mesh. */
export interface ShopMesh {
  readonly mesh: EnvoyMesh;
  readonly addresses: TierAddresses;
  readonly pods: ReadonlyMap<TierPod, MeshPod>;
  readonly workDir: string;
  stop(): Promise<void>;
}

/** Starts the mesh, Weft and the pods; stops what started when a pod fails, with every reason. */
export async function startShopMesh(o: ShopMeshOptions): Promise<ShopMesh> {
  const workDir = mkdtempSync(join(tmpdir(), `weft-${o.network}-`));
  const config = new ConfigDir();
  const mesh = await EnvoyMesh.create({
    network: o.network,
    subnet: process.env.WEFT_METRICS_SUBNET ?? '10.217.0.0/24',
    configDir: config.path,
    workDir,
    serviceAccounts: TIER_SERVICE_ACCOUNTS,
    envoyBinary: o.envoyBinary,
    ...(o.serve ? { serve: o.serve } : {}),
  });
  const stop = async (): Promise<void> => {
    await mesh.stop();
    config.remove();
    rmSync(workDir, { recursive: true, force: true });
  };
  const pods = new Map<TierPod, MeshPod>();
  try {
    const net = mesh.network;
    const addresses: TierAddresses = {
      pods: Object.fromEntries(TIER_PODS.map((p) => [p, net.podAddress()])) as Record<TierPod, string>,
      services: {
        store: net.serviceAddress(),
        'store-v1': net.serviceAddress(),
        'store-v2': net.serviceAddress(),
      },
    };
    config.write('00-workloads.yaml', tierWorkloads(addresses));
    config.write('10-routes.yaml', TIER_ROUTES);
    config.write('20-buyer-to-store.yaml', buyerToStore(['open']));
    config.write('30-split.yaml', STORE_SPLIT);
    for (const [file, text] of Object.entries(o.manifests ?? {})) config.write(file, text);
    await o.beforeStart?.(addresses, workDir);
    await mesh.start();
    const started = await Promise.allSettled(
      (o.pods ?? ['buyer', 'store-v1', 'store-v2']).map(async (p) => {
        pods.set(p, await mesh.startPod(tierPod(p, addresses)));
      }),
    );
    const failed = started.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed.length > 0)
      throw new Error(failed.map((f) => String(f.reason?.message ?? f.reason)).join('\n\n'));
    return { mesh, addresses, pods, workDir, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
