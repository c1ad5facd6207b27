/**
 * The caller's control endpoint: a small HTTP server inside a caller workload through which a
 * conformance driver outside the mesh makes real calls from inside it. The driver never calls
 * the echo service itself: the caller's xDS client (its bootstrap, its certificate) does, so
 * routing, splits and RBAC see the caller's identity.
 *
 * - `POST /call` with a {@link CallRequest}: makes `n` calls through xDS, a few at a time, and
 *   answers the outcomes (each the answering backend, or the gRPC status code name it failed with).
 * - `DELETE /channel/<name>`: closes the channel of that name (the next call opens a new one, as a
 *   newly started caller would).
 * - `GET /healthz`: 200 once the endpoint listens (drivers wait for it).
 *
 * The echo image (`e2e/cluster/workload.ts`) runs this in each caller pod; the cluster driver's
 * tests run the same function in process.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type ChannelCredentials, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import { z } from 'zod';
import { ECHO_METHODS, EchoClient } from './echo';

/** The body of `POST /call`. */
export const callRequestSchema = z
  .object({
    service: z.string().min(1),
    port: z.number().int().min(1).max(65535),
    method: z.enum(ECHO_METHODS).default('Get'),
    headers: z.record(z.string(), z.string()).default({}),
    n: z.number().int().min(1).max(10_000),
    /** Deadline of each call in ms. */
    deadlineMs: z.number().int().min(1).max(120_000).default(1500),
    /** Calls with the same channel share one xDS client; a new name opens a new one. */
    channel: z.string().min(1),
    /** Calls in flight at once. */
    concurrency: z.number().int().min(1).max(100).default(10),
  })
  .strict();

/** A call request as a driver sends it (defaults filled in by the endpoint). */
export type CallRequest = z.input<typeof callRequestSchema>;

/** One call's outcome on the wire (the shape of the conformance runner's `CallOutcome`). */
export const callOutcomeSchema = z.union([
  z.object({ ok: z.literal(true), backend: z.string() }),
  z.object({ ok: z.literal(false), code: z.string(), message: z.string() }),
]);

/** The answer of `POST /call`: one outcome per call, in order. */
export const callResponseSchema = z.array(callOutcomeSchema);

/** One call outcome. */
export type WireOutcome = z.infer<typeof callOutcomeSchema>;

/** The gRPC status code name of a numeric code (`PERMISSION_DENIED`, ...). */
export function grpcCodeName(code: number | undefined): string {
  if (code === undefined) return 'UNKNOWN';
  return (grpcStatus as unknown as Record<number, string>)[code] ?? String(code);
}

/** Options of {@link startCallerControl}. */
export interface CallerControlOptions {
  /**
   * The caller's xDS bootstrap (node id `<namespace>/<pod>`). Absent: plain gRPC to
   * `<service>.<namespace>:<port>` by DNS, for a pod whose Envoy sidecar captures the call and
   * does the routing, splitting and mTLS.
   */
  bootstrap?: Record<string, unknown>;
  /** Namespace of the services called (`xds:///<service>.<namespace>:<port>`). */
  namespace: string;
  /** Channel credentials of the xDS clients (with mTLS: grpc-js-xds's XdsChannelCredentials). */
  credentials?: ChannelCredentials;
  /** `host:port` to listen on; port 0 picks a free one. */
  listen: string;
}

/** A running control endpoint. */
export interface CallerControl {
  /** `http://host:port`. */
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

function reply(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.on('data', (b: Buffer) => {
      body += b.toString();
    });
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}

/** Starts the control endpoint; resolves once it listens. */
export async function startCallerControl(o: CallerControlOptions): Promise<CallerControl> {
  const channels = new Map<string, EchoClient>();
  const clientFor = (channel: string, service: string, port: number): EchoClient => {
    const key = `${channel}|${service}:${port}`;
    let c = channels.get(key);
    if (!c) {
      c = o.bootstrap
        ? new EchoClient(`xds:///${service}.${o.namespace}:${port}`, o.bootstrap, o.credentials)
        : new EchoClient(`${service}.${o.namespace}:${port}`);
      channels.set(key, c);
    }
    return c;
  };
  const handleCall = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let parsed: z.infer<typeof callRequestSchema>;
    try {
      const r = callRequestSchema.safeParse(JSON.parse(await readBody(req)));
      if (!r.success) return reply(res, 400, { error: z.prettifyError(r.error) });
      parsed = r.data;
    } catch (err) {
      return reply(res, 400, { error: `not JSON: ${(err as Error).message}` });
    }
    const c = parsed;
    const client = clientFor(c.channel, c.service, c.port);
    const one = async (): Promise<WireOutcome> => {
      try {
        return { ok: true, backend: (await client.call(c.method, c.headers, c.deadlineMs)).backend };
      } catch (err) {
        const e = err as Partial<ServiceError> | null;
        return { ok: false, code: grpcCodeName(e?.code), message: e?.details ?? String(err) };
      }
    };
    const out: WireOutcome[] = [];
    for (let i = 0; i < c.n; i += c.concurrency) {
      out.push(...(await Promise.all(Array.from({ length: Math.min(c.concurrency, c.n - i) }, one))));
    }
    reply(res, 200, out);
  };
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') return reply(res, 200, { status: 'ok' });
    if (req.method === 'DELETE' && req.url?.startsWith('/channel/')) {
      const name = decodeURIComponent(req.url.slice('/channel/'.length));
      for (const [k, c] of channels) {
        if (!k.startsWith(`${name}|`)) continue;
        c.close();
        channels.delete(k);
      }
      return reply(res, 200, {});
    }
    if (req.method === 'POST' && req.url === '/call') {
      handleCall(req, res).catch((err: unknown) => reply(res, 500, { error: String(err) }));
      return;
    }
    reply(res, 404, { error: 'POST /call, DELETE /channel/<name> or GET /healthz' });
  });
  const i = o.listen.lastIndexOf(':');
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(o.listen.slice(i + 1)), o.listen.slice(0, i).replace(/^\[|\]$/g, ''), () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = o.listen.slice(0, i);
  return {
    url: `http://${host === '0.0.0.0' || host === '' ? '127.0.0.1' : host}:${port}`,
    port,
    stop: async () => {
      for (const c of channels.values()) c.close();
      channels.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
