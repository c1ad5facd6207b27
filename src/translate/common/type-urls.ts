/** Type URLs of every typed config translation emits inside an `Any`. */

const PREFIX = 'type.googleapis.com/';

/** `@type` values, by what they configure. */
export const TYPE_URL = {
  hcm: `${PREFIX}envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`,
  router: `${PREFIX}envoy.extensions.filters.http.router.v3.Router`,
  httpRbac: `${PREFIX}envoy.extensions.filters.http.rbac.v3.RBAC`,
  networkRbac: `${PREFIX}envoy.extensions.filters.network.rbac.v3.RBAC`,
  tcpProxy: `${PREFIX}envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`,
  originalDst: `${PREFIX}envoy.extensions.filters.listener.original_dst.v3.OriginalDst`,
  upstreamTls: `${PREFIX}envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`,
  downstreamTls: `${PREFIX}envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`,
  httpProtocolOptions: `${PREFIX}envoy.extensions.upstreams.http.v3.HttpProtocolOptions`,
} as const;

/**
 * Key of the HTTP protocol options in a cluster's `typed_extension_protocol_options`: Envoy looks
 * the options up by this extension name.
 */
export const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
