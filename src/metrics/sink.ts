/**
 * The receiving end of Envoy's metrics service stat sink (`envoy.service.metrics.v3.MetricsService`,
 * configured by the sidecar bootstrap): each sidecar streams its stats every flush interval, and
 * the few that say who called whom, how it ended and how long it took go into the
 * {@link MetricsStore}:
 *
 * | Envoy stat | series |
 * |---|---|
 * | `cluster.outbound_<port>_<ns>_<svc>.upstream_rq_<N>xx`, `.upstream_rq_time` | `out`, to `<ns>/<svc>` |
 * | `http.outbound_<port>_<ns>_<svc>.downstream_rq_<N>xx`, `.downstream_rq_time` | `apex`, to `<ns>/<svc>` |
 * | `http.inbound_<port>.downstream_rq_<N>xx`, `.downstream_rq_time` | `in` |
 *
 * The names are the stat prefixes of src/translate/names.ts (`statName`), whose parts cannot hold
 * `_` (Kubernetes names do not), so they parse back unambiguously. Counters arrive as deltas
 * (`report_counters_as_deltas`), histograms as the buckets of the last flush interval.
 *
 * Who reports is the node id of the stream's first message, `<namespace>/<pod>`. With mutual TLS
 * that claim must agree with the certificate: the pod's ServiceAccount identity has to be the one
 * the peer's certificate proves, or the stream is refused, so a workload cannot report traffic in
 * another identity's name.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  type handleClientStreamingCall,
  type ServerReadableStream,
  type ServiceDefinition,
  status,
} from '@grpc/grpc-js';
import * as protobuf from 'protobufjs';
import { protoIncludeDirs } from '../envoy/protos';
import { logger } from '../log';
import { PROMETHEUS_PROTO, PROMETHEUS_PROTO_PATH } from './prometheus-proto';
import type { MetricsStore, SeriesKey } from './store';

const log = logger('metrics');

/** The gRPC method Envoy's metrics service sink calls. */
export const STREAM_METRICS_PATH = '/envoy.service.metrics.v3.MetricsService/StreamMetrics';

/** A decoded `StreamMetricsMessage`, as far as Weft reads it. */
export interface StreamMetricsMessage {
  identifier?: { node?: { id?: string; cluster?: string } };
  envoy_metrics?: MetricFamily[];
}

interface MetricFamily {
  name?: string;
  type?: number;
  metric?: {
    counter?: { value?: number };
    gauge?: { value?: number };
    histogram?: { sample_count?: number | { toNumber(): number }; bucket?: Bucket[] };
  }[];
}

interface Bucket {
  cumulative_count?: number | { toNumber(): number };
  upper_bound?: number;
}

const COUNTER = 0;
const HISTOGRAM = 4;

let messageType: protobuf.Type | undefined;

/**
 * The `StreamMetricsMessage` type, from Envoy's own `.proto` files; the Prometheus client model it
 * imports is parsed from {@link PROMETHEUS_PROTO} and registered under its import path first, so
 * protobufjs takes it as already loaded.
 */
export function streamMetricsMessageType(): protobuf.Type {
  if (messageType) return messageType;
  const includes = protoIncludeDirs();
  const root = new protobuf.Root();
  const prometheus = `weft-builtin:${PROMETHEUS_PROTO_PATH}`;
  protobuf.parse(PROMETHEUS_PROTO, root, { keepCase: true });
  root.files.push(prometheus);
  root.resolvePath = (_origin: string, target: string): string => {
    if (target === PROMETHEUS_PROTO_PATH) return prometheus;
    for (const dir of includes) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync(['envoy/service/metrics/v3/metrics_service.proto'], { keepCase: true });
  root.resolveAll();
  messageType = root.lookupType('envoy.service.metrics.v3.StreamMetricsMessage');
  return messageType;
}

const TO_OBJECT = { longs: Number, enums: Number, defaults: false } as const;

/** Decodes one `StreamMetricsMessage`, whole. */
export function decodeStreamMetrics(b: Uint8Array): StreamMetricsMessage {
  const t = streamMetricsMessageType();
  return t.toObject(t.decode(b), TO_OBJECT) as StreamMetricsMessage;
}

/** The name (field 1) of the MetricFamily encoded in `b`, or `''`. */
function familyName(b: Uint8Array): string {
  const r = protobuf.Reader.create(b);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag >>> 3 === 1 && (tag & 7) === 2) return r.string();
    r.skipType(tag & 7);
  }
  return '';
}

/**
 * Decodes one `StreamMetricsMessage`, keeping only the metric families Weft keeps: a sidecar sends
 * every stat it has used, and decoding the few hundred others only to drop them was most of the
 * sink's CPU. A family's name is read first, and the family is skipped unread unless
 * {@link classifyStat} knows it.
 */
