/**
 * Canonical proto3 JSON for Envoy's API, with proto field names (snake_case), the form Envoy's
 * YAML and `/config_dump` use and the form every Weft stage passes around: `Any` carries
 * `@type`, Duration is `"1.5s"`, wrappers are plain values, enums are names, 64-bit integers are
 * decimal strings, bytes are base64, Struct is plain JSON.
 *
 * Decoding is strict, as Envoy's own loader is: an unknown field, a wrong JSON type, an unknown
 * enum name, an `Any` of a type that is not loaded, or two members of one oneof are errors, each
 * reported with the full field path (reaching into `Any` payloads) so a person can find it.
 */
import { Enum, type Field, type Message, type ReflectionObject, type Root, type Type } from 'protobufjs';
import { envoyRoot } from './protos';

/** A JSON object. */
export type JsonObject = { [key: string]: unknown };

/** One problem found while decoding, at a field path like `filter_chains[0].filters[1].name`. */
export interface DecodeIssue {
  readonly path: string;
  readonly message: string;
}

/** Thrown by strict decoding; lists every problem found. */
export class DecodeError extends Error {
  constructor(
    /** The message type being decoded. */
    readonly typeName: string,
    /** Every problem, in document order. */
    readonly issues: readonly DecodeIssue[],
  ) {
    super(
      `invalid ${typeName}: ` +
        issues
          .slice(0, 5)
          .map((i) => `${i.path || '(root)'}: ${i.message}`)
          .join('; ') +
        (issues.length > 5 ? `; and ${issues.length - 5} more` : ''),
    );
    this.name = 'DecodeError';
  }
}

const TYPE_PREFIX = 'type.googleapis.com/';

/** The type URL of a fully-qualified message name. */
export function typeUrlOf(fullName: string): string {
  return TYPE_PREFIX + fullName.replace(/^\./, '');
}

