/**
 * The app of a test pod: small servers that answer with the pod's name, and a caller that makes
 * calls from inside the pod on command. It runs as the application container (root, not the
 * sidecars' uid), so its outgoing calls are captured and go through the pod's Envoy, and its
 * servers are reached through Envoy's inbound listener.
 *
 * `node pod-app.js [--name POD] [--http1 PORT] [--h2c PORT] [--grpc PORT]... [--grpc-path PATH]...
 *  [--tcp PORT]`
 * - `--http1`: HTTP/1.1 (node:http), `--h2c`: HTTP/2 cleartext with prior knowledge only (no
 *   HTTP/1.1 fallback, so a proxy that downgrades is seen), `--grpc`: plain @grpc/grpc-js without
 *   xDS (the sidecar does the mesh) on every `--grpc` port, serving {@link GRPC_ECHO_PATH} and each
 *   `--grpc-path` (`/<service>/<method>`, so a suite can call the method names its policies
 *   match), `--tcp`: a line echo. Each listens on 0.0.0.0 and answers an
 *   {@link AppAnswer}. The name defaults to `$HOSTNAME`, which the pod host sets to the pod's.
 * - Commands arrive on stdin and answers leave on stdout, one JSON line each (app-protocol.ts);
 *   logs go to stderr.
 */
import { createServer as createHttpServer, Agent as HttpAgent, request as httpRequest } from 'node:http';
import { type ClientHttp2Session, createServer as createH2Server, connect as h2connect } from 'node:http2';
import { createServer as createTcpServer, connect as netConnect } from 'node:net';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import {
  Client as GrpcClient,
  Server as GrpcServer,
  credentials as grpcCredentials,
  status as grpcStatus,
  Metadata,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceError,
  type sendUnaryData,
} from '@grpc/grpc-js';
import {
  type AppAnswer,
  type AppHello,
  type AppProtocol,
  type AppRequest,
  type AppRequestLine,
  type AppResponseLine,
  type CallOutcome,
  GRPC_ECHO_PATH,
} from './app-protocol';

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const unjson = (b: Buffer): unknown => JSON.parse(b.toString() || 'null');

function fail(err: unknown): CallOutcome {
  const e = err as { code?: string | number; message?: string; details?: string } | null;
  if (typeof e?.code === 'number') {
    const name = (grpcStatus as unknown as Record<number, string>)[e.code] ?? String(e.code);
    return { ok: false, code: name, message: e.details ?? e.message ?? '' };
  }
  return { ok: false, code: e?.code ?? 'ERROR', message: e?.message ?? String(err) };
}

function listen(
  server: {
    listen(port: number, host: string, cb: () => void): unknown;
    once(e: 'error', f: (err: Error) => void): unknown;
  },
  port: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '0.0.0.0', resolve);
  });
}

/**
 * What a request asks of the HTTP/1.1 server in its query: `status=<code>` answers with that code,
 * `delayMs=<ms>` answers that much later (at most 10 s), so tests know each call's outcome and
 * latency in advance.
 */
function asked(url: string | undefined): { code: number; delayMs: number } {
  const q = new URL(url ?? '/', 'http://pod').searchParams;
  const code = Number(q.get('status') ?? 200);
  const delayMs = Number(q.get('delayMs') ?? 0);
  return {
    code: Number.isInteger(code) && code >= 200 && code <= 599 ? code : 200,
    delayMs: Number.isFinite(delayMs) ? Math.min(Math.max(0, delayMs), 10_000) : 0,
  };
}