export function decodeKeptStats(b: Uint8Array): StreamMetricsMessage {
  const message = streamMetricsMessageType();
  const identifierType = message.fields.identifier!.resolvedType as protobuf.Type;
  const familyType = message.fields.envoy_metrics!.resolvedType as protobuf.Type;
  const r = protobuf.Reader.create(b);
  const out: StreamMetricsMessage = {};
  const families: MetricFamily[] = [];
  while (r.pos < r.len) {
    const tag = r.uint32();
    const field = tag >>> 3;
    if ((field === 1 || field === 2) && (tag & 7) === 2) {
      const len = r.uint32();
      const end = r.pos + len;
      const bytes = b.subarray(r.pos, end);
      r.pos = end;
      if (field === 1) {
        out.identifier = identifierType.toObject(identifierType.decode(bytes), TO_OBJECT) as NonNullable<
          StreamMetricsMessage['identifier']
        >;
        continue;
      }
      const name = familyName(bytes);
      if (classifyStat('', name))
        families.push(familyType.toObject(familyType.decode(bytes), TO_OBJECT) as MetricFamily);
    } else r.skipType(tag & 7);
  }
  if (families.length > 0) out.envoy_metrics = families;
  return out;
}

/** Encodes one `StreamMetricsMessage` (tests and the bench play Envoy with it). */
export function encodeStreamMetrics(m: StreamMetricsMessage): Uint8Array {
  const t = streamMetricsMessageType();
  return t.encode(t.fromObject(m)).finish();
}

/** What the sink has received since start. */
export interface SinkStats {
  /** Open streams (one per reporting sidecar). */
  streams: number;
  messages: number;
  bytes: number;
  /** Streams refused: no node id, or a node id the certificate does not prove. */
  refused: number;
}

/** Options of {@link MetricsSink}. */
export interface SinkOptions {
  store: MetricsStore;
  /**
   * Checks a stream's claimed node id (`<ns>/<pod>`) against its peer; returns why it is refused,
   * or undefined to accept. Absent: every claim is accepted (plaintext development).
   */
  verify?: (nodeId: string, call: ServerReadableStream<unknown, unknown>) => string | undefined;
  /** The clock (tests pass their own). */
  now?: () => number;
}

/** What a stat measures: latency (`..._time`), or answers of a status class (5xx are failures). */
type Measure = 'time' | 'success' | 'failure';

/**
 * The stats Weft keeps, each with the series it feeds; the last group of a pattern is the stat's
 * suffix (`time` or a status class), unless the entry says what it measures.
 */
const KEPT: readonly {
  re: RegExp;
  key: (m: RegExpExecArray, pod: string) => SeriesKey;
  measure?: Measure;
}[] = [
  {
    re: /^cluster\.outbound_\d+_([a-z0-9-]+)_([a-z0-9-]+)\.upstream_rq_(time|[1-5]xx)$/,
    key: (m, pod) => ({ kind: 'out', pod, service: `${m[1]}/${m[2]}` }),
  },
  {
    re: /^http\.outbound_\d+_([a-z0-9-]+)_([a-z0-9-]+)\.downstream_rq_(time|[1-5]xx)$/,
    key: (m, pod) => ({ kind: 'apex', pod, service: `${m[1]}/${m[2]}` }),
  },
  {
    re: /^http\.inbound_\d+\.downstream_rq_(time|[1-5]xx)$/,
    key: (_m, pod) => ({ kind: 'in', pod, service: '' }),
  },
  // Refusals of a sidecar's RBAC filters (the HTTP filter under `http.<inbound prefix>.`, the
  // network filter under its own prefix); shadow-mode `rbac.shadow_denied` refused nothing.
  {
    re: /(?:^|\.)rbac\.denied$/,
    key: (_m, pod) => ({ kind: 'denied', pod, service: '' }),
    measure: 'failure',
  },
  // An inbound match route (names.inboundMatchRoute): `vhost.inbound|<port>.route.<prefix>.`.
  {
    re: /^vhost\.inbound\|\d+\.route\.([A-Za-z0-9_-]+)\.upstream_rq_(time|[1-5]xx)$/,
    key: (m, pod) => ({ kind: 'route', pod, service: '', route: m[1]! }),
  },
  // A TrafficSplit's match route, in the caller's virtual host `<ns>/<svc>|<port>`.
  {
    re: /^vhost\.([a-z0-9-]+)\/([a-z0-9-]+)\|\d+\.route\.([A-Za-z0-9_-]+)\.upstream_rq_(time|[1-5]xx)$/,
    key: (m, pod) => ({ kind: 'splitroute', pod, service: `${m[1]}/${m[2]}`, route: m[3]! }),
  },
];

/** Which series an Envoy stat feeds, and as what; undefined for stats Weft does not keep. */
export function classifyStat(pod: string, name: string): { key: SeriesKey; what: Measure } | undefined {
  for (const k of KEPT) {
    const m = k.re.exec(name);
    if (!m) continue;
    const suffix = m[m.length - 1];
    return {
      key: k.key(m, pod),
      what: k.measure ?? (suffix === 'time' ? 'time' : suffix === '5xx' ? 'failure' : 'success'),
    };
  }
  return undefined;
}