/** The message name a type URL designates (the part after the last `/`). */
export function fullNameOf(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/**
 * Types by name, per root. protobufjs resolves a name by walking namespaces on every call, and a
 * build encodes thousands of resources, each with many `Any` payloads, so each name is resolved
 * once. The loaded types never change, so neither does the answer, a miss included.
 */
const typesByName = new WeakMap<Root, Map<string, Type | undefined>>();

function lookup(fullName: string): Type | undefined {
  const root = envoyRoot();
  let types = typesByName.get(root);
  if (!types) {
    types = new Map();
    typesByName.set(root, types);
  }
  if (types.has(fullName)) return types.get(fullName);
  let t: Type | undefined;
  try {
    t = root.lookupType(fullName);
  } catch {
    t = undefined;
  }
  types.set(fullName, t);
  return t;
}

function typeOrThrow(fullName: string): Type {
  const t = lookup(fullName);
  if (!t) throw new DecodeError(fullName, [{ path: '', message: `unknown message type ${fullName}` }]);
  return t;
}

/** Names without the leading dot; protobufjs builds `fullName` anew, from the parents, on each read. */
const names = new WeakMap<ReflectionObject, string>();

function fullName(t: ReflectionObject): string {
  let name = names.get(t);
  if (name === undefined) {
    name = t.fullName.replace(/^\./, '');
    names.set(t, name);
  }
  return name;
}

/** Wrapper types (canonical JSON writes them as plain values) and the scalar each wraps. */
export const WRAPPERS: ReadonlyMap<string, string> = new Map<string, string>([
  ['google.protobuf.DoubleValue', 'double'],
  ['google.protobuf.FloatValue', 'float'],
  ['google.protobuf.Int64Value', 'int64'],
  ['google.protobuf.UInt64Value', 'uint64'],
  ['google.protobuf.Int32Value', 'int32'],
  ['google.protobuf.UInt32Value', 'uint32'],
  ['google.protobuf.BoolValue', 'bool'],
  ['google.protobuf.StringValue', 'string'],
  ['google.protobuf.BytesValue', 'bytes'],
]);

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const fieldIndex = new WeakMap<Type, Map<string, Field>>();

/** Fields of a type by proto name and by lowerCamel JSON name. */
function fieldsOf(t: Type): Map<string, Field> {
  let m = fieldIndex.get(t);
  if (!m) {
    m = new Map();
    for (const f of t.fieldsArray) {
      m.set(f.name, f);
      m.set(camel(f.name), f);
    }
    fieldIndex.set(t, m);
  }
  return m;
}

/**
 * Where a value sits in the document, rendered as `filter_chains[0].filters[1].name` only when a
 * problem is reported there: most documents have none, and building the text for every field of
 * every resource was a good part of encoding.
 */
class FieldPath {
  static readonly root = new FieldPath(null, '');

  private constructor(
    private readonly up: FieldPath | null,
    /** A field name, an array index, or a map key. */
    private readonly step: string | number | { readonly key: string },
  ) {}

  /** `.name` (no dot at the root). */
  field(name: string): FieldPath {
    return new FieldPath(this, name);
  }

  /** `[i]`. */
  index(i: number): FieldPath {
    return new FieldPath(this, i);
  }

  /** `["key"]`. */
  key(key: string): FieldPath {
    return new FieldPath(this, { key });
  }

  toString(): string {
    if (this.up === null) return '';
    const head = this.up.toString();
    const step = this.step;
    if (typeof step === 'number') return `${head}[${step}]`;
    if (typeof step === 'object') return `${head}["${step.key}"]`;
    return head ? `${head}.${step}` : step;
  }
}

/** Converts canonical JSON to protobufjs' object form, collecting issues. */
class JsonReader {
  readonly issues: DecodeIssue[] = [];

  private fail(path: FieldPath, message: string): undefined {
    this.issues.push({ path: path.toString(), message });
    return undefined;
  }

  message(t: Type, json: unknown, path: FieldPath): JsonObject | undefined {
    const name = fullName(t);
    const special = this.wellKnown(name, json, path);
    if (special !== null) return special;
    if (!isObject(json)) return this.fail(path, `expected an object for ${name}, got ${describe(json)}`);
    const fields = fieldsOf(t);
    const out: JsonObject = {};
    // Only messages that set a oneof member need to track them.
    let oneofSeen: Map<string, string> | undefined;
    // Keys, not entries: this loop runs for every field of every resource, and entries allocate.
    for (const key of Object.keys(json)) {
      const value = json[key];
      const f = fields.get(key);
      if (!f) {
        this.fail(path.field(key), `unknown field "${key}" in ${name}`);
        continue;
      }
      if (value === null && (!f.resolvedType || fullName(f.resolvedType) !== 'google.protobuf.Value'))
        continue;
      if (f.partOf && f.partOf.oneof.length > 1) {
        oneofSeen ??= new Map();
        const other = oneofSeen.get(f.partOf.name);
        if (other !== undefined) {
          this.fail(
            path.field(key),
            `"${f.name}" and "${other}" are both set, but only one of oneof "${f.partOf.name}" may be`,
          );
          continue;
        }
        oneofSeen.set(f.partOf.name, f.name);
      }
      const v = this.field(f, value, path.field(f.name));
      if (v !== undefined) out[f.name] = v;
    }
    return out;
  }

  private field(f: Field, value: unknown, path: FieldPath): unknown {
    if (f.map) {
      if (!isObject(value)) return this.fail(path, `expected an object (map), got ${describe(value)}`);
      const out: JsonObject = {};
      // Sorted keys: the same map always encodes to the same bytes (versions are content hashes).
      for (const k of Object.keys(value).sort()) {
        const v = value[k];
        if (
          (f as Field & { keyType: string }).keyType !== 'string' &&
          this.scalar((f as Field & { keyType: string }).keyType, k, path.key(k)) === undefined
        )
          continue;
        const conv = this.single(f, v, path.key(k));
        if (conv !== undefined) out[k] = conv;
      }
      return out;
    }
    if (f.repeated) {
      if (!Array.isArray(value)) return this.fail(path, `expected an array, got ${describe(value)}`);
      const out: unknown[] = [];
      value.forEach((v, i) => {
        const conv = this.single(f, v, path.index(i));
        if (conv !== undefined) out.push(conv);
      });
      return out;
    }
    return this.single(f, value, path);
  }

  private single(f: Field, value: unknown, path: FieldPath): unknown {
    const rt = f.resolvedType;
    if (rt instanceof Enum) return this.enumValue(rt, value, path);
    if (rt) return this.message(rt as Type, value, path);
    return this.scalar(f.type, value, path);
  }

  private enumValue(e: Enum, value: unknown, path: FieldPath): unknown {
    if (typeof value === 'string') {
      if (value in e.values) return value;
      return this.fail(
        path,
        `unknown ${e.name} value "${value}"; expected one of ${Object.keys(e.values).join(', ')}`,
      );
    }
    if (typeof value === 'number' && Number.isInteger(value)) return value;
    return this.fail(path, `expected an enum name (string), got ${describe(value)}`);
  }

  scalar(type: string, value: unknown, path: FieldPath): unknown {
    if (type === 'string') {
      return typeof value === 'string' ? value : this.fail(path, `expected a string, got ${describe(value)}`);
    }
    if (type === 'bool') {
      return typeof value === 'boolean'
        ? value
        : this.fail(path, `expected true or false, got ${describe(value)}`);
    }
    if (type === 'bytes') {
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) {
        return this.fail(path, `expected base64 bytes (a string), got ${describe(value)}`);
      }
      return value;
    }
    if (type === 'double' || type === 'float') {
      if (typeof value === 'number') return value;
      if (value === 'NaN' || value === 'Infinity' || value === '-Infinity') return Number(value);
      if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)))
        return Number(value);
      return this.fail(path, `expected a number, got ${describe(value)}`);
    }
    const isInt = INT32.has(type) || UINT32.has(type) || INT64.has(type) || UINT64.has(type);
    if (isInt) {
      let n: number | undefined;
      if (typeof value === 'number' && Number.isInteger(value)) n = value;
      else if (typeof value === 'string' && /^-?\d+$/.test(value)) n = Number(value);
      if (n === undefined) return this.fail(path, `expected an integer, got ${describe(value)}`);
      const unsigned = UINT32.has(type) || UINT64.has(type);
      if (unsigned && n < 0) return this.fail(path, `expected a non-negative integer (${type}), got ${n}`);
      if (INT32.has(type) && (n < -(2 ** 31) || n >= 2 ** 31))
        return this.fail(path, `${n} is out of range for ${type}`);
      if (UINT32.has(type) && n >= 2 ** 32) return this.fail(path, `${n} is out of range for ${type}`);
      // 64-bit values keep their decimal text so no precision is lost on the way to the encoder.
      return INT64.has(type) || UINT64.has(type) ? String(value) : n;
    }
    return this.fail(path, `unsupported scalar type ${type}`);
  }

  /** Well-known types with special JSON; returns null when `name` is an ordinary message. */
  private wellKnown(name: string, json: unknown, path: FieldPath): JsonObject | undefined | null {
    const wrapped = WRAPPERS.get(name);
    if (wrapped) {
      const v = this.scalar(wrapped, json, path);
      return v === undefined ? undefined : { value: v };
    }
    switch (name) {
      case 'google.protobuf.Any':
        return this.any(json, path);
      case 'google.protobuf.Duration':
        return this.duration(json, path);
      case 'google.protobuf.Timestamp':
        return this.timestamp(json, path);
      case 'google.protobuf.Struct':
        return isObject(json) ? structOf(json) : this.fail(path, `expected an object, got ${describe(json)}`);
      case 'google.protobuf.Value':
        return protoValueOf(json);
      case 'google.protobuf.ListValue':
        return Array.isArray(json)
          ? { values: json.map(protoValueOf) }
          : this.fail(path, `expected an array, got ${describe(json)}`);
      case 'google.protobuf.FieldMask':
        return typeof json === 'string'
          ? {
              paths:
                json === ''
                  ? []
                  : json.split(',').map((p) => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)),
            }
          : this.fail(path, `expected a comma-separated string, got ${describe(json)}`);
      case 'google.protobuf.Empty':
        if (!isObject(json) || Object.keys(json).length > 0) return this.fail(path, 'expected {}');
        return {};
      default:
        return null;
    }
  }

  private any(json: unknown, path: FieldPath): JsonObject | undefined {
    if (!isObject(json)) return this.fail(path, `expected an object with "@type", got ${describe(json)}`);
    const url = json['@type'];
    if (url === undefined && Object.keys(json).length === 0) return {};
    if (typeof url !== 'string') return this.fail(path.field('@type'), 'an Any needs "@type"');
    const inner = lookup(fullNameOf(url));
    if (!inner)
      return this.fail(path.field('@type'), `unknown type "${url}": not an Envoy API type Weft knows`);
    const { '@type': _, ...rest } = json;
    const innerName = fullName(inner);
    const payload = WRAPPERS.has(innerName) || SPECIAL_JSON.has(innerName) ? rest.value : rest;
    const before = this.issues.length;
    const obj = this.message(inner, payload, path);
    if (obj === undefined || this.issues.length > before) return undefined;
    return { type_url: url, value: inner.encode(inner.fromObject(obj)).finish() };
  }

  private duration(json: unknown, path: FieldPath): JsonObject | undefined {
    const m = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
    if (!m) return this.fail(path, `expected a duration like "1.5s", got ${describe(json)}`);
    const sign = m[1] ? -1 : 1;
    const seconds = Number(m[2]);
    if (seconds > 315_576_000_000) return this.fail(path, 'duration out of range');
    const nanos = Number((m[3] ?? '').padEnd(9, '0'));
    return { seconds: String(sign * seconds), nanos: sign * nanos };
  }

  private timestamp(json: unknown, path: FieldPath): JsonObject | undefined {
    const m =
      typeof json === 'string'
        ? /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(json)
        : null;
    const ms = m ? Date.parse(`${m[1]}${m[3]}`) : Number.NaN;
    if (!m || Number.isNaN(ms))
      return this.fail(path, `expected an RFC 3339 timestamp, got ${describe(json)}`);
    return { seconds: String(Math.floor(ms / 1000)), nanos: Number((m[2] ?? '').padEnd(9, '0')) };
  }
}

