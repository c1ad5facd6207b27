/**
 * Short names for the generated Envoy API types (`./generated/types`, written by
 * `scripts/generate-envoy-types.js` before every build). The generated names are full proto names
 * with `_` for `.`; these aliases cover the messages Weft builds. Each describes canonical proto3
 * JSON, the form the codec in `./codec` reads and writes, so a value typed here is what gets
 * encoded and validated.
 */
import type * as G from './generated/types';

/** Re-exported so code can name any generated type, e.g. `Envoy.envoy_config_core_v3_Address`. */
export type * as Envoy from './generated/types';

/** A packed message (`google.protobuf.Any`): `@type` plus the fields of the packed message. */
export type Any = G.Any;

/**
 * An `Any` holding a message of type `T`, with its type URL. Field types of `T` are checked; since
 * an `Any` admits any key, a misspelled field name is not, so type the body as `T` first when that
 * matters.
 */
export type Packed<T> = T & Any;

/** `envoy.config.listener.v3.Listener`. */
export type Listener = G.envoy_config_listener_v3_Listener;
/** `envoy.config.listener.v3.FilterChain`. */
export type FilterChain = G.envoy_config_listener_v3_FilterChain;
/** `envoy.config.listener.v3.Filter` (a network filter). */
export type NetworkFilter = G.envoy_config_listener_v3_Filter;
/** `envoy.config.route.v3.RouteConfiguration`. */
export type RouteConfiguration = G.envoy_config_route_v3_RouteConfiguration;
/** `envoy.config.route.v3.VirtualHost`. */
export type VirtualHost = G.envoy_config_route_v3_VirtualHost;
/** `envoy.config.route.v3.Route`. */
export type Route = G.envoy_config_route_v3_Route;
/** `envoy.config.cluster.v3.Cluster`. */
export type Cluster = G.envoy_config_cluster_v3_Cluster;
/** `envoy.config.endpoint.v3.ClusterLoadAssignment`. */
export type ClusterLoadAssignment = G.envoy_config_endpoint_v3_ClusterLoadAssignment;
/** `envoy.extensions.transport_sockets.tls.v3.Secret`. */
export type Secret = G.envoy_extensions_transport_sockets_tls_v3_Secret;
/** `envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager`. */
export type HttpConnectionManager =
  G.envoy_extensions_filters_network_http_connection_manager_v3_HttpConnectionManager;
/** `envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter`. */
export type HttpFilter = G.envoy_extensions_filters_network_http_connection_manager_v3_HttpFilter;
/** `envoy.extensions.filters.http.router.v3.Router`. */
export type Router = G.envoy_extensions_filters_http_router_v3_Router;
/** `envoy.extensions.filters.http.rbac.v3.RBAC` (the HTTP filter). */
export type HttpRbac = G.envoy_extensions_filters_http_rbac_v3_RBAC;
/** `envoy.extensions.filters.network.rbac.v3.RBAC` (the network filter). */
export type NetworkRbac = G.envoy_extensions_filters_network_rbac_v3_RBAC;
/** `envoy.config.rbac.v3.Policy`. */
export type RbacPolicy = G.envoy_config_rbac_v3_Policy;
/** `envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext`. */
export type DownstreamTlsContext = G.envoy_extensions_transport_sockets_tls_v3_DownstreamTlsContext;
/** `envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext`. */
export type UpstreamTlsContext = G.envoy_extensions_transport_sockets_tls_v3_UpstreamTlsContext;
/** `envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy`. */
export type TcpProxy = G.envoy_extensions_filters_network_tcp_proxy_v3_TcpProxy;
/** `envoy.extensions.filters.listener.original_dst.v3.OriginalDst`. */
export type OriginalDst = G.envoy_extensions_filters_listener_original_dst_v3_OriginalDst;
