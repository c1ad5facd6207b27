/** The route stages of a build: HTTPRouteGroups (invalid matches left out) and TCP/UDP routes. */

import { condition } from './conditions';
import { cmp, subjectOf } from './helpers';
import type { Condition, HttpMatch, HttpRouteGroupModel, L4RouteModel } from './model';
import type { HttpRouteGroup, L4Route } from './normalize';

/** The HTTPRouteGroups stage: the models, by `<ns>/<name>`, and what was left out of them. */
export interface RouteGroups {
  readonly list: readonly HttpRouteGroupModel[];
  readonly byKey: ReadonlyMap<string, HttpRouteGroupModel>;
  /** HTTP matches left out of their groups, as `<ns>/<group>/<match>`. */
  readonly rejectedMatches: ReadonlySet<string>;
}

/** The TCPRoute and UDPRoute stage: the models, and each by `<kind>/<ns>/<name>`. */
export interface L4Routes {
  readonly list: readonly L4RouteModel[];
  readonly byKey: ReadonlyMap<string, L4RouteModel>;
}

/**
 * Builds a route group's model. Matches Envoy would refuse are left out and their names added to
 * `rejectedMatches` (as `<ns>/<group>/<match>`), so rules naming them can say why.
 */
export function buildHttpRouteGroup(
  g: HttpRouteGroup,
  conditions: Condition[],
  rejectedMatches: Set<string>,
): HttpRouteGroupModel {
  const firstIndex = new Map<string, number>();
  const invalid = new Map(g.invalid.map((x) => [x.index, x]));
  const matches: HttpMatch[] = [];
  for (const [i, m] of g.matches.entries()) {
    const earlier = firstIndex.get(m.name);
    const bad = invalid.get(i);
    if (bad && earlier === undefined) {
      // The first match of a name claims it even when invalid, so a later duplicate does not
      // silently take its place.
      firstIndex.set(m.name, i);
      rejectedMatches.add(`${g.meta.namespace}/${g.meta.name}/${m.name}`);
      conditions.push(
        condition(
          subjectOf(g),
          'InvalidMatch',
          `${bad.field} ${bad.problem}, so match ${JSON.stringify(m.name)} is left out and allows or splits nothing; ${bad.fix}`,
          bad.field,
        ),
      );
      continue;
    }
    if (earlier !== undefined) {
      conditions.push(
        condition(
          subjectOf(g),
          'DuplicateMatchName',
          `${g.matchesPath}[${i}].name ${JSON.stringify(m.name)} repeats the name of ${g.matchesPath}[${earlier}], so only the first is used; give each match its own name`,
          `${g.matchesPath}[${i}].name`,
        ),
      );
      continue;
    }
    firstIndex.set(m.name, i);
    matches.push({ routeGroup: g.meta.name, ...m });
  }
  matches.sort((a, b) => cmp(a.name, b.name));
  return { namespace: g.meta.namespace, name: g.meta.name, matches };
}

/** A TCPRoute or UDPRoute as the model holds it. */
export function buildL4Route(r: L4Route): L4RouteModel {
  return {
    kind: r.kind,
    namespace: r.meta.namespace,
    name: r.meta.name,
    ports: r.ports,
    matchName: r.matchName,
  };
}
