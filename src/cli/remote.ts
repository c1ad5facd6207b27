/**
 * Reaching a running Weft from the CLI (`weft proxy`, `weft version`, `weft check`):
 * - folder mode: its admin server (`--admin-url`) and, for CSDS over the mTLS xDS port,
 *   `--xds-address` with a certificate of Weft's own identity (`--cert-dir`, from
 *   `weft ca issue --identity weft-system/weft`);
 * - a cluster (`--kubernetes` / `--kubeconfig`): a ready Weft pod, reached through a port-forward
 *   over the API server with the user's own kubeconfig credentials, which Weft checks with
 *   TokenReview and SubjectAccessReview before it shows any debug data.
 */
import { readFile } from 'node:fs/promises';
import type { RequestOptions } from 'node:https';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { type KubeConfig, PortForward } from '@kubernetes/client-node';
import { controlPlaneIdentity } from '../identity/tls';
import { KubeClient, type KubeObject, loadKubeConfig } from '../kube/client';
import { type CsdsProxyConfig, fetchClientStatus } from '../xds/csds-view';

/** Where Weft's admin port listens in its pod (the chart's `admin` port). */
export const ADMIN_PORT = 15014;
/** The label selecting Weft's pods. */
export const WEFT_POD_SELECTOR = 'app.kubernetes.io/name=weft,app.kubernetes.io/component=control-plane';

/** Flags shared by the commands that talk to a running Weft. */
export interface RemoteFlags {
  adminUrl?: string;
  xdsAddress?: string;
  certDir?: string;
  trustDomain?: string;
  kubernetes?: boolean;
  kubeconfig?: string;
  /** kubeconfig context (default: the current one). */
  context?: string;
  namespace?: string;
  /** Bearer token for Weft's debug views in a cluster (default: the kubeconfig user's). */
  token?: string;
}

/** A running Weft, reached one way or another. */
export interface Remote {
  /** Where it was reached, for messages. */
  readonly where: string;
  /** GET a JSON admin path. */
  admin<T>(path: string): Promise<T>;
  /** The CSDS answer for these node ids (every visible proxy when empty). */
  csds(nodeIds: readonly string[]): Promise<CsdsProxyConfig[]>;
  close(): Promise<void>;
}

/** A message that says what failed reaching `url`, in words, instead of `fetch failed`. */
export function fetchError(url: string, err: unknown): Error {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code ?? '';
  if (code === 'ECONNREFUSED')
    return new Error(
      `nothing listens at ${url} (connection refused); is weft serve running with that --admin-address?`,
    );
  if (code === 'ENOTFOUND') return new Error(`cannot resolve the host of ${url}`);
  if ((err as { name?: string }).name === 'TimeoutError')
    return new Error(`${url} did not answer within 5 s`);
  return new Error(
    `cannot reach ${url}: ${cause?.message ?? (err instanceof Error ? err.message : String(err))}`,
  );
}

/** GETs `path` on an admin server; names the URL and the reason on failure. */
export async function adminGet<T>(base: string, path: string, authorization?: string): Promise<T> {
  const url = new URL(path, base).toString();
  let res: Response;
  try {
    res = await fetch(url, {
      signal: AbortSignal.timeout(5000),
      ...(authorization ? { headers: { authorization } } : {}),
    });
  } catch (err) {
    throw fetchError(url, err);
  }
  const text = await res.text();
  if (!res.ok) {
    let reason = text;
    try {
      const body = JSON.parse(text) as { error?: string; message?: string };
      // Weft's own errors say `error`; Kubernetes-style Status objects say `message`.
      reason = body.error ?? body.message ?? text;
    } catch {
      // not JSON: keep the text
    }
    throw new Error(`${url}: HTTP ${res.status}${reason ? `: ${reason}` : ''}`);
  }
  return JSON.parse(text) as T;
}

/** The Authorization header the kubeconfig's user sends (token or exec plugin), if any. */
export async function kubeAuthorization(kc: KubeConfig): Promise<string | undefined> {
  const opts: RequestOptions = { headers: {} };
  await kc.applyToHTTPSOptions(opts);
  const h = (opts.headers ?? {}) as Record<string, string | undefined>;
  return h.Authorization ?? h.authorization;
}

