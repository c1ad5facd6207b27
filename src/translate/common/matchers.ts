/**
 * Builders for `envoy.type.matcher.v3` messages and the regular expressions SMI matches become.
 *
 * Envoy's `safe_regex` (RE2) always matches the whole input. SMI anchors `pathRegex` at the start
 * only, so `/api` must match `/api/books`: the path regex `<re>` becomes `(?:<re>).*`. The group
 * keeps alternations inside it (`/a|/b` becomes `(?:/a|/b).*`, not `/a|/b.*`); a leading `^` or a
 * trailing `$` written by the user stays meaningful (`(?:/api$).*` still only matches `/api`).
 * Header values are matched as written, as a full match, as Envoy and gRPC do.
 */
import type { JsonObject } from '../types';

/** Escapes a string for use as a literal inside an RE2 regex. */
export function reLiteral(s: string): string {
  return s.replace(/[\\^$.|?*+()[\]{}]/g, '\\$&');
}

/** The full-match regex equivalent to SMI's start-anchored `pathRegex`. */
export function startAnchored(re: string): string {
  return `(?:${re}).*`;
}

/** RegexMatcher (RE2, Envoy's default engine). */
export function regexMatcher(re: string): JsonObject {
  return { regex: re };
}

/** StringMatcher: exact. */
export function exactString(s: string): JsonObject {
  return { exact: s };
}

/** StringMatcher: prefix. */
export function prefixString(s: string): JsonObject {
  return { prefix: s };
}

/** StringMatcher: full-match regex. */
export function regexString(re: string): JsonObject {
  return { safe_regex: regexMatcher(re) };
}

/**
 * StringMatcher for the `:method` pseudo-header: exact for one method, an alternation of literals
 * for several. Callers pass upper-cased methods; null (any method) needs no matcher at all.
 */
export function methodString(methods: readonly string[]): JsonObject {
  return methods.length === 1 ? exactString(methods[0]!) : regexString(methods.map(reLiteral).join('|'));
}

/** HeaderMatcher with a StringMatcher. */
export function headerMatcher(name: string, match: JsonObject): JsonObject {
  return { name, string_match: match };
}

/** PathMatcher for SMI's start-anchored `pathRegex` (RBAC permissions). */
export function pathMatcher(pathRegex: string): JsonObject {
  return { path: regexString(startAnchored(pathRegex)) };
}
