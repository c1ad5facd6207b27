/**
 * Envoy's v3 API as protobufjs reflection, loaded from the `.proto` files that ship in
 * `@grpc/grpc-js-xds`'s `deps/` folder. Everything that encodes, decodes or validates an Envoy
 * message goes through the single {@link envoyRoot} so the types are resolved once per process.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import * as protobuf from 'protobufjs';

/** The proto files whose messages Weft builds, serves or validates; their imports come along. */
export const ENVOY_PROTO_FILES: readonly string[] = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/discovery/v3/discovery.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/bootstrap/v3/bootstrap.proto',
  'envoy/config/metrics/v3/metrics_service.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/tls/v3/secret.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/udp/udp_proxy/v3/udp_proxy.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/access_loggers/stream/v3/stream.proto',
  'udpa/type/v1/typed_struct.proto',
  'xds/type/v3/typed_struct.proto',
];

/** Locates the `deps/` folder of `@grpc/grpc-js-xds`, which holds Envoy's API protos. */
export function protoDepsDir(): string {
  const pkg = require.resolve('@grpc/grpc-js-xds/package.json');
  return join(dirname(pkg), 'deps');
}

/** Include directories searched, in order, when a proto file imports another. */
export function protoIncludeDirs(): string[] {
  const deps = protoDepsDir();
  const pbjs = dirname(require.resolve('protobufjs/package.json'));
  // protobufjs ships google/protobuf/*.proto (descriptor, any, struct, ...) at its root.
  return [
    join(deps, 'envoy-api'),
    join(deps, 'xds'),
    join(deps, 'googleapis'),
    join(deps, 'protoc-gen-validate'),
    pbjs,
  ];
}

let cached: protobuf.Root | undefined;

/** Loads (once) and returns the resolved protobufjs root holding Envoy's API. */
export function envoyRoot(): protobuf.Root {
  if (cached) return cached;
  const includes = protoIncludeDirs();
  const root = new protobuf.Root();
  root.resolvePath = (_origin: string, target: string): string => {
    for (const dir of includes) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    return target;
  };
  root.loadSync([...ENVOY_PROTO_FILES], { keepCase: true, alternateCommentMode: false });
  root.resolveAll();
  cached = root;
  return root;
}

/** Looks up a message type by its fully-qualified name (no leading dot); throws when unknown. */
export function messageType(fullName: string): protobuf.Type {
  return envoyRoot().lookupType(fullName);
}
