/**
 * The echo image's entrypoint for the cluster driver: one process per Pod, reading its role from
 * the environment the manifests set.
 * - `ROLE=server`: an xDS-enabled echo server per entry of `PORTS` (`name:port,...`) on the Pod
 *   IP, answering with `POD_NAME`'s version label (`BACKEND`).
 * - `ROLE=caller`: an HTTP control endpoint on `CONTROL_PORT` (default 8080); `POST /call` with
 *   `{service, port, method, headers, n, deadlineMs, channel}` makes the calls through xDS and
 *   answers the outcomes, so a driver outside the cluster (through `kubectl port-forward`) sends
 *   real calls from inside the mesh. `DELETE /channel/<name>` closes a channel.
 * Both get their config from Weft at `XDS_SERVER`, as node `<POD_NAMESPACE>/<POD_NAME>`.
 *
 * The bookstore example (examples/bookstore) runs the same image with arguments instead, and sets
 * no environment: `server <host:port>` serves echo on the pod IP at that port, and
 * `client xds:///<service>:<port>` calls it once a second and logs where each call went.
 * Unset variables then default to what a pod knows about itself.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { hostname, networkInterfaces } from 'node:os';
import { status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { EchoClient, proxylessBootstrap, startEchoServer } from '../../src/workload/echo';

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
      const e = err as Partial<ServiceError>;
      console.log(`${arg} -> ${(grpcStatus as unknown as Record<number, string>)[e.code ?? 2] ?? 'UNKNOWN'}`);
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function main(): Promise<void> {
  const namespace = podNamespace();
  const pod = env('POD_NAME', hostname());
  const bootstrap = proxylessBootstrap({
    xdsServer: env('XDS_SERVER', 'weft.weft-system:15010'),
    nodeId: `${namespace}/${pod}`,
  });
  const [mode, arg] = process.argv.slice(2);
  if ((mode === 'server' || mode === 'client') && arg) return bookstore(mode, arg, bootstrap);
  if (env('ROLE') === 'server') {
    for (const entry of env('PORTS').split(',')) {
      const port = entry.split(':')[1];
      await startEchoServer({ name: env('BACKEND', pod), address: `${env('POD_IP')}:${port}`, bootstrap });
    }
    return;
  }
  const channels = new Map<string, EchoClient>();
  const server = createServer((req, res) => {
    const reply = (code: number, body: unknown) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'DELETE' && req.url?.startsWith('/channel/')) {
      const name = decodeURIComponent(req.url.slice('/channel/'.length));
      for (const [k, c] of channels) {
        if (!k.startsWith(`${name}|`)) continue;
        c.close();
        channels.delete(k);
      }
      return reply(200, {});
    }
    if (req.method !== 'POST' || req.url !== '/call') return reply(404, { error: 'POST /call' });
    let body = '';
    req.on('data', (b: Buffer) => {
      body += b.toString();
    });
    req.on('end', async () => {
      const c = JSON.parse(body) as {
        service: string;
        port: number;
        method: 'Get' | 'Put' | 'Delete';
        headers: Record<string, string>;
        n: number;
        deadlineMs?: number;
        channel: string;
      };
      const key = `${c.channel}|${c.service}:${c.port}`;
      let client = channels.get(key);
      if (!client) {
        client = new EchoClient(`xds:///${c.service}.${namespace}:${c.port}`, bootstrap);
        channels.set(key, client);
      }
      const cl = client;
      const outcomes = await Promise.all(
        Array.from({ length: c.n }, async () => {
          try {
            return { ok: true, backend: (await cl.call(c.method, c.headers, c.deadlineMs ?? 1500)).backend };
          } catch (err) {
            const e = err as Partial<ServiceError>;
            const code = (grpcStatus as unknown as Record<number, string>)[e.code ?? 2] ?? 'UNKNOWN';
            return { ok: false, code, message: e.details ?? String(err) };
          }
        }),
      );
      reply(200, outcomes);
    });
  });
  server.listen(Number(env('CONTROL_PORT', '8080')), '0.0.0.0');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
