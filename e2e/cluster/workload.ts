/**
 * The echo image's entrypoint for the cluster driver: one process per Pod, reading its role from
 * the environment the manifests set.
 * - `ROLE=server`: an xDS-enabled echo server per entry of `PORTS` (`name:port,...`) on the Pod
 *   IP, answering with `POD_NAME`'s version label (`BACKEND`).
 * - `ROLE=caller`: the control endpoint of `src/workload/caller-control.ts` on `CONTROL_PORT`
 *   (default 8080): `POST /call` makes calls through xDS and answers the outcomes, so a driver
 *   outside the cluster (through `kubectl port-forward`) sends real calls from inside the mesh;
 *   `DELETE /channel/<name>` closes a channel.
 * Both get their config from Weft at `XDS_SERVER`, as node `<POD_NAMESPACE>/<POD_NAME>`. With
 * `WEFT_CERT_DIR` (the manifests set it: their pods carry `weft.dev/flavor: grpc`, so the injector
 * adds a `weft agent` with an xDS relay on 127.0.0.1:15010 and the certificate files there) the
 * workload has a mesh identity: xDS through the relay, mTLS on every call.
 *
 * The bookstore example (examples/bookstore) runs the same image with arguments instead, and sets
 * no environment: `server <host:port>` serves echo on the pod IP at that port, and
 * `client xds:///<service>:<port>` calls it once a second and logs where each call went.
 * Unset variables then default to what a pod knows about itself.
 */
import { existsSync, readFileSync } from 'node:fs';
import { hostname, networkInterfaces } from 'node:os';
import type { ChannelCredentials, ServerCredentials, ServiceError } from '@grpc/grpc-js';
import { GRPC_RELAY_ADDRESS } from '../../src/inject/mutate';
import { grpcCodeName, startCallerControl } from '../../src/workload/caller-control';
import { EchoClient, proxylessBootstrap, startEchoServer } from '../../src/workload/echo';
import {
  agentBootstrap,
  agentFiles,
  xdsChannelCredentials,
  xdsServerCredentials,
} from '../../src/workload/mesh-peer';

function env(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (v === undefined) throw new Error(`${name} is not set`);
  return v;
}

/** The pod's namespace: POD_NAMESPACE, else the one its ServiceAccount token is mounted for. */
function podNamespace(): string {
  return (
    process.env.POD_NAMESPACE ??
    readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/namespace', 'utf8').trim()
  );
}

/** The pod's IP: POD_IP, else its first non-loopback IPv4 address. */
function podIp(): string {
  if (process.env.POD_IP) return process.env.POD_IP;
  const ip = Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
  if (!ip) throw new Error('POD_IP is not set and the pod has no IPv4 address');
  return ip;
}

/** examples/bookstore's `server <host:port>` and `client xds:///<service>:<port>`. */
async function bookstore(mode: string, arg: string, bootstrap: Record<string, unknown>): Promise<void> {
  if (mode === 'server') {
    const port = arg.split(':').pop();
    await startEchoServer({ name: env('BACKEND', hostname()), address: `${podIp()}:${port}`, bootstrap });
    console.log(`echo server on ${podIp()}:${port}`);
    return;
  }
  const client = new EchoClient(arg, bootstrap);
  for (;;) {
    try {
      console.log(`${arg} -> ${(await client.call('Get', {}, 1500)).backend}`);
    } catch (err) {
      console.log(`${arg} -> ${grpcCodeName((err as Partial<ServiceError>).code ?? 2)}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/**
 * The bootstrap and credentials: with `WEFT_CERT_DIR` (set by the manifests, where the injected
 * agent of a `weft.dev/flavor: grpc` pod writes its files) xDS goes through the agent's relay and
 * calls use mTLS from those files; without it, plaintext xDS straight to Weft (the bookstore
 * example, or a mesh with mTLS off).
 */
function meshConfig(nodeId: string): {
  bootstrap: Record<string, unknown>;
  server?: ServerCredentials;
  channel?: ChannelCredentials;
} {
  const certDir = process.env.WEFT_CERT_DIR;
  if (!certDir) {
    return {
      bootstrap: proxylessBootstrap({ xdsServer: env('XDS_SERVER', 'weft.weft-system:15010'), nodeId }),
    };
  }
  // Without the agent's files grpc would fail every call with a vague TLS error; say why instead.
  if (!existsSync(agentFiles(certDir).certificateFile)) {
    throw new Error(
      `no certificate in ${certDir}: the pod was not injected with Weft's agent (is Weft's injector running, the namespace labelled weft.dev/mesh=enabled, the pod annotated weft.dev/flavor: grpc?)`,
    );
  }
  return {
    bootstrap: agentBootstrap({ xdsServer: env('XDS_SERVER', GRPC_RELAY_ADDRESS), nodeId, certDir }),
    server: xdsServerCredentials(),
    channel: xdsChannelCredentials(),
  };
}

async function main(): Promise<void> {
  const namespace = podNamespace();
  const pod = env('POD_NAME', hostname());
  if (process.env.WEFT_FLAVOR === 'envoy') return behindEnvoy(namespace, pod);
  const mesh = meshConfig(`${namespace}/${pod}`);
  const [mode, arg] = process.argv.slice(2);
  if ((mode === 'server' || mode === 'client') && arg) return bookstore(mode, arg, mesh.bootstrap);
  if (env('ROLE') === 'server') {
    for (const entry of env('PORTS').split(',')) {
      const port = entry.split(':')[1];
      await startEchoServer({
        name: env('BACKEND', pod),
        address: `${env('POD_IP')}:${port}`,
        bootstrap: mesh.bootstrap,
        ...(mesh.server ? { credentials: mesh.server } : {}),
      });
    }
    return;
  }
  const control = await startCallerControl({
    bootstrap: mesh.bootstrap,
    namespace,
    listen: `0.0.0.0:${env('CONTROL_PORT', '8080')}`,
    ...(mesh.channel ? { credentials: mesh.channel } : {}),
  });
  console.log(`control endpoint on port ${control.port}`);
}

/**
 * `WEFT_FLAVOR=envoy`: a plain gRPC app beside an injected Envoy sidecar (no xDS, no certificates
 * of its own). Servers listen on every address, as the sidecar hands inbound calls to the app on
 * loopback; callers dial `<service>.<namespace>:<port>` by DNS and the sidecar captures the call.
 */
async function behindEnvoy(namespace: string, pod: string): Promise<void> {
  if (env('ROLE') === 'server') {
    for (const entry of env('PORTS').split(',')) {
      const port = entry.split(':')[1];
      await startEchoServer({ name: env('BACKEND', pod), address: `0.0.0.0:${port}` });
    }
    return;
  }
  const control = await startCallerControl({ namespace, listen: `0.0.0.0:${env('CONTROL_PORT', '8080')}` });
  console.log(`control endpoint on port ${control.port} (behind Envoy)`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
