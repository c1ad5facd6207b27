/**
 * A real Kubernetes API server for tests, started the way controller-runtime's envtest does: etcd
 * and kube-apiserver (built by `scripts/setup-kube.sh`) on 127.0.0.1 with ports the OS hands out,
 * a fresh data folder, certificates made with openssl, RBAC on, and an admin kubeconfig.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../src/net';
import { type ProcessResult, runProcess } from '../../src/process';

/** A running API server. */
export interface KubeEnv {
  readonly kubeconfigPath: string;
  readonly server: string;
  readonly binDir: string;
  /**
   * The folder of etcd's data, the logs and the PKI: `ca.crt`/`ca.key` (the cluster CA, also the
   * client CA), `admin.crt`/`admin.key` (system:masters), `sa.key`/`sa.pub` (ServiceAccount
   * tokens). The cluster tier signs its node's certificates with them.
   */
  readonly dir: string;
  /** Runs kubectl against the server. */
  kubectl(args: string[], stdin?: string): Promise<ProcessResult>;
  /** Stops and starts kube-apiserver (same ports, same etcd), to test watch resilience. */
  restartApiServer(): Promise<void>;
  stop(): Promise<void>;
}

/** Runs kubectl and fails the test unless it exits 0, naming the command and its stderr. */
export async function kubectlOk(env: KubeEnv, args: string[], input?: string): Promise<ProcessResult> {
  const r = await env.kubectl(args, input);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r;
}

/**
 * Polls `check` until it gives something other than `undefined` or `false`, and resolves with
 * it; after `ms`, fails naming `what` and the last error `check` threw, if any. What a real API
 * server and real proxies do takes their own time: tests wait for the state, not for a clock.
 */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  ms = 30_000,
): Promise<T> {
  const end = Date.now() + ms;
  let last = '';
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = `; last error: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (Date.now() > end) throw new Error(`never happened within ${ms} ms: ${what}${last}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The caBundle (PEM) of the first webhook of the ValidatingWebhookConfiguration `name`. */
export async function validatingWebhookCaBundle(env: KubeEnv, name: string): Promise<string> {
  const cfg = JSON.parse(
    (await kubectlOk(env, ['get', 'validatingwebhookconfiguration', name, '-o', 'json'])).stdout,
  ) as { webhooks: { clientConfig: { caBundle?: string } }[] };
  return Buffer.from(cfg.webhooks[0]!.clientConfig.caBundle ?? '', 'base64').toString('utf8');
}

/** kubectl arguments that wait until every SMI and Weft CRD is served. */
export const WAIT_FOR_WEFT_CRDS: readonly string[] = [
  'wait',
  '--for=condition=Established',
  '--timeout=60s',
  'crd',
  '-l',
  'app.kubernetes.io/part-of=weft',
];

/**
 * Weft's injector webhook configuration as deploy/helm/weft registers it, but reached by `url`
 * (nothing runs Weft as a Service here) and without a caBundle: Weft writes that at start.
 */
export function injectorWebhookByUrl(url: string): string {
  return JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'weft-sidecar-injector' },
    webhooks: [
      {
        name: 'sidecar.weft.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Ignore',
        timeoutSeconds: 10,
        reinvocationPolicy: 'Never',
        namespaceSelector: { matchLabels: { 'weft.dev/mesh': 'enabled' } },
        rules: [
          {
            operations: ['CREATE'],
            apiGroups: [''],
            apiVersions: ['v1'],
            resources: ['pods'],
            scope: 'Namespaced',
          },
        ],
        clientConfig: { url },
      },
    ],
  });
}

/** The chart's `weft-envoypatch-validator` webhook, registered by URL (see {@link injectorWebhookByUrl}). */
export function patchValidatorByUrl(url: string): string {
  return JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: 'weft-envoypatch-validator' },
    webhooks: [
      {
        name: 'envoypatch.weft.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Ignore',
        timeoutSeconds: 10,
        rules: [
          {
            operations: ['CREATE', 'UPDATE'],
            apiGroups: ['weft.dev'],
            apiVersions: ['v1alpha1'],
            resources: ['envoypatches'],
            scope: 'Namespaced',
          },
        ],
        clientConfig: { url },
      },
    ],
  });
}

