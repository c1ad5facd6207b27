/**
 * The input stage: SMI and core Kubernetes objects in, a resolved {@link MeshModel} and conditions
 * out. See `model.ts` for the contract translation relies on.
 */
export { buildModel, classifyPort } from './build';
export { type ConditionReason, REASONS, type ReasonInfo } from './conditions';
export { type ParsedYaml, parseYamlObjects } from './load';
export * from './model';
export type {
  Deployment,
  EndpointSlice,
  HttpMatchSpec,
  HttpRouteGroup,
  L4Route,
  MeshConfig,
  Namespace,
  Normalized,
  ObjectMeta,
  Pod,
  Service,
  ServiceAccount,
  ServicePortSpec,
  Split,
  Subject,
  TargetRule,
  TrafficTarget,
} from './normalize';
export { normalizeHeaders, normalizeObject, servedVersions } from './normalize';