/** Well-known types whose JSON is not an object of their fields; inside an Any they sit under "value". */
const SPECIAL_JSON = new Set([
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.FieldMask',
]);

/**
 * Field names of google.protobuf.Value by number. protobufjs bundles the well-known types with
 * camelCase names while Envoy's own files are loaded with proto names, so look them up.
 */
let valueFields:
  | { null: string; number: string; string: string; bool: string; struct: string; list: string }
  | undefined;

function vf(): NonNullable<typeof valueFields> {
  if (!valueFields) {
    const v = typeOrThrow('google.protobuf.Value');
    const byId = (id: number): string => v.fieldsById[id]!.name;
    valueFields = {
      null: byId(1),
      number: byId(2),
      string: byId(3),
      bool: byId(4),
      struct: byId(5),
      list: byId(6),
    };
  }
  return valueFields;
}

function structOf(json: JsonObject): JsonObject {
  const fields: JsonObject = {};
  for (const k of Object.keys(json).sort()) fields[k] = protoValueOf(json[k]);
  return { fields };
}

function protoValueOf(v: unknown): JsonObject {
  const f = vf();
  if (v === null || v === undefined) return { [f.null]: 'NULL_VALUE' };
  if (typeof v === 'number') return { [f.number]: v };
  if (typeof v === 'string') return { [f.string]: v };
  if (typeof v === 'boolean') return { [f.bool]: v };
  if (Array.isArray(v)) return { [f.list]: { values: v.map(protoValueOf) } };
  return { [f.struct]: structOf(v as JsonObject) };
}