async function serve(
  pod: string,
  ports: Partial<Record<AppProtocol, number>>,
  grpc: { ports: readonly number[]; paths: readonly string[] },
): Promise<void> {
  if (ports.http1 !== undefined) {
    const s = createHttpServer((req, res) => {
      const answer: AppAnswer = {
        pod,
        protocol: 'http1',
        httpVersion: req.httpVersion,
        ...(req.url ? { path: req.url } : {}),
        ...(typeof req.headers['x-forwarded-client-cert'] === 'string'
          ? { xfcc: req.headers['x-forwarded-client-cert'] }
          : {}),
      };
      req.resume();
      const { code, delayMs } = asked(req.url);
      setTimeout(() => {
        res.writeHead(code, { 'content-type': 'application/json' });
        res.end(JSON.stringify(answer));
      }, delayMs);
    });
    await listen(s, ports.http1);
  }
  if (ports.h2c !== undefined) {
    const s = createH2Server((req, res) => {
      const xfcc = req.headers['x-forwarded-client-cert'];
      const answer: AppAnswer = {
        pod,
        protocol: 'h2c',
        httpVersion: req.httpVersion,
        path: req.url,
        ...(typeof xfcc === 'string' ? { xfcc } : {}),
      };
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer));
    });
    await listen(s, ports.h2c);
  }
  if (grpc.ports.length > 0) {
    const server = new GrpcServer();
    const answer = (call: ServerUnaryCall<unknown, AppAnswer>, done: sendUnaryData<AppAnswer>): void => {
      const xfcc = call.metadata.get('x-forwarded-client-cert')[0];
      done(null, {
        pod,
        protocol: 'grpc',
        path: call.getPath(),
        ...(typeof xfcc === 'string' ? { xfcc } : {}),
      });
    };
    // One service definition per gRPC service name, each method answering the same way.
    const services = new Map<string, Record<string, string>>();
    for (const path of new Set([GRPC_ECHO_PATH, ...grpc.paths])) {
      const m = /^\/([^/]+)\/([^/]+)$/.exec(path);
      if (!m) throw new Error(`--grpc-path ${path}: must be /<service>/<method>`);
      const methods = services.get(m[1]!) ?? {};
      methods[m[2]!] = path;
      services.set(m[1]!, methods);
    }
    for (const methods of services.values()) {
      const definition: Record<string, unknown> = {};
      const handlers: Record<string, typeof answer> = {};
      for (const [method, path] of Object.entries(methods)) {
        definition[method] = {
          path,
          requestStream: false,
          responseStream: false,
          requestSerialize: json,
          requestDeserialize: unjson,
          responseSerialize: json,
          responseDeserialize: unjson,
        };
        handlers[method] = answer;
      }
      server.addService(definition as Parameters<GrpcServer['addService']>[0], handlers);
    }
    for (const port of grpc.ports) {
      await new Promise<void>((resolve, reject) =>
        server.bindAsync(`0.0.0.0:${port}`, ServerCredentials.createInsecure(), (err) =>
          err ? reject(err) : resolve(),
        ),
      );
    }
  }
  if (ports.tcp !== undefined) {
    const s = createTcpServer((sock) => {
      let buf = '';
      sock.on('data', (d: Buffer) => {
        buf += d.toString();
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          const answer: AppAnswer = { pod, protocol: 'tcp', echo: buf.slice(0, i) };
          buf = buf.slice(i + 1);
          sock.write(`${JSON.stringify(answer)}\n`);
        }
      });
      sock.on('error', () => undefined);
    });
    await listen(s, ports.tcp);
  }
}

/** The caller: kept-alive connections by name, and one function per kind of call. */
class Caller {
  private readonly agents = new Map<string, HttpAgent>();
  private readonly sessions = new Map<string, ClientHttp2Session>();

  async handle(r: AppRequest): Promise<CallOutcome[]> {
    if (r.op === 'close') {
      this.agents.get(r.connection)?.destroy();
      this.agents.delete(r.connection);
      this.sessions.get(r.connection)?.close();
      this.sessions.delete(r.connection);
      return [];
    }
    const n = r.n ?? 1;
    const out: CallOutcome[] = [];
    if (r.op === 'http' && r.protocol === 'http1') {
      const named = r.connection !== undefined;
      const agent =
        (named && this.agents.get(r.connection!)) || new HttpAgent({ keepAlive: true, maxSockets: 1 });
      if (named) this.agents.set(r.connection!, agent);
      for (let i = 0; i < n; i++) out.push(await this.http1(r, agent));
      if (!named) agent.destroy();
    } else if (r.op === 'http') {
      const named = r.connection !== undefined;
      let session = named ? this.sessions.get(r.connection!) : undefined;
      if (!session || session.closed || session.destroyed) {
        session = h2connect(`http://${r.host}:${r.port}`);
        session.on('error', () => undefined);
        if (named) this.sessions.set(r.connection!, session);
      }
      for (let i = 0; i < n; i++) out.push(await this.h2c(r, session));
      if (!named) session.close();
    } else if (r.op === 'grpc') {
      const client = new GrpcClient(`${r.host}:${r.port}`, grpcCredentials.createInsecure());
      for (let i = 0; i < n; i++)
        out.push(await this.grpc(client, r.path ?? GRPC_ECHO_PATH, r.metadata ?? {}, r.timeoutMs ?? 5000));
      client.close();
    } else {
      for (let i = 0; i < n; i++)
        out.push(await this.tcp(r.host, r.port, r.message ?? 'ping', r.timeoutMs ?? 5000));
    }
    return out;
  }

