/**
 * What the pod app (pod-app.ts) and its host-side client (app-client.ts) say to each other over
 * the app's stdin and stdout, one JSON object per line, and what its servers answer.
 *
 * The app's first line is a {@link AppHello} once its servers listen. Then each request line
 * gets one response line with the same `id`.
 */

/** The services the app can serve, each on a port of its own. */
export type AppProtocol = 'http1' | 'h2c' | 'grpc' | 'tcp';

/** What every server of the app answers (the TCP server: as one line). */
export interface AppAnswer {
  /** The answering pod's name: which backend served the call. */
  pod: string;
  /** What the server speaks (`http1`, `h2c`, `grpc`, `tcp`). */
  protocol: AppProtocol;
  /** HTTP: the version the request arrived with (`1.1`, `2.0`). */
  httpVersion?: string;
  /** HTTP and gRPC: the request's path. */
  path?: string;
  /**
   * HTTP and gRPC: the `x-forwarded-client-cert` header the server's sidecar set, whose `URI=`
   * is the caller's SPIFFE ID when the call arrived over mutual TLS.
   */
  xfcc?: string;
  /** TCP: the line that was sent. */
  echo?: string;
}

/** The gRPC method the app serves (JSON messages, no .proto needed). */
export const GRPC_ECHO_PATH = '/weft.pod.Echo/Get';

/** One call the app makes. `n` calls are made one after the other. */
export type AppRequest =
  | {
      op: 'http';
      /** `http1`: HTTP/1.1; `h2c`: HTTP/2 with prior knowledge, in cleartext. */
      protocol: 'http1' | 'h2c';
      host: string;
      port: number;
      path?: string;
      method?: string;
      headers?: Record<string, string>;
      n?: number;
      /**
       * Calls naming the same connection share one kept-alive connection (HTTP/1.1: one socket;
       * h2c: one session) across requests, until `close`; unnamed calls share one for the batch.
       */
      connection?: string;
      timeoutMs?: number;
    }
  | {
      op: 'grpc';
      host: string;
      port: number;
      /** The method's path (default {@link GRPC_ECHO_PATH}). */
      path?: string;
      /** Request metadata (HTTP/2 headers the sidecars see and route or authorize on). */
      metadata?: Record<string, string>;
      n?: number;
      timeoutMs?: number;
    }
  | { op: 'tcp'; host: string; port: number; message?: string; n?: number; timeoutMs?: number }
  | { op: 'close'; connection: string };

/** The outcome of one call. */
export type CallOutcome =
  | {
      ok: true;
      /** HTTP status (HTTP calls). */
      status?: number;
      /** The response body, or the TCP reply line. */
      body: string;
      /** The caller's local port (HTTP/1.1 and TCP): equal ports, same connection. */
      localPort?: number;
      /** HTTP/1.1: whether the request went on a connection opened before it. */
      reused?: boolean;
    }
  | {
      ok: false;
      /** What failed: a socket error code (`ECONNRESET`), or a gRPC status name. */
      code: string;
      message: string;
    };

/** A request line. */
export type AppRequestLine = AppRequest & { id: number };

/** A response line. */
export type AppResponseLine = { id: number; result: CallOutcome[] } | { id: number; error: string };

/** The app's first line. */
export interface AppHello {
  ready: true;
  pod: string;
  /** The ports it serves, by protocol (gRPC: the first of {@link AppHello.grpcPorts}). */
  serving: Partial<Record<AppProtocol, number>>;
  /** Every port the gRPC server listens on (`--grpc` may be given more than once). */
  grpcPorts?: number[];
}