/** A ready Weft pod in `namespace`, or an error that says what was found instead. */
export async function findWeftPod(client: KubeClient, namespace: string): Promise<string> {
  const list = await client.request<{ items: KubeObject[] }>(
    'GET',
    `/api/v1/namespaces/${namespace}/pods?labelSelector=${encodeURIComponent(WEFT_POD_SELECTOR)}`,
  );
  const ready = list.items.filter((p) => {
    const conds = (p as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions;
    return conds?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
  });
  if (ready.length === 0) {
    throw new Error(
      list.items.length === 0
        ? `no Weft pod in namespace ${namespace} (label ${WEFT_POD_SELECTOR}); is Weft installed (weft install --apply)? Or pass --admin-url`
        : `no Weft pod in namespace ${namespace} is ready (${list.items.map((p) => p.metadata?.name).join(', ')}); see weft check`,
    );
  }
  return ready[0]!.metadata!.name!;
}

/**
 * Forwards a loopback port to `port` of a pod through the API server (the same WebSocket
 * port-forward kubectl uses); resolves to the local port and a stop function.
 */
export async function portForward(
  kc: KubeConfig,
  namespace: string,
  pod: string,
  port: number,
): Promise<{ localPort: number; stop: () => Promise<void> }> {
  const forward = new PortForward(kc, true);
  const server: Server = createServer((socket) => {
    forward.portForward(namespace, pod, [port], socket, null, socket).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  const localPort = typeof address === 'object' && address ? address.port : 0;
  return { localPort, stop: () => new Promise((r) => server.close(() => r())) };
}

async function certCredentials(dir: string, trustDomain: string) {
  const read = (f: string): Promise<Buffer> =>
    readFile(join(dir, f)).catch((err: NodeJS.ErrnoException) => {
      throw new Error(
        `--cert-dir ${dir}: cannot read ${f} (${err.code ?? err.message}); make one with weft ca issue --identity weft-system/weft --out ${dir}`,
      );
    });
  const [ca, key, cert] = await Promise.all([read('ca.pem'), read('key.pem'), read('cert.pem')]);
  const expected = controlPlaneIdentity(trustDomain);
  return credentials.createSsl(ca, key, cert, {
    // Weft's serving certificate names its SPIFFE ID, not a host name: check that instead.
    checkServerIdentity: (_host, peer) => {
      const san = peer.subjectaltname ?? '';
      return san.split(', ').includes(`URI:${expected}`)
        ? undefined
        : new Error(`the xDS server is not Weft (${expected}); it presented ${san || 'no SAN'}`);
    },
  });
}

/** Connects to a running Weft as the flags say; throws a usage error (exit 2) when they say nothing. */
export async function connectRemote(f: RemoteFlags): Promise<Remote> {
  if (f.kubernetes || f.kubeconfig) {
    const kc = loadKubeConfig(f.kubeconfig);
    if (f.context) kc.setCurrentContext(f.context);
    const client = new KubeClient(kc);
    const namespace = f.namespace ?? 'weft-system';
    const pod = await findWeftPod(client, namespace);
    const fwd = await portForward(kc, namespace, pod, ADMIN_PORT);
    const base = `http://127.0.0.1:${fwd.localPort}`;
    const auth = f.token ? `Bearer ${f.token}` : await kubeAuthorization(kc);
    if (!auth) {
      await fwd.stop();
      throw new Error(
        "your kubeconfig user has no bearer token (a client certificate, say), and Weft's debug views in a cluster take a token the API server vouches for: pass --token $(kubectl create token <service-account> -n <namespace>) of an account that may list pods in the mesh namespaces",
      );
    }
    return {
      where: `pod ${namespace}/${pod} (port-forward through ${client.serverUrl})`,
      admin: (path) => adminGet(base, path, auth),
      csds: async (ids) =>
        adminGet<CsdsProxyConfig[]>(
          base,
          `/debug/config?${ids.map((i) => `proxy=${encodeURIComponent(i)}`).join('&')}`,
          auth,
        ),
      close: fwd.stop,
    };
  }
  if (!f.adminUrl && !f.xdsAddress) {
    throw new UsageError(
      'give --admin-url URL (and for CSDS --xds-address HOST:PORT --cert-dir DIR), or --kubeconfig FILE / --kubernetes',
    );
  }
  const base = f.adminUrl;
  return {
    where: f.adminUrl ?? f.xdsAddress ?? '',
    admin: (path) => {
      if (!base) throw new UsageError(`this needs Weft's admin server: pass --admin-url URL`);
      return adminGet(base, path);
    },
    csds: async (ids) => {
      if (f.xdsAddress) {
        const creds = f.certDir
          ? await certCredentials(f.certDir, f.trustDomain ?? 'cluster.local')
          : credentials.createInsecure();
        try {
          return await fetchClientStatus(f.xdsAddress, ids, creds);
        } catch (err) {
          const e = err as { code?: number; details?: string };
          throw new Error(
            `CSDS at ${f.xdsAddress}: ${e.details ?? String(err)}${f.certDir ? '' : ' (an mTLS xDS port needs --cert-dir with a certificate of weft-system/weft: weft ca issue --identity weft-system/weft --out DIR)'}`,
          );
        }
      }
      return adminGet<CsdsProxyConfig[]>(
        base!,
        `/debug/config?${ids.map((i) => `proxy=${encodeURIComponent(i)}`).join('&')}`,
      );
    },
    close: async () => undefined,
  };
}

/** A problem with the command line itself: the commands exit 2 on it. */
/**
 * Runs the body of `weft <name>` and sets the exit status it returns; an error it throws is
 * printed as `weft <name>: <message>`, with status 2 for a {@link UsageError} and 1 otherwise.
 */
export async function runCommand(
  name: string,
  setExitCode: (code: number) => void,
  body: () => Promise<number>,
): Promise<void> {
  try {
    setExitCode(await body());
  } catch (err) {
    process.stderr.write(`weft ${name}: ${err instanceof Error ? err.message : String(err)}\n`);
    setExitCode(err instanceof UsageError ? 2 : 1);
  }
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
