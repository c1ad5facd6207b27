/**
 * The assembly of `weft serve`: one place that wires sources, the compiler, the snapshot cache,
 * the xDS and admin servers and identity together, for the CLI, the demo, the conformance drivers
 * and the tests alike.
 */
export { injectorFromFlags, type RunningServe, type ServeOptions, startServe } from './folder';
export { envoyGroupIdentity, type ServeIdentity, type ServeIdentityOptions } from './identity';
export {
  DEFAULT_PROXY_IMAGE,
  DEFAULT_WEFT_IMAGE,
  defaultInjector,
  type KubeServeOptions,
  type RunningKubeServe,
  startKubeServe,
} from './kube';
