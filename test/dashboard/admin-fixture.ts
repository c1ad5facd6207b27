/** An admin server on a real (empty) xDS server, on a free loopback port, for the dashboard's tests. */
import { Metrics } from '../../src/admin/metrics';
import { type AdminSources, buildAdmin } from '../../src/admin/server';
import { startAds } from '../xds/util';

/** A running admin server: its URL and how to stop it. */
export interface TestAdmin {
  url: string;
  stop(): Promise<void>;
}

/** Starts an admin server with these sources (metrics, xDS and readiness are filled in). */
export async function startTestAdmin(
  sources: Omit<AdminSources, 'metrics' | 'xds' | 'ready'>,
): Promise<TestAdmin> {
  const t = await startAds();
  const app = buildAdmin({ metrics: new Metrics(), xds: t.server, ready: () => true, ...sources });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  return {
    url,
    stop: async () => {
      await app.close();
      await t.stop();
    },
  };
}
