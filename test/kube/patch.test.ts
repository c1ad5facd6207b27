/**
 * EnvoyPatch in Kubernetes mode on a real kube-apiserver: a refused patch gets status conditions
 * naming the operation and field (the served route is untouched), fixing it with `kubectl apply`
 * applies it and moves `observedGeneration` on, and deleting it restores the original route.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { allCrdsYaml } from '../../src/crds/render';
import { setLogLevel } from '../../src/log';
import { freePort } from '../../src/net';
import { type RunningKubeServe, startKubeServe } from '../../src/serve';
import { AdsClient } from '../../src/xds/client';
import { ROUTE } from '../../src/xds/resource-types';
import {
  addresses,
  BUYER_MAY_CALL,
  type FixtureAddresses,
  markFixturePodsReady,
  workloads,
} from '../mesh/mesh-fixture';
import { eventually, type KubeEnv, kubectlOk, startKubeEnv, WAIT_FOR_WEFT_CRDS } from './env';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

interface PatchStatus {
  metadata: { generation: number };
  status?: {
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
}

describe('EnvoyPatch on a real kube-apiserver', () => {
  let env: KubeEnv;
  let A: FixtureAddresses;
  let weft: RunningKubeServe;

  const kubectl = async (args: string[], input?: string): Promise<string> =>
    (await kubectlOk(env, args, input)).stdout;

  before(async () => {
    env = await startKubeEnv();
    A = addresses(48, await freePort(), await freePort());
    await kubectl(['apply', '-f', '-'], allCrdsYaml());
    await kubectl([...WAIT_FOR_WEFT_CRDS]);
    await kubectl(['create', 'namespace', 'weft-system']);
    await kubectl(['apply', '-f', '-'], `${workloads(A)}---\n${BUYER_MAY_CALL}`);
    await markFixturePodsReady(kubectl, A);
    weft = await startKubeServe({
      kubeconfig: env.kubeconfigPath,
      replica: 'weft-patch',
      xdsAddress: '127.0.0.1:0',
      adminAddress: '127.0.0.1:0',
      mtls: false,
      insecureXds: true,
      quietMs: 50,
      maxDelayMs: 300,
      leaseSeconds: 2,
      leaseRetryMs: 200,
    });
    await eventually('this replica leads', () => weft.controller.leader.isLeader);
  });

  after(async () => {
    await weft?.stop();
    await env?.stop();
  });

  it('a refused patch reports the operation and field, a fixed one applies with a new observedGeneration, deletion restores the route', async () => {
    const routeName = `route|${A.port}|shop/store`;
    const client = new AdsClient({
      target: `127.0.0.1:${weft.port}`,
      nodeId: 'shop/buyer',
      metadata: { FLAVOR: 'grpc' },
      mode: 'sotw',
    });
    const patch = (retryOnField: string): string => `apiVersion: weft.dev/v1alpha1
kind: EnvoyPatch
metadata: { name: buyer-retries, namespace: shop }
spec:
  selector: { matchLabels: { app: buyer } }
  patches:
    - target: { type: RouteConfiguration, service: { name: store, port: ${A.port} } }
      merge:
        virtual_hosts: [{ name: "shop/store|${A.port}", retry_policy: { ${retryOnField}: unavailable, num_retries: 2 } }]
`;
    const retry = (): unknown =>
      (client.decoded(ROUTE, routeName) as { virtual_hosts?: { retry_policy?: unknown }[] } | undefined)
        ?.virtual_hosts?.[0]?.retry_policy;
    const status = async (): Promise<PatchStatus> =>
      JSON.parse(
        await kubectl(['get', 'envoypatch', 'buyer-retries', '-n', 'shop', '-o', 'json']),
      ) as PatchStatus;
    const cond = (s: PatchStatus, type: string) => s.status?.conditions?.find((c) => c.type === type);
    try {
      client.subscribe(ROUTE, [routeName]);
      await client.waitFor(() => client.resources(ROUTE).has(routeName), 10_000, 'the route');
      const original = client.decoded(ROUTE, routeName);
      assert.equal(retry(), undefined);

      // A typo in an Envoy field: the CRD lets it through (Envoy values are free-form there), Weft refuses it.
      await kubectl(['apply', '-f', '-'], patch('retry_onn'));
      let s: PatchStatus | undefined;
      await eventually('the refusal is in the status', async () => {
        s = await status();
        return (
          cond(s, 'Applied')?.status === 'False' && s.status?.observedGeneration === s.metadata.generation
        );
      });
      const refused = cond(s!, 'Applied')!;
      assert.equal(refused.reason, 'Invalid');
      assert.match(refused.message, /spec\.patches\[0\]/, 'names the operation');
      assert.match(refused.message, /unknown field "retry_onn"/, 'names the field and why');
      assert.equal(cond(s!, 'Accepted')?.status, 'True', 'the patch object itself is well-formed');
      assert.deepEqual(client.decoded(ROUTE, routeName), original, 'the unpatched route keeps serving');
      const firstGeneration = s!.metadata.generation;

      // Fixed with kubectl apply: a new generation, applied, and the status follows it.
      await kubectl(['apply', '-f', '-'], patch('retry_on'));
      await client.waitFor(() => retry() !== undefined, 10_000, 'the patched route');
      // Decoded from the wire: UInt32Value is a message there.
      assert.deepEqual(retry(), { retry_on: 'unavailable', num_retries: { value: 2 } });
      await eventually('the status reports the new generation as applied', async () => {
        s = await status();
        return (
          s.metadata.generation > firstGeneration &&
          s.status?.observedGeneration === s.metadata.generation &&
          cond(s, 'Applied')?.status === 'True' &&
          cond(s, 'Programmed')?.status === 'True'
        );
      });
      assert.match(cond(s!, 'Applied')!.message, /applied to 1 of 1 selected proxies/);

      await kubectl(['delete', 'envoypatch', 'buyer-retries', '-n', 'shop']);
      await client.waitFor(() => retry() === undefined, 10_000, 'the original route back');
      assert.deepEqual(client.decoded(ROUTE, routeName), original);
    } finally {
      client.close();
    }
  });
});
