/**
 * Immutable per-group snapshots of xDS resources. Every resource is encoded to protobuf once,
 * when it first appears, and its bytes (as a `google.protobuf.Any` and as a delta `Resource`) are
 * shared by every snapshot and every stream that sends it: the cost of a push does not grow with
 * the number of connected proxies.
 */
import { createHash } from 'node:crypto';
import { Writer } from 'protobufjs';
import {
  CLUSTER,
  ENDPOINT,
  LISTENER,
  PUSH_ORDER,
  type ResourceTypeUrl,
  ROUTE,
  SECRET,
} from '../resource-types';

/** A JSON object in canonical proto3 JSON form (proto field names). */
export type JsonObject = { [key: string]: unknown };

/** Turns a resource's canonical JSON into its protobuf bytes; throws on invalid input. */
export type Encoder = (typeUrl: ResourceTypeUrl, json: JsonObject) => Uint8Array;

/** One resource, encoded once and shared. */
export interface EncodedResource {
  /** The resource name (`name`, or `cluster_name` for a ClusterLoadAssignment). */
  readonly name: string;
  /** Its type URL. */
  readonly typeUrl: ResourceTypeUrl;
  /** Content hash of the resource: equal content, equal version. */
  readonly version: string;
  /** The canonical JSON it was encoded from (read-only by contract; used by CSDS and debug views). */
  readonly json: JsonObject;
  /** Bytes of a `google.protobuf.Any` wrapping the message. */
  readonly any: Uint8Array;
  /** Bytes of an `envoy.service.discovery.v3.Resource` (name, version, Any) for delta streams. */
  readonly deltaResource: Uint8Array;
}

/** The resources of one type in a snapshot. */
export interface TypeSnapshot {
  /** Hash over every (name, version) pair, sorted by name. */
  readonly version: string;
  /** Resources by name, in name order. */
  readonly resources: ReadonlyMap<string, EncodedResource>;
}

/** Resource JSON per type, the input to {@link ResourceEncoder.snapshot}. */
export type SnapshotInput = Partial<Record<ResourceTypeUrl, readonly JsonObject[]>>;

/** Name of a resource as xDS addresses it. */
export function resourceName(typeUrl: ResourceTypeUrl, json: JsonObject): string {
  const key = typeUrl === ENDPOINT ? 'cluster_name' : 'name';
  const name = json[key];
  if (typeof name !== 'string' || name === '') {
    throw new Error(`${typeUrl}: resource without a ${key}`);
  }
  return name;
}

/** Short content hash used for versions. */
export function contentHash(...parts: string[]): string {
  const h = createHash('sha256');
  for (const p of parts) h.update(p).update('\0');
  return h.digest('base64url').slice(0, 16);
}

/** An immutable set of resources for one proxy group. */
export class Snapshot {
  /** Hash over all types' versions; equal snapshots have equal versions. */
  readonly version: string;

  constructor(readonly types: Readonly<Record<ResourceTypeUrl, TypeSnapshot>>) {
    this.version = contentHash(...PUSH_ORDER.map((t) => types[t].version));
  }

  /** The resources of one type. */
  of(typeUrl: ResourceTypeUrl): TypeSnapshot {
    return this.types[typeUrl];
  }

  /** Number of resources across all types. */
  get size(): number {
    return PUSH_ORDER.reduce((n, t) => n + this.types[t].resources.size, 0);
  }
}

function anyBytes(typeUrl: string, value: Uint8Array): Uint8Array {
  return Writer.create().uint32(10).string(typeUrl).uint32(18).bytes(value).finish();
}

function deltaResourceBytes(name: string, version: string, any: Uint8Array): Uint8Array {
  // envoy.service.discovery.v3.Resource: version = 1, resource = 2, name = 3.
  return Writer.create().uint32(10).string(version).uint32(18).bytes(any).uint32(26).string(name).finish();
}

/**
 * Builds snapshots, encoding each distinct resource once. Encoded resources are interned by
 * content so that identical resources in many groups share one copy; the intern table holds them
 * weakly, so a resource no snapshot uses any more is collected.
 */