/**
 * The chart's `weft-smi-validator` webhook, registered by URL (see {@link injectorWebhookByUrl}),
 * with the chart's rules and namespace selector.
 */
export function smiValidatorByUrl(url: string): string {
  const rule = (apiGroup: string, apiVersions: string[], resources: string[]) => ({
    operations: ['CREATE', 'UPDATE'],
    apiGroups: [apiGroup],
    apiVersions,
    resources,
    scope: 'Namespaced',
  });
  return JSON.stringify({
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: 'weft-smi-validator' },
    webhooks: [
      {
        name: 'smi.weft.dev',
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Ignore',
        timeoutSeconds: 10,
        matchPolicy: 'Equivalent',
        namespaceSelector: { matchLabels: { 'weft.dev/mesh': 'enabled' } },
        rules: [
          rule('split.smi-spec.io', ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'], ['trafficsplits']),
          rule('access.smi-spec.io', ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'], ['traffictargets']),
          rule('access.smi-spec.io', ['v1alpha4'], ['identitybindings']),
          rule(
            'specs.smi-spec.io',
            ['v1alpha1', 'v1alpha2', 'v1alpha3', 'v1alpha4'],
            ['httproutegroups', 'tcproutes', 'udproutes'],
          ),
        ],
        clientConfig: { url },
      },
    ],
  });
}

/** Finds the binaries: WEFT_KUBE_BIN, else the newest folder of the setup script's cache. */
export function kubeBinDir(): string {
  if (process.env.WEFT_KUBE_BIN) return process.env.WEFT_KUBE_BIN;
  const root = process.env.WEFT_KUBE_CACHE ?? join(homedir(), '.cache', 'weft', 'kube');
  if (existsSync(root)) {
    // A change of hack/kube builds into a new folder; the newest build is the current one.
    const built = readdirSync(root)
      .map((d) => join(root, d, 'bin'))
      .filter((bin) => existsSync(join(bin, 'kube-apiserver')) && existsSync(join(bin, 'etcd')))
      .map((bin) => ({ bin, at: statSync(join(bin, 'kube-apiserver')).mtimeMs }))
      .sort((a, b) => b.at - a.at);
    if (built[0]) return built[0].bin;
  }
  throw new Error('no kube-apiserver and etcd binaries: run scripts/setup-kube.sh (or set WEFT_KUBE_BIN)');
}

function openssl(args: string, cwd: string): void {
  execFileSync('openssl', args.split(' '), { cwd, stdio: 'pipe' });
}

/**
 * A key and a certificate signed by the test CA in `dir`, for `subject` with the extensions in
 * `ext`, written as `<name>.key` and `<name>.crt`.
 */
export function issue(dir: string, name: string, subject: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(`req -newkey rsa:2048 -nodes -keyout ${name}.key -out ${name}.csr -subj ${subject}`, dir);
  openssl(
    `x509 -req -in ${name}.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out ${name}.crt -days 2 -extfile ${name}.ext`,
    dir,
  );
}

function makeCerts(dir: string, sans: readonly string[]): void {
  openssl('req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=weft-test-ca', dir);
  issue(
    dir,
    'serving',
    '/CN=localhost',
    `subjectAltName=${['IP:127.0.0.1', 'DNS:localhost', ...sans].join(',')}\nextendedKeyUsage=serverAuth\n`,
  );
  issue(dir, 'admin', '/CN=admin/O=system:masters', 'extendedKeyUsage=clientAuth\n');
  openssl('genrsa -out sa.key 2048', dir);
  openssl('rsa -in sa.key -pubout -out sa.pub', dir);
}

/** The last 25 lines of a log file (empty when it cannot be read), for error messages. */
export function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-25).join('\n');
  } catch {
    return '';
  }
}

