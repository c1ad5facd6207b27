/** The settings stage of a build: the mesh's one MeshConfig, with defaults. */

import { condition } from './conditions';
import { compareAge, subjectOf } from './helpers';
import { type Condition, DEFAULT_CLUSTER_DOMAIN, DEFAULT_TRUST_DOMAIN, type MeshSettings } from './model';
import type { MeshConfig } from './normalize';

/**
 * The mesh settings: those of the oldest MeshConfig (every other one gets `MeshConfigConflict`),
 * each unset field at its default.
 */
export function resolveSettings(configs: readonly MeshConfig[], conditions: Condition[]): MeshSettings {
  const sorted = [...configs].sort(compareAge);
  const winner = sorted[0];
  for (const loser of sorted.slice(1)) {
    conditions.push(
      condition(
        subjectOf(loser),
        'MeshConfigConflict',
        `MeshConfig ${winner!.meta.name} is older (or as old and first by name) and is the one used; a mesh has one MeshConfig; delete this one or merge its settings into ${winner!.meta.name}`,
      ),
    );
  }
  return {
    trustDomain: winner?.trustDomain ?? DEFAULT_TRUST_DOMAIN,
    permissive: winner?.permissive ?? false,
    clusterDomain: winner?.clusterDomain ?? DEFAULT_CLUSTER_DOMAIN,
    outboundPassthrough: winner?.outboundPassthrough ?? true,
  };
}
