#!/usr/bin/env node
'use strict';
// Generates src/envoy/generated/types.ts: TypeScript interfaces, in canonical proto3 JSON shape,
// for the Envoy messages Weft builds and everything they reach through message fields. It runs
// before tsc (see the `build` script) and reads the same `.proto` files as src/envoy/protos.ts.
//
// Naming: a message or enum is named by its full proto name with dots turned into underscores
// (envoy.config.cluster.v3.Cluster -> envoy_config_cluster_v3_Cluster), so every name is unique
// and can be traced back to its proto. src/envoy/types.ts gives the common ones short aliases.
//
// Shape (what the JSON codec accepts and emits): proto field names (snake_case), every field
// optional, Duration / Timestamp / FieldMask as strings, wrappers as their plain value, 64-bit
// integers as `string | number`, bytes as base64 strings, enums as unions of their value names,
// maps as objects, Struct as a plain object, and Any as `{ '@type': string; ... }`. Members of a
// oneof are all optional; the codec rejects two set at once.
//
// Output is deterministic: types are sorted by name and nothing depends on time or file order.
const { existsSync, mkdirSync, writeFileSync, readFileSync } = require('node:fs');
const { dirname, join } = require('node:path');
const protobuf = require('protobufjs');

const started = process.hrtime.bigint();
const ROOT = join(__dirname, '..');
const OUT = join(ROOT, 'src', 'envoy', 'generated', 'types.ts');

/** The messages Weft's code builds; the output holds them and what they reach. */
const ROOTS = [
  'envoy.config.listener.v3.Listener',
  'envoy.config.route.v3.RouteConfiguration',
  'envoy.config.cluster.v3.Cluster',
  'envoy.config.endpoint.v3.ClusterLoadAssignment',
  'envoy.extensions.transport_sockets.tls.v3.Secret',
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'envoy.extensions.filters.http.router.v3.Router',
  'envoy.extensions.filters.http.rbac.v3.RBAC',
  'envoy.extensions.filters.network.rbac.v3.RBAC',
  'envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
  'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
  'envoy.extensions.filters.listener.original_dst.v3.OriginalDst',
];

const FILES = [
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
];

/**
 * How deep message fields are followed from the roots. Envoy's API reaches some recursive
 * matcher trees; past this depth a message is typed as a plain JSON object instead.
 */
const MAX_DEPTH = 24;

function load() {
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const includes = [
    join(deps, 'envoy-api'),
    join(deps, 'xds'),
    join(deps, 'googleapis'),
    join(deps, 'protoc-gen-validate'),
    dirname(require.resolve('protobufjs/package.json')),
  ];
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of includes) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync(FILES, { keepCase: true, alternateCommentMode: false });
  root.resolveAll();
  return root;
}

const tsName = (fullName) => fullName.replace(/^\./, '').replace(/\./g, '_');
const bare = (fullName) => fullName.replace(/^\./, '');

const SCALARS = {
  string: 'string',
  bool: 'boolean',
  bytes: 'string',
  double: 'number',
  float: 'number',
  int32: 'number',
  uint32: 'number',
  sint32: 'number',
  fixed32: 'number',
  sfixed32: 'number',
  int64: 'string | number',
  uint64: 'string | number',
  sint64: 'string | number',
  fixed64: 'string | number',
  sfixed64: 'string | number',
};