function get(url: string, dir: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        ca: readFileSync(join(dir, 'ca.crt')),
        cert: readFileSync(join(dir, 'admin.crt')),
        key: readFileSync(join(dir, 'admin.key')),
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
    req.end();
  });
}

async function waitReady(
  url: string,
  dir: string,
  proc: ChildProcess,
  log: string,
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (proc.exitCode !== null) throw new Error(`kube-apiserver exited with ${proc.exitCode}:\n${tail(log)}`);
    if ((await get(url, dir)) === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`kube-apiserver not ready after ${timeoutMs} ms:\n${tail(log)}`);
}

/** Stops a process: SIGTERM, SIGKILL after 5 s; resolves once it has exited. */
export function stopProc(p: ChildProcess | undefined): Promise<void> {
  if (!p || p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
    p.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/** Options of {@link startKubeEnv}. */
export interface KubeEnvOptions {
  /**
   * `--service-cluster-ip-range` (default 10.96.0.0/12). A suite whose pods really send to
   * ClusterIPs gives one inside its own pod network, so that no address it could reach is
   * anybody else's.
   */
  serviceClusterIpRange?: string;
  /**
   * Configure the aggregation layer: a front-proxy CA and client certificate
   * (`--requestheader-*`, `--proxy-client-*`), so APIServices can forward to aggregated servers.
   */
  aggregation?: boolean;
  /**
   * The address the API server listens on and advertises (default 127.0.0.1, with ports the OS
   * hands out). The cluster tier gives its node's IP, which pods reach through the `kubernetes`
   * Service; the serving certificate then also names it and `serviceSans`.
   */
  address?: string;
  /** Extra subject alternative names of the serving certificate (`IP:10.0.0.1`, `DNS:kubernetes`). */
  serviceSans?: readonly string[];
  /**
   * A full cluster: ServiceAccount admission on (a controller manager creates the accounts), the
   * Node authorizer beside RBAC, and the API server's client certificate for kubelets.
   */
  withNodes?: boolean;
  /**
   * The folder to make the work folder in (default: the system's temporary folder). The cluster
   * tier gives its own, so that every process of a cluster names that folder and a run that
   * crashed can be told apart from other API servers on the machine.
   */
  parentDir?: string;
}

/** The front proxy's CA and its client certificate (CN front-proxy-client), for aggregation. */
function makeFrontProxyCerts(dir: string): void {
  openssl(
    'req -x509 -newkey rsa:2048 -nodes -keyout fp-ca.key -out fp-ca.crt -days 2 -subj /CN=weft-test-front-proxy-ca',
    dir,
  );
  writeFileSync(join(dir, 'fp.ext'), 'extendedKeyUsage=clientAuth\n');
  openssl('req -newkey rsa:2048 -nodes -keyout fp.key -out fp.csr -subj /CN=front-proxy-client', dir);
  openssl(
    'x509 -req -in fp.csr -CA fp-ca.crt -CAkey fp-ca.key -CAcreateserial -out fp.crt -days 2 -extfile fp.ext',
    dir,
  );
}

/** Starts etcd and kube-apiserver; resolves once /readyz answers. */
export async function startKubeEnv(o: KubeEnvOptions = {}): Promise<KubeEnv> {
  const bin = kubeBinDir();
  const dir = mkdtempSync(join(o.parentDir ?? tmpdir(), 'weft-kube-'));
  const address = o.address ?? '127.0.0.1';
  makeCerts(dir, [...(o.address ? [`IP:${o.address}`] : []), ...(o.serviceSans ?? [])]);
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort(address)];
  const etcdLog = join(dir, 'etcd.log');
  const etcd = spawn(
    join(bin, 'etcd'),
    [
      '--data-dir',
      join(dir, 'etcd'),
      '--listen-client-urls',
      `http://127.0.0.1:${etcdClient}`,
      '--advertise-client-urls',
      `http://127.0.0.1:${etcdClient}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${etcdPeer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster',
      `default=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync',
      '--log-outputs',
      etcdLog,
    ],
    { stdio: 'ignore' },
  );
  const apiLog = join(dir, 'kube-apiserver.log');
  const apiArgs = [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    `--secure-port=${apiPort}`,
    `--bind-address=${address}`,
    `--advertise-address=${address}`,
    `--tls-cert-file=${join(dir, 'serving.crt')}`,
    `--tls-private-key-file=${join(dir, 'serving.key')}`,
    `--client-ca-file=${join(dir, 'ca.crt')}`,
    o.withNodes ? '--authorization-mode=Node,RBAC' : '--authorization-mode=RBAC',
    `--service-cluster-ip-range=${o.serviceClusterIpRange ?? '10.96.0.0/12'}`,
    '--service-account-issuer=https://kubernetes.default.svc',
    `--service-account-key-file=${join(dir, 'sa.pub')}`,
    `--service-account-signing-key-file=${join(dir, 'sa.key')}`,
    // Without a controller manager, ServiceAccount admission would wait for default accounts.
    ...(o.withNodes
      ? [
          '--enable-admission-plugins=NodeRestriction',
          `--kubelet-client-certificate=${join(dir, 'admin.crt')}`,
          `--kubelet-client-key=${join(dir, 'admin.key')}`,
          // The node's name is no DNS name: logs and exec go to its IP.
          '--kubelet-preferred-address-types=InternalIP',
        ]
      : ['--disable-admission-plugins=ServiceAccount']),
    '--allow-privileged=true',
    `--cert-dir=${join(dir, 'certs')}`,
  ];
  if (o.aggregation) {
    makeFrontProxyCerts(dir);
    apiArgs.push(
      `--requestheader-client-ca-file=${join(dir, 'fp-ca.crt')}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      `--proxy-client-cert-file=${join(dir, 'fp.crt')}`,
      `--proxy-client-key-file=${join(dir, 'fp.key')}`,
    );
  }
  let api: ChildProcess | undefined;
  const startApi = async (): Promise<void> => {
    const { openSync } = await import('node:fs');
    const fd = openSync(apiLog, 'a');
    api = spawn(join(bin, 'kube-apiserver'), apiArgs, { stdio: ['ignore', fd, fd] });
    await waitReady(`https://${address}:${apiPort}/readyz`, dir, api, apiLog, 60_000);
  };
  try {
    await startApi();
  } catch (err) {
    await stopProc(api);
    await stopProc(etcd);
    throw new Error(`${(err as Error).message}\netcd log:\n${tail(etcdLog)}`);
  }
  const server = `https://${address}:${apiPort}`;
  const kubeconfigPath = join(dir, 'kubeconfig');
  writeFileSync(
    kubeconfigPath,
    `apiVersion: v1
kind: Config
clusters: [{ name: test, cluster: { server: "${server}", certificate-authority: "${join(dir, 'ca.crt')}" } }]
users: [{ name: admin, user: { client-certificate: "${join(dir, 'admin.crt')}", client-key: "${join(dir, 'admin.key')}" } }]
contexts: [{ name: test, context: { cluster: test, user: admin } }]
current-context: test
`,
  );
  const kubectl = (args: string[], stdin?: string) =>
    runProcess(join(bin, 'kubectl'), ['--kubeconfig', kubeconfigPath, ...args], stdin);
  return {
    kubeconfigPath,
    server,
    binDir: bin,
    dir,
    kubectl,
    restartApiServer: async () => {
      await stopProc(api);
      await startApi();
    },
    stop: async () => {
      await stopProc(api);
      await stopProc(etcd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The two TrafficMetrics APIServices (v1alpha1, v1alpha2) of Service `weft-system/weft` on `port`, as YAML. */
export function metricsApiServices(port: number): string {
  return ['v1alpha1', 'v1alpha2']
    .map(
      (v) => `apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: { name: ${v}.metrics.smi-spec.io }
spec:
  group: metrics.smi-spec.io
  version: ${v}
  groupPriorityMinimum: 100
  versionPriority: ${v === 'v1alpha2' ? 20 : 10}
  service: { name: weft, namespace: weft-system, port: ${port} }
`,
    )
    .join('---\n');
}
