/**
 * protoc-gen-validate (PGV) rules, checked on canonical JSON: the `(validate.rules)` field options,
 * `(validate.required)` oneofs and `(validate.disabled)` messages that Envoy enforces on every
 * message it loads. Running them before anything is served turns a config Envoy would NACK into an
 * error that names the field.
 *
 * Semantics follow PGV's generated validators:
 * - Rules on a singular scalar (string, number, bool, enum, bytes) apply to its value even when it
 *   is absent from the JSON, because proto3 cannot tell "unset" from the default: an unset
 *   `string name = 1 [min_len: 1]` is a violation, an unset `uint32 x [gt: 0]` is one too.
 * - Members of a oneof (including proto3 `optional`, a synthetic oneof) are checked only when set.
 * - Message-typed fields (wrappers, Duration, Timestamp, Any, ordinary messages) are checked only
 *   when set, except for their `required` rule. Set messages are validated recursively unless
 *   `message.skip`; an `Any` is unpacked by its type URL and validated too, as Envoy does when it
 *   instantiates an extension.
 * - Combined bounds follow PGV: `gt: a, lt: b` with `b > a` means inside `(a, b)`; with `b <= a`
 *   it means outside `[b, a]`.
 *
 * Paths use the same form as the JSON codec's issues (`filter_chains[0].filters[1].name`,
 * `metadata.filter_metadata["k"]`), so both kinds of problem read alike.
 *
 * Rules are compiled once per message type and kept in a cache; validation then only walks the
 * JSON that is present plus a precomputed list of the fields whose absence is itself a violation.
 */
import { isIP } from 'node:net';
import { Enum, type Field, type OneOf, type Type } from 'protobufjs';
import { RE2 } from 're2-wasm';
import { WRAPPERS } from './codec';
import { envoyRoot } from './protos';

/** One violated rule, at a field path like `virtual_hosts[0].domains`. */
export interface Violation {
  readonly path: string;
  readonly message: string;
}

type Out = Violation[];
type JsonObject = { [key: string]: unknown };
/** Checks one present value (a field's value, a list item, a map value or key). */
type ValueCheck = (value: unknown, path: string, out: Out) => void;

/** A field's `(validate.rules)`, as protobufjs parses the option text. */
type Rules = { [key: string]: unknown };

const join = (path: string, key: string): string => (path ? `${path}.${key}` : key);

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asRules(v: unknown): Rules | undefined {
  return isObject(v) ? v : undefined;
}

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function show(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : String(v);
}

/** Deep-merges objects; the same option may be written as several `(validate.rules).x = ...` parts. */
function merge(a: Rules, b: Rules): Rules {
  const out: Rules = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] = isObject(prev) && isObject(v) ? merge(prev, v) : v;
  }
  return out;
}

function fieldRules(f: Field): Rules | undefined {
  let rules: Rules | undefined;
  for (const opt of (f.parsedOptions as Rules[] | undefined) ?? []) {
    const r = asRules(opt['(validate.rules)']);
    if (r) rules = rules ? merge(rules, r) : r;
  }
  return rules;
}

function optionTrue(options: Rules | undefined, parsed: unknown, name: string): boolean {
  if (options?.[name] === true) return true;
  return Array.isArray(parsed) && parsed.some((o) => isObject(o) && o[name] === true);
}

// ---------------------------------------------------------------------------------------------
// Numbers. 64-bit integers are compared as BigInt so large values keep their precision.

const INT_TYPES = new Set([
  'int32',
  'uint32',
  'sint32',
  'fixed32',
  'sfixed32',
  'int64',
  'uint64',
  'sint64',
  'fixed64',
  'sfixed64',
]);
const WIDE = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);

type Num = number | bigint;

function toNum(kind: string, v: unknown): Num | undefined {
  if (WIDE.has(kind)) {
    if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
    if (typeof v === 'string' && /^-?\d+$/.test(v)) return BigInt(v);
    if (typeof v === 'bigint') return v;
    if (isObject(v) && typeof v.low === 'number' && typeof v.high === 'number') {
      // A protobufjs Long, should an option ever carry one.
      return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
    }
    return undefined;
  }
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') {
    const n = Number(v);
    return Number.isNaN(n) && v !== 'NaN' ? undefined : n;
  }
  return undefined;
}

