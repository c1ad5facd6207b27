/**
 * A small Kubernetes API client over Node's `https`: JSON requests and streaming watches.
 * Authentication and TLS come from `@kubernetes/client-node`'s `KubeConfig` (kubeconfig files,
 * in-cluster ServiceAccount, exec plugins), so Weft reads credentials exactly as kubectl does, but
 * owns the watch protocol (bookmarks, 410 Gone, timeouts) rather than hiding it.
 */

import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { KubeConfig } from '@kubernetes/client-node';

/** A Kubernetes object as JSON. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind?: string; name?: string; uid?: string }[];
  };
  [key: string]: unknown;
}

/** An API error with the server's status code and message. */
export class KubeApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'KubeApiError';
  }
}

/** One watch event. */
export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject & { code?: number; reason?: string; message?: string };
}

/** What to say when no kubeconfig is found, with how to point at one. */
export const NO_KUBECONFIG =
  'no kubeconfig and no in-cluster configuration found (no KUBECONFIG, no ~/.kube/config, not in a pod); pass --kubeconfig FILE, set KUBECONFIG, or create ~/.kube/config';

/**
 * Loads a KubeConfig: from `path` when given, else the default rules (KUBECONFIG, ~/.kube/config,
 * in-cluster). Throws {@link NO_KUBECONFIG} when none is found: the client library would otherwise
 * make up `http://localhost:8080` and fail later with a message about TLS settings.
 */
export function loadKubeConfig(path?: string): KubeConfig {
  const kc = new KubeConfig();
  if (path) {
    try {
      kc.loadFromFile(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(
        code === 'ENOENT'
          ? `kubeconfig ${path} does not exist; pass the file kubectl uses (kubectl config view --minify shows it)`
          : `kubeconfig ${path} cannot be read: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    return kc;
  }
  kc.loadFromDefault();
  // loadFromDefault's last resort is a made-up context named `loaded-context` for localhost:8080.
  if (
    kc.getCurrentContext() === 'loaded-context' &&
    kc.getCurrentCluster()?.server === 'http://localhost:8080'
  )
    throw new Error(NO_KUBECONFIG);
  return kc;
}

/** JSON client for one API server. */
export class KubeClient {
  private readonly server: URL;

  constructor(private readonly kc: KubeConfig) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster; set a current-context');
    this.server = new URL(cluster.server);
  }

  /** The API server's URL. */
  get serverUrl(): string {
    return this.server.toString();
  }

  private async options(
    method: string,
    path: string,
    headers: Record<string, string>,
  ): Promise<RequestOptions> {
    const opts: RequestOptions = {
      method,
      hostname: this.server.hostname,
      port: this.server.port || (this.server.protocol === 'https:' ? 443 : 80),
      path: `${this.server.pathname.replace(/\/$/, '')}${path}`,
      headers: { accept: 'application/json', ...headers },
    };
    await this.kc.applyToHTTPSOptions(opts);
    return opts;
  }

  private send(opts: RequestOptions, body?: string): Promise<IncomingMessage> {
    const req = (this.server.protocol === 'https:' ? httpsRequest : httpRequest)(opts);
    return new Promise((resolve, reject) => {
      req.on('response', resolve);
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Sends a JSON request; resolves to the parsed body, rejects with {@link KubeApiError}. */
  async request<T = KubeObject>(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<T> {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const opts = await this.options(method, path, text === undefined ? {} : { 'content-type': contentType });
    const res = await this.send(opts, text);
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    let parsed: unknown;
    try {
      parsed = raw === '' ? {} : JSON.parse(raw);
    } catch {
      parsed = { message: raw };
    }
    if (status >= 400) {
      const s = parsed as { reason?: string; message?: string };
      throw new KubeApiError(status, s.reason ?? '', `${method} ${path}: ${status} ${s.message ?? raw}`);
    }
    return parsed as T;
  }

  /**
   * Opens a watch and calls `onEvent` per event until the server ends it, the signal aborts, or
   * an error occurs; resolves when the stream ends (rejects on a transport or HTTP error).
   */
  async watch(path: string, onEvent: (e: WatchEvent) => void, signal: AbortSignal): Promise<void> {
    const opts = await this.options('GET', path, {});
    opts.signal = signal;
    const res = await this.send(opts);
    if ((res.statusCode ?? 0) >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      let reason = '';
      try {
        reason = (JSON.parse(text) as { reason?: string }).reason ?? '';
      } catch {
        // not JSON: keep the raw text in the message
      }
      throw new KubeApiError(res.statusCode ?? 0, reason, `watch ${path}: ${res.statusCode} ${text}`);
    }
    let buffered = '';
    for await (const chunk of res) {
      buffered += (chunk as Buffer).toString('utf8');
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (line !== '') onEvent(JSON.parse(line) as WatchEvent);
        nl = buffered.indexOf('\n');
      }
    }
  }
}