/** Strictly decodes canonical JSON into a protobufjs message of `typeName`; throws {@link DecodeError}. */
export function fromJson(typeName: string, json: unknown): Message {
  const t = typeOrThrow(typeName);
  const reader = new JsonReader();
  const obj = reader.message(t, json, FieldPath.root);
  if (reader.issues.length > 0 || obj === undefined) throw new DecodeError(typeName, reader.issues);
  return t.fromObject(obj);
}

/** Strictly checks canonical JSON; returns the issues (empty when it decodes). */
export function checkJson(typeName: string, json: unknown): DecodeIssue[] {
  const t = lookup(typeName);
  if (!t) return [{ path: '', message: `unknown message type ${typeName}` }];
  const reader = new JsonReader();
  reader.message(t, json, FieldPath.root);
  return reader.issues;
}

/** Encodes canonical JSON to protobuf bytes (strict). */
export function encode(typeName: string, json: unknown): Uint8Array {
  const t = typeOrThrow(typeName);
  return t.encode(fromJson(typeName, json)).finish();
}

/** Decodes protobuf bytes to canonical JSON. */
export function decode(typeName: string, bytes: Uint8Array): JsonObject {
  const t = typeOrThrow(typeName);
  return toJson(typeName, t.decode(bytes));
}

const TO_OBJECT = {
  longs: String,
  enums: String,
  bytes: String,
  defaults: false,
  arrays: false,
  objects: false,
};

/** Converts a message (or its bytes) to canonical JSON: proto field names, defaults omitted. */
export function toJson(typeName: string, message: Message | Uint8Array): JsonObject {
  const t = typeOrThrow(typeName);
  const msg = message instanceof Uint8Array ? t.decode(message) : message;
  return writeMessage(t, t.toObject(msg, TO_OBJECT)) as JsonObject;
}