/**
 * Compiles PGV's comparison rules (const, lt, lte, gt, gte, in, not_in) over any ordered kind.
 * `parse` turns a JSON value (or a rule value) into the comparable form; `fmt` shows one.
 */
function rangeCheck<T extends Num>(
  rules: Rules,
  parse: (v: unknown) => T | undefined,
  fmt: (v: T) => string,
): ((v: T) => string | null) | null {
  const one = (k: string): T | undefined => (rules[k] === undefined ? undefined : parse(rules[k]));
  const list = (k: string): T[] =>
    Array.isArray(rules[k])
      ? (rules[k] as unknown[]).map(parse).filter((x): x is T => x !== undefined)
      : rules[k] !== undefined && parse(rules[k]) !== undefined
        ? [parse(rules[k]) as T]
        : [];
  const cnst = one('const');
  const lt = one('lt');
  const lte = one('lte');
  const gt = one('gt');
  const gte = one('gte');
  const inList = list('in');
  const notIn = list('not_in');
  const upper = lt !== undefined ? { v: lt, excl: true } : lte !== undefined ? { v: lte, excl: false } : null;
  const lower = gt !== undefined ? { v: gt, excl: true } : gte !== undefined ? { v: gte, excl: false } : null;
  if (cnst === undefined && !upper && !lower && inList.length === 0 && notIn.length === 0) return null;
  const belowUpper = (v: T): boolean => (upper!.excl ? v < upper!.v : v <= upper!.v);
  const aboveLower = (v: T): boolean => (lower!.excl ? v > lower!.v : v >= lower!.v);
  const lowerText = lower ? `${lower.excl ? '>' : '>='} ${fmt(lower.v)}` : '';
  const upperText = upper ? `${upper.excl ? '<' : '<='} ${fmt(upper.v)}` : '';
  // PGV: an upper bound above the lower one is a range to be inside of; otherwise it is a
  // range to stay out of.
  const inside = upper && lower ? upper.v > lower.v : true;
  return (v) => {
    if (cnst !== undefined && v !== cnst) return `must equal ${fmt(cnst)}, got ${fmt(v)}`;
    if (upper && lower) {
      if (inside && !(aboveLower(v) && belowUpper(v)))
        return `must be ${lowerText} and ${upperText}, got ${fmt(v)}`;
      if (!inside && !(aboveLower(v) || belowUpper(v)))
        return `must be ${upperText} or ${lowerText}, got ${fmt(v)}`;
    } else if (upper && !belowUpper(v)) return `must be ${upperText}, got ${fmt(v)}`;
    else if (lower && !aboveLower(v)) return `must be ${lowerText}, got ${fmt(v)}`;
    if (inList.length > 0 && !inList.includes(v))
      return `must be one of ${inList.map(fmt).join(', ')}, got ${fmt(v)}`;
    if (notIn.includes(v)) return `must not be ${fmt(v)}`;
    return null;
  };
}

function numberCheck(kind: string, rules: Rules): ValueCheck | null {
  const test = rangeCheck<Num>(
    rules,
    (v) => toNum(kind, v),
    (v) => String(v),
  );
  if (!test) return null;
  return (value, path, out) => {
    const n = toNum(kind, value);
    if (n === undefined) return; // a wrong JSON type is the codec's to report
    const problem = test(n);
    if (problem) out.push({ path, message: problem });
  };
}

// ---------------------------------------------------------------------------------------------
// Durations and timestamps, compared in nanoseconds.

const NANOS = 1_000_000_000n;

function ruleNanos(v: unknown): bigint | undefined {
  if (!isObject(v)) return undefined;
  const s = toNum('int64', v.seconds ?? 0);
  const n = toNum('int64', v.nanos ?? 0);
  return s === undefined || n === undefined ? undefined : (s as bigint) * NANOS + (n as bigint);
}

function durationNanos(v: unknown): bigint | undefined {
  const m = typeof v === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(v) : null;
  if (!m) return undefined;
  const abs = BigInt(m[2]!) * NANOS + BigInt((m[3] ?? '').padEnd(9, '0'));
  return m[1] ? -abs : abs;
}

function fmtDuration(n: bigint): string {
  const neg = n < 0n;
  const a = neg ? -n : n;
  const frac = (a % NANOS).toString().padStart(9, '0').replace(/0+$/, '');
  return `${neg ? '-' : ''}${a / NANOS}${frac ? `.${frac}` : ''}s`;
}

