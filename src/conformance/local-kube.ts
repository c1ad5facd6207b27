/**
 * What both local conformance drivers (proxyless gRPC and Envoy sidecars) share: a real
 * kube-apiserver and etcd of the Kubernetes test tier with Weft's CRDs, `weft serve --kubeconfig`
 * on it, objects applied and deleted through kubectl, Pod status patched in as a kubelet would
 * (no kubelet runs), CSDS read with a certificate of Weft's own identity, and Weft's conditions.
 */
import type { ChannelCredentials } from '@grpc/grpc-js';
import { type KubeEnv, type KubeEnvOptions, startKubeEnv, WAIT_FOR_WEFT_CRDS } from '../../test/kube/env';
import { allCrdsYaml } from '../crds/render';
import { controlPlaneChannelCredentials, controlPlaneIdentity } from '../identity/tls';
import type { RunningKubeServe } from '../serve';
import { fetchProxyConfigs } from './csds';
import { type ProxyConfigs, type ReportedCondition, reportedCondition } from './driver';
import type { KubeManifest } from './schema';

/** The trust domain of the local meshes. */
export const TRUST_DOMAIN = 'cluster.local';

/**
 * Objects as one JSON `List` for kubectl. JSON, not YAML: kubectl reads YAML 1.1, where an
 * unquoted `yes` or `on` a YAML 1.2 writer emits would turn into a boolean.
 */
export function toKubectlInput(objects: readonly unknown[]): string {
  return JSON.stringify({ apiVersion: 'v1', kind: 'List', items: objects });
}

/** The status a kubelet would report for a running, ready Pod with one IP. */
export function readyStatus(ip: string): Record<string, unknown> {
  return { phase: 'Running', podIP: ip, podIPs: [{ ip }], conditions: [{ type: 'Ready', status: 'True' }] };
}

/** The API server, Weft on it, and what a driver does through them; see the file comment. */
export abstract class LocalKubeDriver {
  protected env: KubeEnv | undefined;
  protected weft: RunningKubeServe | undefined;
  private csdsCredentials: Promise<ChannelCredentials | undefined> | undefined;

  /** The kubeconfig of the running API server (for tests that also drive kubectl). */
  get kubeEnv(): KubeEnv {
    if (!this.env) throw new Error(`the ${this.describe()} is not started`);
    return this.env;
  }

  /** The running Weft. */
  get serve(): RunningKubeServe {
    if (!this.weft) throw new Error(`the ${this.describe()} is not started`);
    return this.weft;
  }

  /** The driver's name in errors. */
  protected abstract describe(): string;

  /** Where Weft's xDS port is reached from this process. */
  protected abstract xdsTarget(): string;

  /** Runs kubectl against the API server; a failure throws with kubectl's own words. */
  protected async kubectl(args: string[], stdin?: string): Promise<string> {
    const r = await this.kubeEnv.kubectl(args, stdin);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  /** Starts the API server with Weft's CRDs and the mesh namespace. */
  protected async startApiServer(o: KubeEnvOptions = {}): Promise<void> {
    this.env = await startKubeEnv(o);
    await this.kubectl(['apply', '-f', '-'], allCrdsYaml());
    await this.kubectl([...WAIT_FOR_WEFT_CRDS]);
    await this.kubectl(['create', 'namespace', 'weft-system']);
  }

  /** Patches each Pod's status to running and ready at its IP, as a kubelet would report it. */
  protected async markPodsReady(namespace: string, ips: ReadonlyMap<string, string>): Promise<void> {
    await Promise.all(
      [...ips].map(([pod, ip]) =>
        this.kubectl([
          'patch',
          'pod',
          pod,
          '-n',
          namespace,
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify({ status: readyStatus(ip) }),
        ]),
      ),
    );
  }

  /** Applies objects (server-side, as kubectl would). */
  async apply(objects: readonly KubeManifest[]): Promise<void> {
    await this.kubectl(['apply', '-f', '-'], toKubectlInput(objects));
  }

  /** Deletes objects; objects already gone are not an error. */
  async delete(objects: readonly KubeManifest[]): Promise<void> {
    await this.kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', '-'], toKubectlInput(objects));
  }

  /**
   * What the proxies hold, from CSDS. Over mTLS it shows every proxy only to Weft's own identity (a
   * workload sees its own proxies), so the driver asks as an operator's tool would: with a
   * control-plane certificate.
   */
  async proxyConfig(nodeIds: readonly string[]): Promise<ProxyConfigs> {
    this.csdsCredentials ??= this.controlPlaneCredentials();
    return fetchProxyConfigs(this.xdsTarget(), nodeIds, await this.csdsCredentials);
  }

  private async controlPlaneCredentials(): Promise<ChannelCredentials | undefined> {
    const ca = this.serve.identity.running.ca;
    if (!ca) return undefined;
    const id = controlPlaneIdentity(TRUST_DOMAIN);
    const issued = await ca.issueWithNewKey(id);
    return controlPlaneChannelCredentials({
      bundlePem: ca.bundlePem(),
      serverIdentity: id,
      certPem: issued.chainPem,
      keyPem: issued.keyPem,
    });
  }

  /** Weft's current conditions. */
  async conditions(): Promise<ReportedCondition[]> {
    return this.serve.controller.currentConditions().map(reportedCondition);
  }

  /** Stops Weft and the API server. */
  protected async stopWeftAndApiServer(): Promise<void> {
    await this.weft?.stop();
    this.weft = undefined;
    await this.env?.stop();
    this.env = undefined;
    this.csdsCredentials = undefined;
  }
}
