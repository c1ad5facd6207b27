/**
 * A proto-aware merge of canonical JSON, the way users expect to "overlay" Envoy config:
 * - messages merge field by field, recursing into `Any` payloads (`typed_config`) when the `@type`
 *   is the same (a different `@type` replaces the payload);
 * - repeated messages that have a `name` field (filters, HTTP filters, virtual hosts, routes,
 *   filter chains, clusters) merge by name: an entry with a known name is merged into it, a new
 *   name is appended; other repeated fields are replaced whole;
 * - maps merge by key; scalars, enums and well-known types (Duration, wrappers, Struct) replace;
 * - setting one member of a oneof removes its siblings from the base (so `route.weighted_clusters`
 *   replaces `route.cluster`).
 * Unknown fields are errors with their path. Pure: inputs are not mutated.
 */
import { Enum, type Field, type Type } from 'protobufjs';
import { envoyRoot } from '../envoy/protos';

type Json = unknown;
type JsonObject = { [k: string]: Json };

/** A merge that cannot apply, with the field path. */
export class MergeError extends Error {
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path || '(root)'}: ${message}`);
    this.name = 'MergeError';
  }
}

function isObject(v: Json): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function fieldOf(t: Type, key: string): Field | undefined {
  return t.fields[key] ?? t.fieldsArray.find((f) => camel(f.name) === key);
}

function lookupType(fullName: string): Type | undefined {
  try {
    return envoyRoot().lookupType(fullName);
  } catch {
    return undefined;
  }
}

const REPLACE_WHOLE = new Set([
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.FieldMask',
  'google.protobuf.DoubleValue',
  'google.protobuf.FloatValue',
  'google.protobuf.Int64Value',
  'google.protobuf.UInt64Value',
  'google.protobuf.Int32Value',
  'google.protobuf.UInt32Value',
  'google.protobuf.BoolValue',
  'google.protobuf.StringValue',
  'google.protobuf.BytesValue',
]);

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

function mergeAny(base: Json, patch: Json, path: string): Json {
  if (!isObject(patch)) throw new MergeError(path, 'expected an object with "@type"');
  if (!isObject(base)) return patch;
  const url = patch['@type'] ?? base['@type'];
  if (typeof url !== 'string') throw new MergeError(path, 'an Any needs "@type"');
  if (patch['@type'] !== undefined && patch['@type'] !== base['@type']) return patch;
  const inner = lookupType(url.slice(url.lastIndexOf('/') + 1));
  if (!inner) throw new MergeError(join(path, '@type'), `unknown type "${url}"`);
  const { '@type': _b, ...baseBody } = base;
  const { '@type': _p, ...patchBody } = patch;
  return { '@type': url, ...(mergeMessage(inner, baseBody, patchBody, path) as JsonObject) };
}

function mergeValue(f: Field, base: Json, patch: Json, path: string): Json {
  const rt = f.resolvedType;
  if (!rt || rt instanceof Enum) return patch;
  const name = rt.fullName.replace(/^\./, '');
  if (REPLACE_WHOLE.has(name)) return patch;
  if (name === 'google.protobuf.Any') return mergeAny(base, patch, path);
  return mergeMessage(rt as Type, base, patch, path);
}

/** Merges `patch` into `base`, both canonical JSON of message type `t`. */
export function mergeMessage(t: Type, base: Json, patch: Json, path = ''): Json {
  if (!isObject(patch)) throw new MergeError(path, `expected an object for ${t.name}`);
  const out: JsonObject = isObject(base) ? { ...base } : {};
  for (const [key, pv] of Object.entries(patch)) {
    const f = fieldOf(t, key);
    const p = join(path, key);
    if (!f) throw new MergeError(p, `unknown field "${key}" in ${t.fullName.replace(/^\./, '')}`);
    if (f.partOf && f.partOf.oneof.length > 1) {
      for (const sibling of f.partOf.oneof) {
        if (sibling !== f.name) {
          delete out[sibling];
          delete out[camel(sibling)];
        }
      }
    }
    const bv = out[f.name] ?? out[camel(f.name)];
    if (camel(f.name) !== f.name) delete out[camel(f.name)];
    if (pv === null) {
      delete out[f.name];
      continue;
    }
    if (f.map) {
      if (!isObject(pv)) throw new MergeError(p, 'expected an object (map)');
      const merged: JsonObject = isObject(bv) ? { ...bv } : {};
      for (const [k, v] of Object.entries(pv))
        merged[k] = merged[k] === undefined ? v : mergeValue(f, merged[k], v, `${p}["${k}"]`);
      out[f.name] = merged;
    } else if (f.repeated) {
      if (!Array.isArray(pv)) throw new MergeError(p, 'expected an array');
      out[f.name] = mergeRepeated(f, Array.isArray(bv) ? bv : [], pv, p);
    } else {
      out[f.name] = bv === undefined ? pv : mergeValue(f, bv, pv, p);
    }
  }
  return out;
}

function mergeRepeated(f: Field, base: Json[], patch: Json[], path: string): Json[] {
  const rt = f.resolvedType;
  const keyed = rt && !(rt instanceof Enum) && (rt as Type).fields.name !== undefined;
  if (!keyed) return patch;
  const out = base.slice();
  patch.forEach((item, i) => {
    const name = isObject(item) ? item.name : undefined;
    const at = typeof name === 'string' ? out.findIndex((b) => isObject(b) && b.name === name) : -1;
    if (at >= 0) out[at] = mergeValue(f, out[at], item, `${path}[${at}]`);
    else if (typeof name === 'string') out.push(item);
    else
      throw new MergeError(`${path}[${i}]`, `entries of "${f.name}" merge by name; this entry has no name`);
  });
  return out;
}

/** Merges a patch into a resource of message `typeName`. */
export function protoMerge(typeName: string, base: Json, patch: Json): Json {
  const t = lookupType(typeName);
  if (!t) throw new MergeError('', `unknown message type ${typeName}`);
  return mergeMessage(t, base, patch);
}
