/**
 * RE2 syntax check for `pathRegex` and header regexes, with the real RE2 engine (`re2-wasm`, the
 * build of Google's RE2 that `@grpc/grpc-js-xds` itself matches routes with).
 *
 * Why here: a regex that Envoy refuses makes it reject the whole route configuration or RBAC
 * filter of every proxy that carries it, so one typo in one HTTPRouteGroup would cost unrelated
 * routes their updates. Catching it in the input stage turns that into a condition on the group and
 * leaves out only the offending match.
 */
import { RE2 } from 're2-wasm';

const cache = new Map<string, string | null>();

/**
 * Checks `pattern` against RE2's syntax. Returns null when it is valid, or a short, lower-case
 * description of the problem (to end a sentence such as `... is not a valid RE2 regular
 * expression: <problem>`).
 */
export function re2Problem(pattern: string): string | null {
  const known = cache.get(pattern);
  if (known !== undefined) return known;
  let problem: string | null = null;
  try {
    new RE2(pattern, 'u');
  } catch (e) {
    // RE2's message reads `Invalid regular expression: /<pattern>/u: <reason>: <fragment>`.
    const message = e instanceof Error ? e.message : String(e);
    // The pattern is echoed with `/` escaped, so cut at the last `/u: ` rather than at its length.
    const at = message.lastIndexOf('/u: ');
    const rest = at >= 0 ? message.slice(at + 4) : message;
    // RE2 appends `: <fragment>`; the fragment repeats what the caller already quotes.
    const colon = rest.indexOf(': ');
    problem = colon > 0 ? rest.slice(0, colon) : rest;
  }
  if (cache.size > 10_000) cache.clear();
  cache.set(pattern, problem);
  return problem;
}