function writeMessage(t: Type, obj: JsonObject): unknown {
  const name = fullName(t);
  const wrapped = WRAPPERS.get(name);
  if (wrapped) return writeScalar(wrapped, obj.value ?? defaultScalar(wrapped));
  switch (name) {
    case 'google.protobuf.Any': {
      const url = obj.type_url as string | undefined;
      if (!url) return {};
      const inner = typeOrThrow(fullNameOf(url));
      const bytes = Buffer.from((obj.value as string | undefined) ?? '', 'base64');
      const body = writeMessage(inner, inner.toObject(inner.decode(bytes), TO_OBJECT) as JsonObject);
      const innerName = fullName(inner);
      if (WRAPPERS.has(innerName) || SPECIAL_JSON.has(innerName)) return { '@type': url, value: body };
      return { '@type': url, ...(body as JsonObject) };
    }
    case 'google.protobuf.Duration': {
      const s = BigInt((obj.seconds as string | undefined) ?? '0');
      const n = (obj.nanos as number | undefined) ?? 0;
      const neg = s < 0n || n < 0;
      const abs = (s < 0n ? -s : s).toString();
      return `${neg ? '-' : ''}${abs}${fraction(Math.abs(n))}s`;
    }
    case 'google.protobuf.Timestamp': {
      const s = Number((obj.seconds as string | undefined) ?? '0');
      const n = (obj.nanos as number | undefined) ?? 0;
      const iso = new Date(s * 1000).toISOString().replace('.000Z', '');
      return `${iso.replace(/Z$/, '')}${fraction(n)}Z`;
    }
    case 'google.protobuf.Struct':
      return structJson(obj);
    case 'google.protobuf.Value':
      return valueJson(obj);
    case 'google.protobuf.ListValue':
      return ((obj.values as JsonObject[] | undefined) ?? []).map(valueJson);
    case 'google.protobuf.FieldMask':
      return ((obj.paths as string[] | undefined) ?? []).map(camel).join(',');
  }
  const out: JsonObject = {};
  for (const f of t.fieldsArray) {
    const v = obj[f.name];
    if (v === undefined) continue;
    const single = (x: unknown): unknown => {
      const rt = f.resolvedType;
      if (rt instanceof Enum) return x;
      if (rt) return writeMessage(rt as Type, x as JsonObject);
      return writeScalar(f.type, x);
    };
    if (f.map) {
      const m: JsonObject = {};
      for (const k of Object.keys(v as JsonObject).sort()) m[k] = single((v as JsonObject)[k]);
      out[f.name] = m;
    } else if (f.repeated) {
      out[f.name] = (v as unknown[]).map(single);
    } else {
      // proto3 implicit presence: a default scalar is omitted, except in a oneof (where being
      // set is itself the meaning, e.g. `prefix: ""` matches every path).
      if (!f.partOf && !f.resolvedType && isDefaultScalar(v)) continue;
      if (!f.partOf && f.resolvedType instanceof Enum && f.resolvedType.values[String(v)] === 0) continue;
      out[f.name] = single(v);
    }
  }
  return out;
}

/** Nanoseconds as 0, 3, 6 or 9 fractional digits, as protobuf's JSON printer writes them. */
function fraction(nanos: number): string {
  if (nanos === 0) return '';
  const digits = String(nanos).padStart(9, '0');
  if (nanos % 1_000_000 === 0) return `.${digits.slice(0, 3)}`;
  if (nanos % 1_000 === 0) return `.${digits.slice(0, 6)}`;
  return `.${digits}`;
}

function isDefaultScalar(v: unknown): boolean {
  return v === 0 || v === '' || v === false || v === '0';
}

function defaultScalar(type: string): unknown {
  if (type === 'bool') return false;
  if (type === 'string' || type === 'bytes') return '';
  return 0;
}

function writeScalar(type: string, v: unknown): unknown {
  if (INT64.has(type) || UINT64.has(type)) return String(v);
  if ((type === 'double' || type === 'float') && typeof v === 'number' && !Number.isFinite(v))
    return String(v);
  return v;
}

function structJson(obj: JsonObject): JsonObject {
  const out: JsonObject = {};
  const fields = (obj.fields as JsonObject | undefined) ?? {};
  for (const k of Object.keys(fields).sort()) out[k] = valueJson(fields[k] as JsonObject);
  return out;
}

function valueJson(v: JsonObject): unknown {
  const f = vf();
  if (v[f.number] !== undefined) return v[f.number];
  if (v[f.string] !== undefined) return v[f.string];
  if (v[f.bool] !== undefined) return v[f.bool];
  if (v[f.struct] !== undefined) return structJson(v[f.struct] as JsonObject);
  if (v[f.list] !== undefined)
    return (((v[f.list] as JsonObject).values as JsonObject[] | undefined) ?? []).map(valueJson);
  return null;
}
