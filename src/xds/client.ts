/**
 * A small ADS client speaking both state-of-the-world and delta over a real gRPC stream. It is the
 * load generator of `npm run bench` (pointable at any control plane with `--target`) and the
 * delta-mode peer in tests, since proxyless gRPC clients only speak state of the world.
 */
import { EventEmitter } from 'node:events';
import { type ChannelCredentials, Client, type ClientDuplexStream, credentials } from '@grpc/grpc-js';
import { Reader, type Type } from 'protobufjs';
import { messageType } from '../envoy/protos';
import type { JsonObject } from './cache/snapshot';

/** One resource as the client holds it. */
export interface HeldResource {
  readonly name: string;
  readonly version: string;
  /** The message bytes (the Any's value). */
  readonly value: Uint8Array;
}

/** A response as seen by the client. */
export interface ReceivedResponse {
  readonly typeUrl: string;
  readonly version: string;
  readonly nonce: string;
  readonly resources: readonly HeldResource[];
  readonly removed: readonly string[];
  /** Size of the response on the wire. */
  readonly bytes: number;
}

/** Decides whether to accept a response: return an error message to NACK it. */
export type ResponseCheck = (response: ReceivedResponse) => string | undefined;

/** Options of {@link AdsClient}. */
export interface AdsClientOptions {
  /** `host:port` of the ADS server. */
  target: string;
  nodeId: string;
  cluster?: string;
  metadata?: JsonObject;
  mode: 'sotw' | 'delta';
  credentials?: ChannelCredentials;
  /** NACK responses this returns a message for (default: accept all). */
  check?: ResponseCheck;
  /** Answer responses with ACK/NACK (default true); false simulates a proxy that never answers. */
  answer?: boolean;
  /** Dial on a connection of its own instead of sharing one with other clients to the target. */
  ownConnection?: boolean;
  /** `node.user_agent_name` and `user_agent_version` (default `weft-ads-client`, no version). */
  userAgent?: { name: string; version?: string };
  /** Delta only: versions the client claims to already hold, per type. */
  initialVersions?: Record<string, Record<string, string>>;
}

const ADS = '/envoy.service.discovery.v3.AggregatedDiscoveryService';

function firstStringField(value: Uint8Array): string {
  // Listener, Cluster, RouteConfiguration, ClusterLoadAssignment and Secret all keep their
  // name in field 1, so the name is read without decoding the whole message.
  const r = Reader.create(value);
  while (r.pos < r.len) {
    const tag = r.uint32();
    if (tag === 10) return r.string();
    r.skipType(tag & 7);
  }
  return '';
}

function toStruct(json: JsonObject): JsonObject {
  const fields: JsonObject = {};
  for (const [k, v] of Object.entries(json)) fields[k] = toValue(v);
  return { fields };
}

// google.protobuf.Value comes from protobufjs's built-in well-known types, whose fields are
// camelCase (unlike the Envoy protos, loaded with their proto names): snake_case keys here were
// silently dropped, so node metadata arrived as nulls.
function toValue(v: unknown): JsonObject {
  if (v === null || v === undefined) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'boolean') return { boolValue: v };
  if (typeof v === 'string') return { stringValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
  return { structValue: toStruct(v as JsonObject) };
}

/** A real ADS client over one gRPC stream. Events: `response` (ReceivedResponse), `error`, `end`. */
export class AdsClient extends EventEmitter {
  private readonly client: Client;
  private readonly stream: ClientDuplexStream<Uint8Array, Uint8Array>;
  private readonly held = new Map<string, Map<string, HeldResource>>();
  private readonly versions = new Map<string, string>();
  private readonly nonces = new Map<string, string>();
  private readonly subscriptions = new Map<string, Set<string>>();
  private sentNode = false;
  private readonly reqType: Type;
  private readonly respType: Type;
  /** Counters for the load generator. */
  readonly stats = { responses: 0, bytes: 0, acks: 0, nacks: 0 };
  private closed = false;

