/** Output types of translation. */
import type { Json } from './common';

/** The xDS resources of one proxy, in canonical JSON, each list sorted by name. */
export interface ProxyResources {
  listeners: Json[];
  routes: Json[];
  clusters: Json[];
  endpoints: Json[];
  secrets: Json[];
}
