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
 * Longest regular expression accepted, in characters. RE2 in WebAssembly runs out of memory on
 * patterns of a few hundred kilobytes and says so in Emscripten's words, not the user's; and a
 * pattern this long is a mistake, not a route. Checked before RE2 ever sees the pattern.
 */
export const MAX_REGEX_LENGTH = 4096;

/** The problem with a regex's size, or null; phrased to end `<field> ...`. */
export function regexSizeProblem(pattern: string): string | null {
  return pattern.length > MAX_REGEX_LENGTH
    ? `is ${pattern.length} characters long; regular expressions are limited to ${MAX_REGEX_LENGTH} characters`
    : null;
}

/**
 * Checks `pattern` against RE2's syntax. Returns null when it is valid, or a short, lower-case
 * description of the problem (to end a sentence such as `... is not a valid RE2 regular
 * expression: <problem>`).
 */
export function re2Problem(pattern: string): string | null {
  // Callers check the size first with a clearer message; this keeps RE2 safe from any caller.
  if (pattern.length > MAX_REGEX_LENGTH) return `longer than ${MAX_REGEX_LENGTH} characters`;
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
