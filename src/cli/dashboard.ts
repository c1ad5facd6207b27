/**
 * `weft dashboard`: opens the web dashboard a running Weft serves on its admin port.
 *
 * - Folder mode (`--admin-url`, default Weft's own default admin address): checks that the
 *   dashboard answers there and prints its address (and opens a browser with `--open`).
 * - A cluster (`--kubernetes` / `--kubeconfig`): Weft's admin port is not exposed, and it shows
 *   the dashboard only to callers with a bearer token the API server vouches for (TokenReview)
 *   and that may list pods in the namespaces shown (SubjectAccessReview). A browser cannot add
 *   that token to its requests, so this command port-forwards to the Weft pod and serves a small
 *   read-only proxy on loopback that adds the kubeconfig user's token (or `--token`) to each GET.
 *   The proxy's address carries a random path segment, so other local users cannot borrow the
 *   token by guessing the port. It runs until interrupted.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createServer, request } from 'node:http';
import type { Command } from 'commander';
import { KubeClient, loadKubeConfig } from '../kube/client';
import type { CommandRegistrar } from './index';
import {
  ADMIN_PORT,
  adminGet,
  findWeftPod,
  kubeAuthorization,
  portForward,
  type RemoteFlags,
  runCommand,
  UsageError,
} from './remote';

/** `weft serve`'s default admin address. */
const DEFAULT_ADMIN_URL = 'http://127.0.0.1:15014';

interface DashboardFlags extends Omit<RemoteFlags, 'xdsAddress' | 'certDir' | 'trustDomain'> {
  open?: boolean;
  port: string;
}

/** Opens `url` in the desktop's browser, if there is one; failing that, the printed URL is enough. */
function openBrowser(url: string): void {
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  try {
    const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    child.on('error', () =>
      process.stderr.write(`weft dashboard: could not run ${cmd}; open ${url} yourself\n`),
    );
    child.unref();
  } catch {
    process.stderr.write(`weft dashboard: could not run ${cmd}; open ${url} yourself\n`);
  }
}

/**
 * Serves a loopback proxy to `target` that accepts only GETs under `/<secret>/` and adds
 * `authorization`; resolves to its base URL and a stop function.
 */
export async function tokenProxy(
  target: { host: string; port: number },
  authorization: string,
  listenPort: number,
): Promise<{ url: string; stop: () => Promise<void> }> {
  const secret = randomBytes(12).toString('base64url');
  const server = createServer((req, res) => {
    const prefix = `/${secret}`;
    if (!req.url?.startsWith(`${prefix}/`) || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(req.method === 'GET' || req.method === 'HEAD' ? 404 : 405).end();
      return;
    }
    const upstream = request(
      {
        host: target.host,
        port: target.port,
        method: req.method,
        path: req.url.slice(prefix.length),
        headers: { ...req.headers, host: `${target.host}:${target.port}`, authorization },
      },
      (up) => {
        // Weft's own redirects are absolute paths: keep them under the secret prefix.
        const location = up.headers.location;
        if (location?.startsWith('/')) up.headers.location = prefix + location;
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    upstream.on('error', (err) => {
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
      res.end(`cannot reach Weft: ${err.message}\n`);
    });
    req.on('close', () => upstream.destroy());
    upstream.end();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', () => resolve());
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : listenPort;
  return {
    url: `http://127.0.0.1:${port}/${secret}`,
    stop: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** Registers `weft dashboard`. */
export const registerDashboard: CommandRegistrar = (program: Command, setExitCode) => {
  program
    .command('dashboard')
    .description(
      "Opens Weft's web dashboard: the topology with allowed edges (TrafficTargets) and live\n" +
        'edges (rate, success, p99 from the sidecars), each TrafficSplit with its weights beside the\n' +
        'observed share, proxies with their sync and NACK state, conditions with their fixes,\n' +
        'EnvoyPatches with their status, and explain for one call. Read-only; it updates live.\n' +
        'Folder mode: checks the dashboard answers on --admin-url and prints its address.\n' +
        'In a cluster (--kubernetes, --kubeconfig) it port-forwards to the Weft pod and serves a\n' +
        "loopback proxy that adds your kubeconfig user's token (or --token), which Weft checks with\n" +
        'TokenReview and RBAC; it runs until you stop it (Ctrl-C).',
    )
    .option('--admin-url <url>', "a running Weft's admin server", DEFAULT_ADMIN_URL)
    .option('--kubernetes', 'reach Weft in the cluster of the current kubeconfig context (port-forward)')
    .option('--kubeconfig <file>', 'as --kubernetes, with this kubeconfig')
    .option('--context <name>', 'kubeconfig context (default: the current one)')
    .option('-n, --namespace <ns>', "Weft's namespace in the cluster", 'weft-system')
    .option('--token <token>', "bearer token Weft checks in a cluster (default: the kubeconfig user's)")
    .option('--open', 'also open it in the default browser')
    .option('--port <port>', 'cluster mode: loopback port of the local proxy (0: any free port)', '0')
    .action(async (f: DashboardFlags) => {
      await runCommand('dashboard', setExitCode, async () => {
        const port = Number(f.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535)
          throw new UsageError(`--port must be a port number, not "${f.port}"`);
        if (!f.kubernetes && !f.kubeconfig) {
          const base = f.adminUrl ?? DEFAULT_ADMIN_URL;
          // Fails with what is wrong (nothing listening, a Weft without the dashboard) before printing.
          await adminGet(base, '/dashboard/api/state');
          const url = new URL('/dashboard/', base).toString();
          process.stdout.write(`${url}\n`);
          if (f.open) openBrowser(url);
          return 0;
        }
        const kc = loadKubeConfig(f.kubeconfig);
        if (f.context) kc.setCurrentContext(f.context);
        const client = new KubeClient(kc);
        const namespace = f.namespace ?? 'weft-system';
        const pod = await findWeftPod(client, namespace);
        const auth = f.token ? `Bearer ${f.token}` : await kubeAuthorization(kc);
        if (!auth)
          throw new Error(
            "your kubeconfig user has no bearer token (a client certificate, say), and Weft's dashboard in a cluster takes a token the API server vouches for: pass --token $(kubectl create token <service-account> -n <namespace>) of an account that may list pods in the mesh namespaces",
          );
        const fwd = await portForward(kc, namespace, pod, ADMIN_PORT);
        const proxy = await tokenProxy({ host: '127.0.0.1', port: fwd.localPort }, auth, port);
        try {
          await adminGet(`${proxy.url}/`, `${proxy.url}/dashboard/api/state`);
        } catch (err) {
          await proxy.stop();
          await fwd.stop();
          throw err;
        }
        const url = `${proxy.url}/dashboard/`;
        process.stdout.write(
          `${url}\n(pod ${namespace}/${pod} through ${client.serverUrl}; Ctrl-C to stop)\n`,
        );
        if (f.open) openBrowser(url);
        await new Promise<void>((resolve) => {
          process.once('SIGINT', resolve);
          process.once('SIGTERM', resolve);
        });
        await proxy.stop();
        await fwd.stop();
        return 0;
      });
    });
};
