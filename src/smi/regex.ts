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
  // Most patterns are plain paths with a few operators: those are valid RE2 by construction, and
  // compiling each in RE2 (a few milliseconds in WebAssembly) made a 10,000-match group take seconds.
  if (isPlainRe2(pattern)) return null;
  let problem: string | null = null;
  try {
    const re = new RE2(pattern, 'u');
    // re2-wasm never frees its compiled programs on its own, and its WebAssembly heap is fixed
    // (16 MiB): left alone, a few thousand checks exhaust it and every later check fails.
    freeRe2(re);
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

/** Frees the WebAssembly side of a compiled `RE2` (its embind wrapper's `delete`). */
function freeRe2(re: RE2): void {
  const wrapper = (re as unknown as { wrapper?: { delete?: () => void } }).wrapper;
  wrapper?.delete?.();
}

/** Escapes RE2 accepts after a backslash, outside and inside character classes. */
const PLAIN_ESCAPES = new Set([...'dDwWsSntrfv', ...'\\.+*?()|[]{}^$-/#&~!@%=:;,<>\'"`_ ']);
const CLASS_SHORTHANDS = new Set([...'dDwWsS']);

/**
 * True when `pattern` is in a plain subset of RE2 syntax that RE2 always accepts: printable ASCII
 * literals, backslash escapes of punctuation and of `d w s n t r f v` (and their capitals where
 * they exist), `.`, character classes with increasing ranges, `(...)` and `(?:...)` groups
 * (balanced), `|`, the anchors `^` and `$`, and `*`, `+`, `?` (optionally lazy) after something
 * they can repeat. Counted repetition (`{n,m}`), flags, named groups and non-ASCII text are left to
 * RE2 itself: they are where its rules (and its program-size limit) get subtle. The subset's program
 * size is linear in the pattern's length, which {@link MAX_REGEX_LENGTH} bounds. False means only
 * "ask RE2", not "invalid".
 */
export function isPlainRe2(pattern: string): boolean {
  let depth = 0;
  // Whether the previous token can take a repetition operator (a literal, class, group or `.`).
  let repeatable = false;
  let i = 0;
  const n = pattern.length;
  while (i < n) {
    const c = pattern.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
    const ch = pattern[i]!;
    switch (ch) {
      case '\\': {
        const e = pattern[i + 1];
        if (e === undefined || !PLAIN_ESCAPES.has(e)) return false;
        i += 2;
        repeatable = true;
        continue;
      }
      case '[': {
        const end = plainClassEnd(pattern, i);
        if (end < 0) return false;
        i = end;
        repeatable = true;
        continue;
      }
      case '(':
        if (pattern[i + 1] === '?') {
          if (pattern[i + 2] !== ':') return false;
          i += 3;
        } else i++;
        depth++;
        // RE2 refuses deep nesting (its limit is 1,000); anything deep is left to RE2 to judge.
        if (depth > 100) return false;
        repeatable = false;
        continue;
      case ')':
        if (depth === 0) return false;
        depth--;
        i++;
        repeatable = true;
        continue;
      case '*':
      case '+':
      case '?':
        if (!repeatable) return false;
        i++;
        if (pattern[i] === '?') i++;
        // `a**` and `a+*` are errors in RE2: nothing may repeat a repetition.
        repeatable = false;
        continue;
      case '|':
        i++;
        repeatable = false;
        continue;
      case '^':
      case '$':
        i++;
        repeatable = false;
        continue;
      case '{':
      case '}':
      case ']':
        return false;
      default:
        i++;
        repeatable = true;
    }
  }
  return depth === 0;
}

/** Index just past a plain character class starting at `start` (`[`), or -1 when it is not plain. */
function plainClassEnd(pattern: string, start: number): number {
  let i = start + 1;
  if (pattern[i] === '^') i++;
  let items = 0;
  for (;;) {
    const ch = pattern[i];
    if (ch === undefined) return -1;
    const c = pattern.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return -1;
    if (ch === ']') return items > 0 ? i + 1 : -1;
    if (ch === '[') return -1;
    let lo: number;
    if (ch === '\\') {
      const e = pattern[i + 1];
      if (e === undefined || !PLAIN_ESCAPES.has(e)) return -1;
      i += 2;
      items++;
      // A shorthand such as \d cannot be a range's end; other escapes stand for themselves.
      if (CLASS_SHORTHANDS.has(e) || 'ntrfv'.includes(e)) {
        if (pattern[i] === '-' && pattern[i + 1] !== ']') return -1;
        continue;
      }
      lo = e.charCodeAt(0);
    } else {
      lo = c;
      i++;
      items++;
    }
    if (pattern[i] === '-' && pattern[i + 1] !== ']' && pattern[i + 1] !== undefined) {
      const hiCh = pattern[i + 1]!;
      if (hiCh === '\\' || hiCh === '[') return -1;
      const hi = pattern.charCodeAt(i + 1);
      if (hi < 0x20 || hi > 0x7e || hi < lo) return -1;
      i += 2;
    }
  }
}