const WELL_KNOWN = {
  'google.protobuf.Any': 'Any',
  'google.protobuf.Duration': 'string',
  'google.protobuf.Timestamp': 'string',
  'google.protobuf.FieldMask': 'string',
  'google.protobuf.Struct': '{ [key: string]: unknown }',
  'google.protobuf.Value': 'unknown',
  'google.protobuf.ListValue': 'unknown[]',
  'google.protobuf.Empty': 'Record<string, never>',
  'google.protobuf.DoubleValue': 'number',
  'google.protobuf.FloatValue': 'number',
  'google.protobuf.Int64Value': 'string | number',
  'google.protobuf.UInt64Value': 'string | number',
  'google.protobuf.Int32Value': 'number',
  'google.protobuf.UInt32Value': 'number',
  'google.protobuf.BoolValue': 'boolean',
  'google.protobuf.StringValue': 'string',
  'google.protobuf.BytesValue': 'string',
};

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function main() {
  const root = load();
  const messages = new Map(); // name -> Type
  const enums = new Map(); // name -> Enum
  const capped = new Set();
  // Breadth-first, so each message's depth is its shortest distance from a root.
  let frontier = ROOTS.map((n) => root.lookupType(n));
  for (let depth = 0; frontier.length > 0; depth++) {
    const next = [];
    for (const t of frontier) {
      const name = bare(t.fullName);
      if (messages.has(name) || WELL_KNOWN[name]) continue;
      if (depth > MAX_DEPTH) {
        capped.add(name);
        continue;
      }
      messages.set(name, t);
      capped.delete(name);
      for (const f of t.fieldsArray) {
        const rt = f.resolvedType;
        if (rt instanceof protobuf.Enum) enums.set(bare(rt.fullName), rt);
        else if (rt && !messages.has(bare(rt.fullName))) next.push(rt);
      }
    }
    frontier = next;
  }

  const typeOf = (f) => {
    const rt = f.resolvedType;
    if (!rt) return SCALARS[f.type] ?? 'unknown';
    const name = bare(rt.fullName);
    if (WELL_KNOWN[name]) return WELL_KNOWN[name];
    if (rt instanceof protobuf.Enum) return tsName(name);
    if (capped.has(name) && !messages.has(name)) return '{ [key: string]: unknown }';
    return tsName(name);
  };
  const wrap = (t) => (t.includes(' ') && !t.startsWith('{') ? `(${t})` : t);

  const lines = [
    '// Generated by scripts/generate-envoy-types.js from the Envoy API protos; do not edit.',
    '// Canonical proto3 JSON shapes (proto field names); names are full proto names with `_` for `.`.',
    '',
    '/** A packed message: its type URL and, alongside, the fields of that message. */',
    "export interface Any {\n  '@type': string;\n  [key: string]: unknown;\n}",
    '',
  ];
  for (const name of [...enums.keys()].sort()) {
    const e = enums.get(name);
    const values = Object.keys(e.values)
      .map((v) => JSON.stringify(v).replace(/^"|"$/g, "'"))
      .join(' | ');
    lines.push(`/** Enum \`${name}\`. */`, `export type ${tsName(name)} = ${values};`, '');
  }
  for (const name of [...messages.keys()].sort()) {
    const t = messages.get(name);
    lines.push(`/** Message \`${name}\`. */`);
    const fields = t.fieldsArray;
    if (fields.length === 0) {
      lines.push(`export type ${tsName(name)} = Record<string, never>;`, '');
      continue;
    }
    lines.push(`export interface ${tsName(name)} {`);
    for (const f of fields) {
      let type = typeOf(f);
      if (f.map) type = `{ [key: string]: ${type} }`;
      else if (f.repeated) type = `${wrap(type)}[]`;
      const key = IDENT.test(f.name) ? f.name : `'${f.name}'`;
      const notes = [];
      if (f.partOf && !(f.partOf.oneof.length === 1 && f.partOf.name === `_${f.name}`))
        notes.push(`oneof \`${f.partOf.name}\``);
      if (f.options?.deprecated) notes.push('@deprecated');
      if (notes.length > 0) lines.push(`  /** ${notes.join('; ')} */`);
      lines.push(`  ${key}?: ${type};`);
    }
    lines.push('}', '');
  }
  const text = `${lines.join('\n')}`;
  mkdirSync(dirname(OUT), { recursive: true });
  // Rewriting an unchanged file would only make tsc's incremental build redo its work.
  const before = existsSync(OUT) ? readFileSync(OUT, 'utf8') : '';
  if (before !== text) writeFileSync(OUT, text);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(
    `generate-envoy-types: ${messages.size} messages, ${enums.size} enums` +
      (capped.size > 0 ? `, ${capped.size} beyond depth ${MAX_DEPTH} typed as objects` : '') +
      ` -> src/envoy/generated/types.ts (${before === text ? 'unchanged' : 'written'}) in ${ms.toFixed(0)} ms`,
  );
}

main();