export class ResourceEncoder {
  private readonly interned = new Map<string, WeakRef<EncodedResource>>();
  private readonly registry = new FinalizationRegistry<string>((key) => {
    const ref = this.interned.get(key);
    if (ref && ref.deref() === undefined) this.interned.delete(key);
  });
  private encodeCount = 0;

  constructor(private readonly encoder: Encoder) {}

  /** How many resources have been encoded so far (a cache hit does not count). */
  get encodes(): number {
    return this.encodeCount;
  }

  /** Encodes (or reuses) one resource. */
  resource(typeUrl: ResourceTypeUrl, json: JsonObject): EncodedResource {
    const text = JSON.stringify(json);
    const key = contentHash(typeUrl, text);
    return this.interned.get(key)?.deref() ?? this.intern(typeUrl, json, key, this.encoder(typeUrl, json));
  }

  /**
   * Encodes every resource of `input` that is not interned yet with `encode` (which must give
   * the bytes this encoder would, from the JSON text), so that a {@link snapshot} of `input` right
   * after finds them all. The caller holds the returned list until then: interned encodings are
   * only weakly kept.
   */
  async encodeAhead(
    input: SnapshotInput,
    encode: (typeUrl: ResourceTypeUrl, text: string) => Promise<Uint8Array>,
  ): Promise<EncodedResource[]> {
    const held: EncodedResource[] = [];
    for (const typeUrl of PUSH_ORDER)
      for (const json of input[typeUrl] ?? []) {
        const text = JSON.stringify(json);
        const key = contentHash(typeUrl, text);
        const hit = this.interned.get(key)?.deref();
        if (hit) {
          held.push(hit);
          continue;
        }
        const value = await encode(typeUrl, text);
        // Another caller may have interned the same content while this one waited.
        held.push(this.interned.get(key)?.deref() ?? this.intern(typeUrl, json, key, value));
      }
    return held;
  }

  private intern(
    typeUrl: ResourceTypeUrl,
    json: JsonObject,
    key: string,
    value: Uint8Array,
  ): EncodedResource {
    this.encodeCount++;
    const name = resourceName(typeUrl, json);
    const any = anyBytes(typeUrl, value);
    const encoded: EncodedResource = {
      name,
      typeUrl,
      version: key,
      json,
      any,
      deltaResource: deltaResourceBytes(name, key, any),
    };
    this.interned.set(key, new WeakRef(encoded));
    this.registry.register(encoded, key);
    return encoded;
  }

  /** Builds an immutable snapshot; duplicate names within one type are a programming error. */
  snapshot(input: SnapshotInput): Snapshot {
    const types = {} as Record<ResourceTypeUrl, TypeSnapshot>;
    for (const typeUrl of PUSH_ORDER) {
      const list = (input[typeUrl] ?? []).map((json) => this.resource(typeUrl, json));
      list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      const resources = new Map<string, EncodedResource>();
      for (const r of list) {
        if (resources.has(r.name)) throw new Error(`duplicate ${typeUrl} resource named "${r.name}"`);
        resources.set(r.name, r);
      }
      types[typeUrl] = { version: typeVersion(list), resources };
    }
    return new Snapshot(types);
  }
}

function typeVersion(sorted: readonly EncodedResource[]): string {
  if (sorted.length === 0) return 'empty';
  const h = createHash('sha256');
  for (const r of sorted) h.update(r.name).update('\0').update(r.version).update('\n');
  return h.digest('base64url').slice(0, 16);
}

/** Version of the subset `names` of a type snapshot: what a named SotW subscription was sent. */
export function subsetVersion(type: TypeSnapshot, names: Iterable<string>): string {
  const picked: EncodedResource[] = [];
  for (const n of names) {
    const r = type.resources.get(n);
    if (r) picked.push(r);
  }
  picked.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return typeVersion(picked);
}

/** All five type URLs, re-exported for callers that build snapshots. */
export const ALL_TYPES: readonly ResourceTypeUrl[] = [LISTENER, ROUTE, CLUSTER, ENDPOINT, SECRET];
