/**
 * A file of raw xDS resources served as they are: the simplest way to run Weft's xDS server
 * without SMI. The file is YAML or JSON:
 *
 * ```yaml
 * groups:
 *   mesh:                      # proxies whose node.cluster is "mesh" get these
 *     listeners: [ ... ]       # canonical proto3 JSON (Envoy's YAML form)
 *     routes: [ ... ]
 *     clusters: [ ... ]
 *     endpoints: [ ... ]
 *     secrets: [ ... ]
 * ```
 *
 * Every resource is checked strictly (unknown fields, types, Envoy's validation rules) before any
 * of the file is served: a file with any error is rejected whole and the last good one stays.
 */
import { parse } from 'yaml';
import { checkJson } from '../envoy/codec';
import { validate as validateRules } from '../envoy/validate';
import type { JsonObject, SnapshotInput } from '../xds/cache/snapshot';
import {
  CLUSTER,
  ENDPOINT,
  LISTENER,
  messageNameOf,
  type ResourceTypeUrl,
  ROUTE,
  SECRET,
} from '../xds/resource-types';

/** The keys of a group and the type each holds. */
export const GROUP_KEYS: Readonly<Record<string, ResourceTypeUrl>> = {
  listeners: LISTENER,
  routes: ROUTE,
  clusters: CLUSTER,
  endpoints: ENDPOINT,
  secrets: SECRET,
};

/** Result of reading a resources file. */
export type ResourcesFileResult =
  | { ok: true; groups: Map<string, SnapshotInput> }
  | { ok: false; errors: string[] };

/** Optional extra check (protoc-gen-validate rules) applied to every resource. */
export type ResourceCheck = (typeName: string, json: unknown) => { path: string; message: string }[];

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Parses and checks the text of a resources file; `source` names it in errors. `extraCheck`
 * defaults to Envoy's protoc-gen-validate rules.
 */
export function readResourcesFile(
  text: string,
  source: string,
  extraCheck: ResourceCheck = validateRules,
): ResourcesFileResult {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    return {
      ok: false,
      errors: [`${source}: not valid YAML or JSON: ${e instanceof Error ? e.message : String(e)}`],
    };
  }
  if (!isObject(doc) || !isObject(doc.groups)) {
    return { ok: false, errors: [`${source}: expected a top-level "groups" map of group name to resources`] };
  }
  const errors: string[] = [];
  const groups = new Map<string, SnapshotInput>();
  for (const [group, body] of Object.entries(doc.groups)) {
    if (!isObject(body)) {
      errors.push(
        `${source}: groups.${group}: expected a map with listeners/routes/clusters/endpoints/secrets`,
      );
      continue;
    }
    const input: SnapshotInput = {};
    for (const [key, list] of Object.entries(body)) {
      const typeUrl = GROUP_KEYS[key];
      const at = `groups.${group}.${key}`;
      if (!typeUrl) {
        errors.push(`${source}: ${at}: unknown key; use one of ${Object.keys(GROUP_KEYS).join(', ')}`);
        continue;
      }
      if (!Array.isArray(list)) {
        errors.push(`${source}: ${at}: expected a list of resources`);
        continue;
      }
      const typeName = messageNameOf(typeUrl);
      const seen = new Set<string>();
      list.forEach((res, i) => {
        const issues = [...checkJson(typeName, res), ...extraCheck(typeName, res)];
        for (const issue of issues) errors.push(`${source}: ${at}[${i}].${issue.path}: ${issue.message}`);
        const name = isObject(res) ? (typeUrl === ENDPOINT ? res.cluster_name : res.name) : undefined;
        if (typeof name !== 'string' || name === '') {
          errors.push(
            `${source}: ${at}[${i}]: every resource needs a ${typeUrl === ENDPOINT ? 'cluster_name' : 'name'}`,
          );
        } else if (seen.has(name)) {
          errors.push(`${source}: ${at}[${i}]: duplicate name "${name}"`);
        } else seen.add(name);
      });
      input[typeUrl] = list as JsonObject[];
    }
    groups.set(group, input);
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, groups };
}