function timestampNanos(v: unknown): bigint | undefined {
  const m =
    typeof v === 'string'
      ? /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(v)
      : null;
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  return BigInt(ms) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
}

function fmtTimestamp(n: bigint): string {
  return new Date(Number(n / 1_000_000n)).toISOString();
}

function durationCheck(rules: Rules): ValueCheck | null {
  const test = rangeCheck<bigint>(rules, ruleNanos, fmtDuration);
  if (!test) return null;
  return (value, path, out) => {
    const n = durationNanos(value);
    if (n === undefined) return;
    const problem = test(n);
    if (problem) out.push({ path, message: problem });
  };
}

function timestampCheck(rules: Rules): ValueCheck | null {
  const test = rangeCheck<bigint>(rules, ruleNanos, fmtTimestamp);
  const within = rules.within === undefined ? undefined : ruleNanos(rules.within);
  const ltNow = rules.lt_now === true;
  const gtNow = rules.gt_now === true;
  if (!test && within === undefined && !ltNow && !gtNow) return null;
  return (value, path, out) => {
    const n = timestampNanos(value);
    if (n === undefined) return;
    const problem = test?.(n);
    if (problem) out.push({ path, message: problem });
    // Relative rules read the clock; Envoy's API uses none of them, they are here for completeness.
    const now = BigInt(Date.now()) * 1_000_000n;
    if (ltNow && !(n < now)) out.push({ path, message: 'must be in the past' });
    if (gtNow && !(n > now)) out.push({ path, message: 'must be in the future' });
    if (within !== undefined) {
      const d = n > now ? n - now : now - n;
      if (d > within) out.push({ path, message: `must be within ${fmtDuration(within)} of now` });
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Strings and bytes.

const re2Cache = new Map<string, RE2 | null>();

/** Compiles an RE2 pattern once; null when RE2 refuses it (then the rule cannot be checked). */
function re2(pattern: string): RE2 | null {
  let re = re2Cache.get(pattern);
  if (re === undefined) {
    try {
      re = new RE2(pattern, 'u');
    } catch {
      re = null;
    }
    re2Cache.set(pattern, re);
  }
  return re;
}

// PGV's well-known header checks. They are single character classes, so they run without a regex
// engine round trip. PGV writes the name class with `+-.`, a range, which also admits `,`; the same
// set is spelled out here so that Weft accepts exactly what Envoy does.
const HEADER_NAME = /^:?[0-9a-zA-Z!#$%&'*+,\-.^_|~`]+$/;
/** HTTP_HEADER_VALUE: no control characters except horizontal tab (U+0000-U+0008, U+000A-U+001F, U+007F). */
const HEADER_VALUE = {
  test: (s: string): boolean => {
    for (let i = 0; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if ((c < 0x20 && c !== 0x09) || c === 0x7f) return false;
    }
    return true;
  },
};
/** With `strict: false`, names and values only need to be free of NUL, LF and CR. */
const HEADER_LOOSE = {
  test: (s: string): boolean => !/[\0\n\r]/.test(s),
};

const HOSTNAME_LABEL = /^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$/;

function isHostname(s: string): boolean {
  const h = s.endsWith('.') ? s.slice(0, -1) : s;
  if (h.length === 0 || h.length > 253) return false;
  return h.split('.').every((l) => HOSTNAME_LABEL.test(l));
}

function isEmail(s: string): boolean {
  const at = s.lastIndexOf('@');
  if (at <= 0 || at > 64) return false;
  return isHostname(s.slice(at + 1)) && !/[\s<>]/.test(s.slice(0, at));
}

function isUri(s: string): boolean {
  return /^[a-zA-Z][a-zA-Z0-9+.-]*:[^\s]*$/.test(s);
}

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function lengthRule(rules: Rules, key: string): number | undefined {
  const v = rules[key];
  if (v === undefined) return undefined;
  const n = toNum('uint64', v);
  return n === undefined ? undefined : Number(n);
}

function stringList(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string');
  return typeof v === 'string' ? [v] : [];
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

function stringCheck(rules: Rules): ValueCheck | null {
  const tests: ((s: string) => string | null)[] = [];
  const cnst = rules.const;
  if (typeof cnst === 'string') tests.push((s) => (s === cnst ? null : `must equal ${show(cnst)}`));
  const len = lengthRule(rules, 'len');
  const minLen = lengthRule(rules, 'min_len');
  const maxLen = lengthRule(rules, 'max_len');
  if (len !== undefined || minLen !== undefined || maxLen !== undefined) {
    tests.push((s) => {
      // Characters are Unicode code points, not UTF-16 units.
      const n = [...s].length;
      if (len !== undefined && n !== len) return `must be exactly ${plural(len, 'character')} long, got ${n}`;
      if (minLen !== undefined && n < minLen)
        return minLen === 1 && n === 0
          ? 'must not be empty'
          : `must be at least ${plural(minLen, 'character')} long, got ${n}`;
      if (maxLen !== undefined && n > maxLen)
        return `must be at most ${plural(maxLen, 'character')} long, got ${n}`;
      return null;
    });
  }
  const lenBytes = lengthRule(rules, 'len_bytes');
  const minBytes = lengthRule(rules, 'min_bytes');
  const maxBytes = lengthRule(rules, 'max_bytes');
  if (lenBytes !== undefined || minBytes !== undefined || maxBytes !== undefined) {
    tests.push((s) => {
      const n = Buffer.byteLength(s, 'utf8');
      if (lenBytes !== undefined && n !== lenBytes)
        return `must be exactly ${plural(lenBytes, 'byte')} long, got ${n}`;
      if (minBytes !== undefined && n < minBytes)
        return `must be at least ${plural(minBytes, 'byte')} long, got ${n}`;
      if (maxBytes !== undefined && n > maxBytes)
        return `must be at most ${plural(maxBytes, 'byte')} long, got ${n}`;
      return null;
    });
  }
  if (typeof rules.pattern === 'string') {
    const pattern = rules.pattern;
    const re = re2(pattern);
    if (re) tests.push((s) => (re.test(s) ? null : `must match the pattern ${show(pattern)}`));
  }
  for (const [key, verb, ok] of [
    ['prefix', 'start with', (s: string, x: string) => s.startsWith(x)],
    ['suffix', 'end with', (s: string, x: string) => s.endsWith(x)],
    ['contains', 'contain', (s: string, x: string) => s.includes(x)],
  ] as const) {
    const x = rules[key];
    if (typeof x === 'string') tests.push((s) => (ok(s, x) ? null : `must ${verb} ${show(x)}`));
  }
  if (typeof rules.not_contains === 'string') {
    const x = rules.not_contains;
    tests.push((s) => (s.includes(x) ? `must not contain ${show(x)}` : null));
  }
  const inList = stringList(rules.in);
  if (rules.in !== undefined)
    tests.push((s) => (inList.includes(s) ? null : `must be one of ${inList.map(show).join(', ')}`));
  const notIn = stringList(rules.not_in);
  if (notIn.length > 0) tests.push((s) => (notIn.includes(s) ? `must not be ${show(s)}` : null));
  const wk = (name: string, ok: (s: string) => boolean, what: string): void => {
    if (rules[name] === true) tests.push((s) => (ok(s) ? null : `must be ${what}`));
  };
  wk('email', isEmail, 'a valid email address');
  wk('hostname', isHostname, 'a valid hostname');
  wk('ip', (s) => isIP(s) !== 0, 'a valid IP address');
  wk('ipv4', (s) => isIP(s) === 4, 'a valid IPv4 address');
  wk('ipv6', (s) => isIP(s) === 6, 'a valid IPv6 address');
  wk('address', (s) => isIP(s) !== 0 || isHostname(s), 'a valid IP address or hostname');
  wk('uri', isUri, 'an absolute URI');
  wk('uri_ref', (s) => !/\s/.test(s), 'a URI reference');
  wk('uuid', (s) => UUID.test(s), 'a UUID');
  const known = rules.well_known_regex;
  if (known === 'HTTP_HEADER_NAME' || known === 'HTTP_HEADER_VALUE' || known === 1 || known === 2) {
    const name = known === 'HTTP_HEADER_NAME' || known === 1;
    // `strict` defaults to true in validate.proto.
    const re = rules.strict === false ? HEADER_LOOSE : name ? HEADER_NAME : HEADER_VALUE;
    const what =
      rules.strict === false
        ? 'free of NUL, CR and LF characters'
        : name
          ? 'a valid HTTP header name (RFC 7230 token characters)'
          : 'a valid HTTP header value (no control characters)';
    tests.push((s) => (re.test(s) ? null : `must be ${what}, got ${show(s)}`));
  }
  if (tests.length === 0) return null;
  const ignoreEmpty = rules.ignore_empty === true;
  return (value, path, out) => {
    if (typeof value !== 'string') return;
    if (ignoreEmpty && value === '') return;
    for (const t of tests) {
      const problem = t(value);
      if (problem) out.push({ path, message: problem });
    }
  };
}

function bytesOf(v: unknown): Buffer | undefined {
  return typeof v === 'string' ? Buffer.from(v, 'base64') : undefined;
}

function bytesCheck(rules: Rules): ValueCheck | null {
  // Rule literals are proto text strings (already unescaped by the parser), one char per byte.
  const lit = (v: unknown): Buffer | undefined =>
    typeof v === 'string' ? Buffer.from(v, 'latin1') : undefined;
  const tests: ((b: Buffer) => string | null)[] = [];
  const cnst = lit(rules.const);
  if (cnst) tests.push((b) => (b.equals(cnst) ? null : 'must equal the constant bytes'));
  const len = lengthRule(rules, 'len');
  const minLen = lengthRule(rules, 'min_len');
  const maxLen = lengthRule(rules, 'max_len');
  if (len !== undefined || minLen !== undefined || maxLen !== undefined)
    tests.push((b) => {
      if (len !== undefined && b.length !== len)
        return `must be exactly ${plural(len, 'byte')} long, got ${b.length}`;
      if (minLen !== undefined && b.length < minLen)
        return `must be at least ${plural(minLen, 'byte')} long, got ${b.length}`;
      if (maxLen !== undefined && b.length > maxLen)
        return `must be at most ${plural(maxLen, 'byte')} long, got ${b.length}`;
      return null;
    });
  if (typeof rules.pattern === 'string') {
    const pattern = rules.pattern;
    const re = re2(pattern);
    if (re)
      tests.push((b) => (re.test(b.toString('latin1')) ? null : `must match the pattern ${show(pattern)}`));
  }
  const prefix = lit(rules.prefix);
  if (prefix)
    tests.push((b) =>
      b.subarray(0, prefix.length).equals(prefix) ? null : 'must start with the prefix bytes',
    );
  const suffix = lit(rules.suffix);
  if (suffix)
    tests.push((b) =>
      b.length >= suffix.length && b.subarray(b.length - suffix.length).equals(suffix)
        ? null
        : 'must end with the suffix bytes',
    );
  const contains = lit(rules.contains);
  if (contains) tests.push((b) => (b.includes(contains) ? null : 'must contain the given bytes'));
  const inList = stringList(rules.in).map((s) => Buffer.from(s, 'latin1'));
  if (inList.length > 0)
    tests.push((b) => (inList.some((x) => x.equals(b)) ? null : 'must be one of the allowed values'));
  const notIn = stringList(rules.not_in).map((s) => Buffer.from(s, 'latin1'));
  if (notIn.length > 0)
    tests.push((b) => (notIn.some((x) => x.equals(b)) ? 'must not be a forbidden value' : null));
  if (rules.ip === true)
    tests.push((b) => (b.length === 4 || b.length === 16 ? null : 'must be an IP address (4 or 16 bytes)'));
  if (rules.ipv4 === true) tests.push((b) => (b.length === 4 ? null : 'must be an IPv4 address (4 bytes)'));
  if (rules.ipv6 === true) tests.push((b) => (b.length === 16 ? null : 'must be an IPv6 address (16 bytes)'));
  if (tests.length === 0) return null;
  return (value, path, out) => {
    const b = bytesOf(value);
    if (!b) return;
    for (const t of tests) {
      const problem = t(b);
      if (problem) out.push({ path, message: problem });
    }
  };
}

function boolCheck(rules: Rules): ValueCheck | null {
  if (typeof rules.const !== 'boolean') return null;
  const want = rules.const;
  return (value, path, out) => {
    if (typeof value === 'boolean' && value !== want) out.push({ path, message: `must be ${want}` });
  };
}

function enumNumber(e: Enum, v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return e.values[v];
  return undefined;
}

function enumCheck(e: Enum, rules: Rules): ValueCheck | null {
  const numbers = (k: string): number[] =>
    (Array.isArray(rules[k]) ? (rules[k] as unknown[]) : rules[k] === undefined ? [] : [rules[k]])
      .map((x) => enumNumber(e, x))
      .filter((x): x is number => x !== undefined);
  const defined = new Set(Object.values(e.values));
  const nameOf = (n: number): string => e.valuesById[n] ?? String(n);
  const cnst = rules.const === undefined ? undefined : enumNumber(e, rules.const);
  const inList = numbers('in');
  const notIn = numbers('not_in');
  const definedOnly = rules.defined_only === true;
  if (cnst === undefined && inList.length === 0 && notIn.length === 0 && !definedOnly) return null;
  return (value, path, out) => {
    const n = enumNumber(e, value);
    if (n === undefined) return;
    if (cnst !== undefined && n !== cnst) out.push({ path, message: `must be ${nameOf(cnst)}` });
    if (definedOnly && !defined.has(n))
      out.push({
        path,
        message: `${n} is not a defined ${e.name} value; use one of ${Object.keys(e.values).join(', ')}`,
      });
    if (inList.length > 0 && !inList.includes(n))
      out.push({ path, message: `must be one of ${inList.map(nameOf).join(', ')}, got ${nameOf(n)}` });
    if (notIn.includes(n)) out.push({ path, message: `must not be ${nameOf(n)}` });
  };
}

// ---------------------------------------------------------------------------------------------
// Messages.

/** Well-known types with no PGV rules inside, never walked into. */
const OPAQUE = new Set([
  'google.protobuf.Struct',
  'google.protobuf.Value',
  'google.protobuf.ListValue',
  'google.protobuf.Empty',
  'google.protobuf.FieldMask',
  'google.protobuf.Duration',
  'google.protobuf.Timestamp',
]);

function typeName(t: Type): string {
  return t.fullName.slice(1);
}

function lookupType(name: string): Type | undefined {
  try {
    return envoyRoot().lookupType(name);
  } catch {
    return undefined;
  }
}

/** The scalar kind of a field (or a map's value), used to pick the checks that fit. */
function scalarCheck(kind: string, rules: Rules): ValueCheck | null {
  if (kind === 'string') return asRules(rules.string) ? stringCheck(rules.string as Rules) : null;
  if (kind === 'bytes') return asRules(rules.bytes) ? bytesCheck(rules.bytes as Rules) : null;
  if (kind === 'bool') return asRules(rules.bool) ? boolCheck(rules.bool as Rules) : null;
  if (INT_TYPES.has(kind) || kind === 'double' || kind === 'float') {
    const r = asRules(rules[kind]);
    return r ? numberCheck(kind, r) : null;
  }
  return null;
}

/** What one value of a field's element type needs: its own rules plus recursion into messages. */
function elementCheck(
  resolved: Type | Enum | null,
  kind: string,
  rules: Rules | undefined,
): ValueCheck | null {
  const r = rules ?? {};
  if (resolved instanceof Enum) return asRules(r.enum) ? enumCheck(resolved, r.enum as Rules) : null;
  if (!resolved) return scalarCheck(kind, r);
  const name = typeName(resolved);
  const wrapped = WRAPPERS.get(name);
  if (wrapped) return scalarCheck(wrapped, r);
  if (name === 'google.protobuf.Duration')
    return asRules(r.duration) ? durationCheck(r.duration as Rules) : null;
  if (name === 'google.protobuf.Timestamp')
    return asRules(r.timestamp) ? timestampCheck(r.timestamp as Rules) : null;
  if (OPAQUE.has(name)) return null;
  const skip = asRules(r.message)?.skip === true;
  if (name === 'google.protobuf.Any') {
    const ar = asRules(r.any);
    const inList = stringList(ar?.in);
    const notIn = stringList(ar?.not_in);
    return (value, path, out) => {
      if (!isObject(value)) return;
      const url = value['@type'];
      if (typeof url === 'string') {
        if (inList.length > 0 && !inList.includes(url))
          out.push({
            path: join(path, '@type'),
            message: `must be one of ${inList.join(', ')}, got ${show(url)}`,
          });
        if (notIn.includes(url)) out.push({ path: join(path, '@type'), message: `must not be ${show(url)}` });
        if (!skip) validateAny(url, value, path, out);
      }
    };
  }
  if (skip) return null;
  const t = resolved;
  return (value, path, out) => validateMessage(t, value, path, out);
}

/** A field, compiled: what to check when it is present and, when that is a violation, when it is not. */
interface CompiledField {
  readonly name: string;
  readonly present: ValueCheck | null;
  /** Violations of an absent field, with paths relative to the field (prefixed when reported). */
  readonly absent: readonly { message: string }[];
}

interface CompiledType {
  readonly disabled: boolean;
  readonly byKey: ReadonlyMap<string, CompiledField>;
  /** Fields whose absence violates a rule, with both JSON spellings of their name. */
  readonly absentChecks: readonly { field: CompiledField; keys: readonly string[] }[];
  /** `(validate.required)` oneofs: their name and every JSON spelling of their members. */
  readonly requiredOneofs: readonly { name: string; members: readonly string[]; keys: readonly string[] }[];
}

function isSynthetic(o: OneOf | null): boolean {
  // proto3 `optional` fields live in a one-member oneof named after them with a leading `_`.
  return !!o && o.oneof.length === 1 && o.name === `_${o.oneof[0]}`;
}

function compileField(f: Field): CompiledField {
  const rules = fieldRules(f);
  const resolved = (f.resolvedType as Type | Enum | null) ?? null;
  const absent: { message: string }[] = [];
  let present: ValueCheck | null;
  if (f.map) {
    const mr = asRules(rules?.map);
    const keyType = (f as Field & { keyType: string }).keyType;
    const keyCheck = mr && asRules(mr.keys) ? scalarCheck(keyType, mr.keys as Rules) : null;
    const valueCheck = elementCheck(resolved, f.type, asRules(mr?.values));
    const minPairs = mr ? lengthRule(mr, 'min_pairs') : undefined;
    const maxPairs = mr ? lengthRule(mr, 'max_pairs') : undefined;
    if (minPairs !== undefined && minPairs > 0)
      absent.push({ message: `must have at least ${plural(minPairs, 'entry')}, got 0` });
    present =
      !keyCheck && !valueCheck && minPairs === undefined && maxPairs === undefined
        ? null
        : (value, path, out) => {
            if (!isObject(value)) return;
            const keys = Object.keys(value);
            if (minPairs !== undefined && keys.length < minPairs)
              out.push({
                path,
                message: `must have at least ${plural(minPairs, 'entry')}, got ${keys.length}`,
              });
            if (maxPairs !== undefined && keys.length > maxPairs)
              out.push({
                path,
                message: `must have at most ${plural(maxPairs, 'entry')}, got ${keys.length}`,
              });
            for (const k of keys) {
              const at = `${path}["${k}"]`;
              keyCheck?.(k, at, out);
              const v = value[k];
              if (v !== null && v !== undefined) valueCheck?.(v, at, out);
            }
          };
  } else if (f.repeated) {
    const rr = asRules(rules?.repeated);
    const item = elementCheck(resolved, f.type, asRules(rr?.items));
    const minItems = rr ? lengthRule(rr, 'min_items') : undefined;
    const maxItems = rr ? lengthRule(rr, 'max_items') : undefined;
    // PGV's `unique` covers scalars and enums; it has no meaning for messages.
    const unique = rr?.unique === true && !(resolved && !(resolved instanceof Enum));
    if (minItems !== undefined && minItems > 0)
      absent.push({ message: `must have at least ${plural(minItems, 'item')}, got 0` });
    present =
      !item && minItems === undefined && maxItems === undefined && !unique
        ? null
        : (value, path, out) => {
            if (!Array.isArray(value)) return;
            if (minItems !== undefined && value.length < minItems)
              out.push({
                path,
                message: `must have at least ${plural(minItems, 'item')}, got ${value.length}`,
              });
            if (maxItems !== undefined && value.length > maxItems)
              out.push({
                path,
                message: `must have at most ${plural(maxItems, 'item')}, got ${value.length}`,
              });
            if (unique) {
              const seen = new Set<string>();
              value.forEach((v, i) => {
                const key = resolved instanceof Enum ? String(enumNumber(resolved, v)) : JSON.stringify(v);
                if (seen.has(key))
                  out.push({ path: `${path}[${i}]`, message: `repeats ${show(v)}; items must be unique` });
                seen.add(key);
              });
            }
            if (item) for (let i = 0; i < value.length; i++) item(value[i], `${path}[${i}]`, out);
          };
  } else {
    present = elementCheck(resolved, f.type, rules);
    const inOneof = !!f.partOf;
    const r = rules ?? {};
    if (resolved && !(resolved instanceof Enum)) {
      // Message-typed: only `required` speaks about absence.
      const required =
        asRules(r.message)?.required === true ||
        asRules(r.duration)?.required === true ||
        asRules(r.timestamp)?.required === true ||
        asRules(r.any)?.required === true;
      if (required && !inOneof) absent.push({ message: 'is required' });
    } else if (!inOneof && present) {
      // proto3 cannot tell unset from default, so PGV checks the default; rules are static, so
      // the outcome for the default is worked out once here.
      const def = resolved instanceof Enum ? 0 : defaultOf(f.type);
      const found: Violation[] = [];
      present(def, '', found);
      for (const v of found) absent.push({ message: v.message });
    }
  }
  return { name: f.name, present, absent };
}

function defaultOf(kind: string): unknown {
  if (kind === 'string' || kind === 'bytes') return '';
  if (kind === 'bool') return false;
  return 0;
}

const compiled = new WeakMap<Type, CompiledType>();

function compile(t: Type): CompiledType {
  let c = compiled.get(t);
  if (c) return c;
  const disabled =
    optionTrue(t.options as Rules | undefined, t.parsedOptions, '(validate.disabled)') ||
    optionTrue(t.options as Rules | undefined, t.parsedOptions, '(validate.ignored)');
  const byKey = new Map<string, CompiledField>();
  const absentChecks: { field: CompiledField; keys: string[] }[] = [];
  const requiredOneofs: { name: string; members: string[]; keys: string[] }[] = [];
  if (!disabled) {
    for (const f of t.fieldsArray) {
      const cf = compileField(f);
      byKey.set(f.name, cf);
      byKey.set(camel(f.name), cf);
      if (cf.absent.length > 0) absentChecks.push({ field: cf, keys: [...new Set([f.name, camel(f.name)])] });
    }
    for (const o of t.oneofsArray) {
      if (isSynthetic(o)) continue;
      if (!optionTrue(o.options as Rules | undefined, o.parsedOptions, '(validate.required)')) continue;
      requiredOneofs.push({
        name: o.name,
        members: [...o.oneof],
        keys: [...new Set(o.oneof.flatMap((n) => [n, camel(n)]))],
      });
    }
  }
  c = { disabled, byKey, absentChecks, requiredOneofs };
  compiled.set(t, c);
  return c;
}

function isSet(json: JsonObject, keys: readonly string[]): boolean {
  for (const k of keys) {
    const v = json[k];
    if (v !== undefined && v !== null) return true;
  }
  return false;
}

function validateMessage(t: Type, json: unknown, path: string, out: Out): void {
  if (!isObject(json)) return;
  const c = compile(t);
  if (c.disabled) return;
  for (const key in json) {
    const v = json[key];
    if (v === null || v === undefined) continue;
    const f = c.byKey.get(key);
    f?.present?.(v, join(path, f.name), out);
  }
  for (const { field, keys } of c.absentChecks) {
    if (isSet(json, keys)) continue;
    const at = join(path, field.name);
    for (const a of field.absent) out.push({ path: at, message: a.message });
  }
  for (const o of c.requiredOneofs) {
    if (!isSet(json, o.keys)) {
      out.push({ path: join(path, o.name), message: `one of ${o.members.join(', ')} must be set` });
    }
  }
}

function validateAny(url: string, json: JsonObject, path: string, out: Out): void {
  const inner = lookupType(url.slice(url.lastIndexOf('/') + 1));
  if (!inner) return; // an unknown type is the codec's to report
  const name = typeName(inner);
  if (WRAPPERS.has(name) || OPAQUE.has(name)) return;
  validateMessage(inner, json, path, out);
}

/**
 * Checks canonical JSON of the message `typeName` (fully-qualified, no leading dot) against its
 * protoc-gen-validate rules and those of everything it contains, `Any` payloads included. Returns
 * every violation, in document order per message; an empty list means Envoy's validation passes.
 * JSON that does not decode (wrong types, unknown fields) is not reported here: that is
 * `checkJson`'s job, and the two are meant to run together.
 */
export function validate(typeName: string, json: unknown): Violation[] {
  const t = lookupType(typeName);
  if (!t) return [{ path: '', message: `unknown message type ${typeName}` }];
  const out: Violation[] = [];
  if (!isObject(json)) return out;
  validateMessage(t, json, '', out);
  return out;
}