  private http1(r: Extract<AppRequest, { op: 'http' }>, agent: HttpAgent): Promise<CallOutcome> {
    return new Promise((resolve) => {
      const req = httpRequest(
        {
          host: r.host,
          port: r.port,
          path: r.path ?? '/',
          method: r.method ?? 'GET',
          headers: r.headers ?? {},
          agent,
          timeout: r.timeoutMs ?? 5000,
        },
        (res) => {
          let body = '';
          res.on('data', (d: Buffer) => {
            body += d.toString();
          });
          res.on('end', () =>
            resolve({
              ok: true,
              status: res.statusCode ?? 0,
              body,
              ...(res.socket?.localPort !== undefined ? { localPort: res.socket.localPort } : {}),
              reused: req.reusedSocket,
            }),
          );
          res.on('error', (err) => resolve(fail(err)));
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err) => resolve(fail(err)));
      req.end();
    });
  }

  private h2c(r: Extract<AppRequest, { op: 'http' }>, session: ClientHttp2Session): Promise<CallOutcome> {
    return new Promise((resolve) => {
      let req: ReturnType<ClientHttp2Session['request']>;
      try {
        req = session.request({ ':path': r.path ?? '/', ':method': r.method ?? 'GET', ...(r.headers ?? {}) });
      } catch (err) {
        resolve(fail(err));
        return;
      }
      req.setTimeout(r.timeoutMs ?? 5000, () =>
        req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
      );
      let status = 0;
      let body = '';
      req.on('response', (h) => {
        status = Number(h[':status'] ?? 0);
      });
      req.on('data', (d: Buffer) => {
        body += d.toString();
      });
      req.on('end', () => resolve({ ok: true, status, body }));
      req.on('error', (err) => resolve(fail(err)));
      req.end();
    });
  }

  private grpc(
    client: GrpcClient,
    path: string,
    headers: Record<string, string>,
    timeoutMs: number,
  ): Promise<CallOutcome> {
    const metadata = new Metadata();
    for (const [k, v] of Object.entries(headers)) metadata.set(k, v);
    return new Promise((resolve) => {
      client.makeUnaryRequest(
        path,
        json,
        unjson,
        {},
        metadata,
        { deadline: Date.now() + timeoutMs },
        (err: ServiceError | null, value?: unknown) =>
          resolve(err ? fail(err) : { ok: true, body: JSON.stringify(value) }),
      );
    });
  }

  private tcp(host: string, port: number, message: string, timeoutMs: number): Promise<CallOutcome> {
    return new Promise((resolve) => {
      const sock = netConnect(port, host);
      let buf = '';
      let settled = false;
      const settle = (o: CallOutcome): void => {
        if (settled) return;
        settled = true;
        sock.destroy();
        resolve(o);
      };
      sock.setTimeout(timeoutMs, () => settle({ ok: false, code: 'ETIMEDOUT', message: 'timed out' }));
      sock.on('connect', () => sock.write(`${message}\n`));
      sock.on('data', (d: Buffer) => {
        buf += d.toString();
        const i = buf.indexOf('\n');
        if (i >= 0) settle({ ok: true, body: buf.slice(0, i), localPort: sock.localPort ?? 0 });
      });
      sock.on('error', (err) => settle(fail(err)));
      sock.on('close', () =>
        settle({ ok: false, code: 'ECONNRESET', message: `connection closed before a reply (got "${buf}")` }),
      );
    });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      name: { type: 'string' },
      http1: { type: 'string' },
      h2c: { type: 'string' },
      grpc: { type: 'string', multiple: true },
      'grpc-path': { type: 'string', multiple: true },
      tcp: { type: 'string' },
    },
  });
  const pod = values.name ?? process.env.HOSTNAME ?? 'unknown';
  const serving: Partial<Record<AppProtocol, number>> = {};
  for (const p of ['http1', 'h2c', 'tcp'] as const)
    if (values[p] !== undefined) serving[p] = Number(values[p]);
  const grpcPorts = (values.grpc ?? []).map(Number);
  if (grpcPorts[0] !== undefined) serving.grpc = grpcPorts[0];
  await serve(pod, serving, { ports: grpcPorts, paths: values['grpc-path'] ?? [] });
  const caller = new Caller();
  const write = (v: AppResponseLine | AppHello): void => {
    process.stdout.write(`${JSON.stringify(v)}\n`);
  };
  write({ ready: true, pod, serving, ...(grpcPorts.length > 0 ? { grpcPorts } : {}) });
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    let r: AppRequestLine;
    try {
      r = JSON.parse(line) as AppRequestLine;
    } catch {
      process.stderr.write(`pod-app: not JSON: ${line}\n`);
      return;
    }
    caller.handle(r).then(
      (result) => write({ id: r.id, result }),
      (err: unknown) => write({ id: r.id, error: err instanceof Error ? err.message : String(err) }),
    );
  });
  // The host closing stdin is the end of the pod.
  lines.on('close', () => process.exit(0));
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`pod-app: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