const num = (v: number | { toNumber(): number } | undefined): number =>
  v === undefined ? 0 : typeof v === 'number' ? v : v.toNumber();

interface Delta {
  key: SeriesKey;
  success: number;
  failure: number;
  buckets?: number[];
  bounds?: number[];
}

/** Folds one message of `pod` into per-series deltas. */
export function deltasOf(pod: string, msg: StreamMetricsMessage): Delta[] {
  const out = new Map<string, Delta>();
  for (const f of msg.envoy_metrics ?? []) {
    if (!f.name || (f.type !== COUNTER && f.type !== HISTOGRAM)) continue;
    const c = classifyStat(pod, f.name);
    if (!c) continue;
    const id = `${c.key.kind}|${c.key.service}|${c.key.route ?? ''}`;
    let d = out.get(id);
    if (!d) {
      d = { key: c.key, success: 0, failure: 0 };
      out.set(id, d);
    }
    const m = f.metric?.[0];
    if (!m) continue;
    if (c.what === 'time' && f.type === HISTOGRAM && m.histogram) {
      const buckets = m.histogram.bucket ?? [];
      const bounds = buckets.map((b) => b.upper_bound ?? 0);
      const per: number[] = [];
      let prev = 0;
      for (const b of buckets) {
        const cum = num(b.cumulative_count);
        per.push(Math.max(0, cum - prev));
        prev = Math.max(prev, cum);
      }
      per.push(Math.max(0, num(m.histogram.sample_count) - prev));
      // Several stats can feed one series (a route on two ports, two inbound connection
      // managers): their histograms add up when their bounds agree, as one proxy's do.
      if (
        d.buckets &&
        d.bounds &&
        d.bounds.length === bounds.length &&
        d.bounds.every((b, i) => b === bounds[i])
      )
        for (let i = 0; i < per.length; i++) d.buckets[i]! += per[i];
      else if (!d.buckets) {
        d.buckets = per;
        d.bounds = bounds;
      }
    } else if (c.what !== 'time' && f.type === COUNTER) {
      d[c.what] += num(m.counter?.value);
    }
  }
  return [...out.values()];
}

/** See the module comment. */
export class MetricsSink {
  readonly stats: SinkStats = { streams: 0, messages: 0, bytes: 0, refused: 0 };
  /** Sees each message's bytes as they arrive (the bench replays real ones at scale). */
  tap: ((bytes: Buffer) => void) | undefined;
  private readonly now: () => number;

  constructor(private readonly o: SinkOptions) {
    this.now = o.now ?? Date.now;
  }

  /** The service definition, counting bytes as they arrive. */
  definition(): ServiceDefinition {
    return {
      StreamMetrics: {
        path: STREAM_METRICS_PATH,
        requestStream: true,
        responseStream: false,
        requestSerialize: (): Buffer => {
          throw new Error('server-side definition: requests are never serialized here');
        },
        requestDeserialize: (b: Buffer): StreamMetricsMessage => {
          this.stats.bytes += b.length;
          this.stats.messages++;
          this.tap?.(b);
          return decodeKeptStats(b);
        },
        // StreamMetricsResponse has no fields: its encoding is empty.
        responseSerialize: (): Buffer => Buffer.alloc(0),
        responseDeserialize: (): Record<string, never> => ({}),
      },
    };
  }

  /** The handler of `StreamMetrics`. */
  readonly handler: handleClientStreamingCall<StreamMetricsMessage, Record<string, never>> = (
    call,
    callback,
  ) => {
    let pod: string | undefined;
    let done = false;
    this.stats.streams++;
    const finish = (err?: { code: status; details: string }): void => {
      if (done) return;
      done = true;
      this.stats.streams--;
      if (err) callback(err);
      else callback(null, {});
    };
    call.on('data', (msg: StreamMetricsMessage) => {
      if (done) return;
      if (pod === undefined) {
        const id = msg.identifier?.node?.id ?? '';
        const refused = !/^[a-z0-9-]+\/[a-z0-9.-]+$/.test(id)
          ? `node id "${id}" is not <namespace>/<pod>`
          : this.o.verify?.(id, call as ServerReadableStream<unknown, unknown>);
        if (refused) {
          this.stats.refused++;
          log.warn('metrics stream refused', { node: id, reason: refused, peer: call.getPeer() });
          finish({ code: status.PERMISSION_DENIED, details: refused });
          return;
        }
        pod = id;
      }
      const at = this.now();
      for (const d of deltasOf(pod, msg)) this.o.store.add(d.key, at, d);
    });
    call.on('end', () => finish());
    call.on('error', () => finish());
  };
}