  constructor(private readonly opts: AdsClientOptions) {
    super();
    const delta = opts.mode === 'delta';
    this.reqType = messageType(`envoy.service.discovery.v3.${delta ? 'Delta' : ''}DiscoveryRequest`);
    this.respType = messageType(`envoy.service.discovery.v3.${delta ? 'Delta' : ''}DiscoveryResponse`);
    this.client = new Client(opts.target, opts.credentials ?? credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      ...(opts.ownConnection ? { 'grpc.use_local_subchannel_pool': 1 } : {}),
    });
    this.stream = this.client.makeBidiStreamRequest(
      `${ADS}/${delta ? 'Delta' : 'Stream'}AggregatedResources`,
      (b: Uint8Array) => Buffer.from(b),
      (b: Buffer) => b,
    );
    this.stream.on('data', (b: Buffer) => this.onResponse(b));
    this.stream.on('error', (e: Error) => {
      if (!this.closed) this.emit('error', e);
    });
    this.stream.on('end', () => this.emit('end'));
  }

  /** Subscribes to `names` of a type (`['*']` or `[]` for wildcard on LDS/CDS). */
  subscribe(typeUrl: string, names: string[]): void {
    const set = this.subscriptions.get(typeUrl) ?? new Set<string>();
    const added = names.filter((n) => !set.has(n));
    for (const n of names) set.add(n);
    const first = !this.subscriptions.has(typeUrl);
    this.subscriptions.set(typeUrl, set);
    if (this.opts.mode === 'delta') {
      if (!first && added.length === 0) return;
      this.send({
        type_url: typeUrl,
        resource_names_subscribe: first ? names : added,
        initial_resource_versions: first ? (this.opts.initialVersions?.[typeUrl] ?? {}) : {},
      });
    } else {
      this.sendSubscription(typeUrl);
    }
  }

  /** Drops `names` from a type's subscription (a state-of-the-world list can become empty). */
  unsubscribe(typeUrl: string, names: string[]): void {
    const set = this.subscriptions.get(typeUrl);
    if (!set) return;
    for (const n of names) set.delete(n);
    if (this.opts.mode === 'delta') {
      this.send({ type_url: typeUrl, resource_names_unsubscribe: names });
    } else {
      this.sendSubscription(typeUrl);
    }
  }

  /** A state-of-the-world request carrying the type's whole subscription. */
  private sendSubscription(typeUrl: string): void {
    this.send({
      type_url: typeUrl,
      resource_names: [...(this.subscriptions.get(typeUrl) ?? [])],
      version_info: this.versions.get(typeUrl) ?? '',
      response_nonce: this.nonces.get(typeUrl) ?? '',
    });
  }

  /** Sends a raw request object (protobufjs object form); used by fault tests. */
  send(req: JsonObject): void {
    if (this.closed) return;
    const withNode = { ...req };
    if (!this.sentNode) {
      withNode.node = {
        id: this.opts.nodeId,
        cluster: this.opts.cluster ?? '',
        metadata: toStruct(this.opts.metadata ?? {}),
        user_agent_name: this.opts.userAgent?.name ?? 'weft-ads-client',
        ...(this.opts.userAgent?.version ? { user_agent_version: this.opts.userAgent.version } : {}),
      };
      this.sentNode = true;
    }
    this.stream.write(this.reqType.encode(this.reqType.fromObject(withNode)).finish());
  }

  /** Resources currently held for a type. */
  resources(typeUrl: string): ReadonlyMap<string, HeldResource> {
    return this.held.get(typeUrl) ?? new Map();
  }

  /** Last accepted version of a type (SotW) or system version (delta). */
  version(typeUrl: string): string | undefined {
    return this.versions.get(typeUrl);
  }

  /** Decodes a held resource to a protobufjs object (for assertions). */
  decoded(typeUrl: string, name: string): JsonObject | undefined {
    const r = this.resources(typeUrl).get(name);
    if (!r) return undefined;
    const t = messageType(typeUrl.slice(typeUrl.lastIndexOf('/') + 1));
    return t.toObject(t.decode(r.value), { longs: String, enums: String, defaults: false }) as JsonObject;
  }

  /** Resolves when `pred` holds after some response, or rejects after `timeoutMs`. */
  waitFor(pred: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('response', check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const check = (): void => {
        if (pred()) {
          clearTimeout(timer);
          this.off('response', check);
          resolve();
        }
      };
      this.on('response', check);
    });
  }

  private onResponse(buf: Buffer): void {
    const delta = this.opts.mode === 'delta';
    const msg = this.respType.toObject(this.respType.decode(buf), { longs: String, arrays: true }) as {
      version_info?: string;
      system_version_info?: string;
      type_url?: string;
      nonce?: string;
      resources?: {
        type_url?: string;
        value?: Uint8Array;
        name?: string;
        version?: string;
        resource?: { value?: Uint8Array };
      }[];
      removed_resources?: string[];
    };
    const typeUrl = msg.type_url ?? '';
    const resources: HeldResource[] = (msg.resources ?? []).map((r) => {
      if (delta) {
        const value = r.resource?.value ?? new Uint8Array();
        return { name: r.name ?? firstStringField(value), version: r.version ?? '', value };
      }
      const value = r.value ?? new Uint8Array();
      return { name: firstStringField(value), version: msg.version_info ?? '', value };
    });
    const response: ReceivedResponse = {
      typeUrl,
      version: (delta ? msg.system_version_info : msg.version_info) ?? '',
      nonce: msg.nonce ?? '',
      resources,
      removed: msg.removed_resources ?? [],
      bytes: buf.length,
    };
    this.stats.responses++;
    this.stats.bytes += buf.length;
    const error = this.opts.check?.(response);
    if (error === undefined) {
      let map = this.held.get(typeUrl);
      if (!map || !delta) map = new Map();
      for (const r of resources) map.set(r.name, r);
      for (const n of response.removed) map.delete(n);
      this.held.set(typeUrl, map);
      this.versions.set(typeUrl, response.version);
      this.stats.acks++;
    } else {
      this.stats.nacks++;
    }
    this.nonces.set(typeUrl, response.nonce);
    if (this.opts.answer === false) {
      this.emit('response', response);
      return;
    }
    const errorDetail = error === undefined ? undefined : { code: 3, message: error };
    if (delta) {
      this.send({ type_url: typeUrl, response_nonce: response.nonce, error_detail: errorDetail });
    } else {
      this.send({
        type_url: typeUrl,
        resource_names: [...(this.subscriptions.get(typeUrl) ?? [])],
        version_info: this.versions.get(typeUrl) ?? '',
        response_nonce: response.nonce,
        error_detail: errorDetail,
      });
    }
    this.emit('response', response);
  }

  /** Stops reading responses (the transport's flow control then pushes back on the server). */
  pause(): void {
    this.stream.pause();
  }

  /** Resumes reading responses. */
  resume(): void {
    this.stream.resume();
  }

  /** Closes the stream and the channel. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stream.cancel();
    this.client.close();
  }
}
