/**
 * Kubernetes name rules for objects read from a folder. The API server enforces them on what it
 * stores, but a folder has no API server in front of it, and names flow into Envoy resource names,
 * stat prefixes, SPIFFE IDs and log lines: a NUL, a bidirectional control character (text that
 * reads differently from what it is) or a megabyte-long name must stop at the input stage, with a
 * condition that names the field and the rule, not somewhere inside a proxy.
 */

/** A name that breaks a rule: which field, and the end of a sentence saying why. */
export interface NameProblem {
  readonly field: 'metadata.name' | 'metadata.namespace';
  readonly problem: string;
}

/** RFC 1123 label: what Namespace names (and every namespace reference) must be. */
const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 subdomain: what most objects' names must be. */
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** RFC 1035 label: what Service names must be (they become DNS labels and env var prefixes). */
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** C0 and C1 controls, and the Unicode bidirectional formatting characters. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const BIDI = /[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;

interface Rule {
  readonly name: string;
  readonly max: number;
  readonly pattern: RegExp;
  readonly shape: string;
}

const LABEL: Rule = {
  name: 'an RFC 1123 label',
  max: 63,
  pattern: DNS1123_LABEL,
  shape: 'lower-case letters, digits and -, starting and ending with a letter or digit',
};
const SUBDOMAIN: Rule = {
  name: 'an RFC 1123 subdomain',
  max: 253,
  pattern: DNS1123_SUBDOMAIN,
  shape:
    'lower-case letters, digits, - and ., each dot-separated part starting and ending with a letter or digit',
};
const SERVICE: Rule = {
  name: 'an RFC 1035 label',
  max: 63,
  pattern: DNS1035_LABEL,
  shape: 'lower-case letters, digits and -, starting with a letter and ending with a letter or digit',
};

/** The rule for `metadata.name` of a kind, as the API server applies it. */
function nameRule(kind: string): Rule {
  if (kind === 'Namespace') return LABEL;
  if (kind === 'Service') return SERVICE;
  return SUBDOMAIN;
}

/** Hex code point of a character, as `U+202E`. */
function codePoint(ch: string): string {
  return `U+${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
}

function check(value: string, rule: Rule): string | null {
  // Length first: a megabyte name is refused without running any pattern over it.
  if (value.length > rule.max) {
    return `is ${value.length} characters long; it must be ${rule.name}, at most ${rule.max} characters`;
  }
  const control = CONTROL.exec(value) ?? BIDI.exec(value);
  if (control) {
    const what = BIDI.test(control[0]) ? 'a bidirectional control character' : 'a control character';
    return `contains ${what} (${codePoint(control[0])}); it must be ${rule.name}: ${rule.shape}`;
  }
  if (!rule.pattern.test(value)) return `must be ${rule.name}: ${rule.shape}`;
  return null;
}

/**
 * The first Kubernetes name rule `name` or `namespace` of an object of `kind` breaks, or null.
 * An empty or absent namespace means the default one and is not checked.
 */
export function nameProblem(kind: string, name: string, namespace: unknown): NameProblem | null {
  const n = check(name, nameRule(kind));
  if (n !== null) return { field: 'metadata.name', problem: n };
  if (typeof namespace === 'string' && namespace !== '') {
    const ns = check(namespace, LABEL);
    if (ns !== null) return { field: 'metadata.namespace', problem: ns };
  }
  return null;
}

/**
 * A name as it may be shown in a message or used as a condition's object key: control and
 * bidirectional characters escaped (`\u202e`), and anything past 100 characters cut, with the full
 * length said. Only names that break the rules need it; valid names are returned as they are.
 */
export function displayName(value: string): string {
  const cut = value.length > 100 ? value.slice(0, 60) : value;
  let out = '';
  for (const ch of cut) {
    out +=
      CONTROL.test(ch) || BIDI.test(ch) ? `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, '0')}` : ch;
  }
  return value.length > 100 ? `${out}...(${value.length} characters)` : out;
}
