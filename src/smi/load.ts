/**
 * Turning YAML text into raw objects for `buildModel`. The caller reads the files; this module only
 * parses text, so the input stage stays free of I/O.
 */
import { FAILSAFE_SCHEMA, loadAll, Type } from 'js-yaml';
import { parseAllDocuments } from 'yaml';
import type { Condition } from './model';
import { show } from './schemas';

/** What {@link parseYamlObjects} returns. */
export interface ParsedYaml {
  /** Every document that is a mapping, in file order. */
  readonly objects: unknown[];
  /** One condition per document that could not be used, in file order. */
  readonly conditions: Condition[];
  /** The documents that are not valid YAML (a `YamlParseError` condition each), in file order. */
  readonly parseErrors: YamlParseError[];
}

/** Where and why a document is not valid YAML, for logs that point at the spot. */
export interface YamlParseError {
  /** 1-based document number in the file. */
  readonly document: number;
  /** 1-based line. */
  readonly line: number;
  /** 1-based column, when the parser gives one. */
  readonly column: number | null;
  /** The parser's reason, without its own position suffix. */
  readonly reason: string;
}

/** 1-based line of a character offset. */
function lineOf(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Where a document's content starts (after any `---`), for messages. */
function startOf(doc: {
  readonly range: readonly number[];
  readonly contents: { readonly range?: readonly number[] } | null;
}): number {
  return doc.contents?.range?.[0] ?? doc.range[0] ?? 0;
}

/** A condition on a file of the inputs (object `File//<name>`), leaving its content out. */
export function fileCondition(sourceName: string, reason: string, message: string, field: string): Condition {
  return {
    object: `File//${sourceName}`,
    type: 'Accepted',
    status: 'False',
    severity: 'Error',
    reason,
    field,
    message: `File ${sourceName}: ${message}`,
  };
}

// ---------------------------------------------------------------- the fast path
//
// The `yaml` library is the reference: it gives the error positions, the alias limit and the
// scalar rules of YAML 1.2's core schema that users see. It is also about ten times slower than
// js-yaml on large files (1.3 s against 0.1 s for a 10,000-match HTTPRouteGroup), so plain files
// are read by js-yaml with a schema that resolves scalars exactly as the `yaml` library's core
// schema does, and anything where the two could disagree goes to the `yaml` library instead.

/** A scalar type of YAML 1.2's core schema, resolved by the same patterns as the `yaml` library. */
function coreScalar(tag: string, rules: Rules): Type {
  const find = (text: string) => rules.find(([re]) => re.test(text));
  return new Type(tag, {
    kind: 'scalar',
    resolve: (data: unknown) => typeof data === 'string' && find(data) !== undefined,
    construct: (data: string) => find(data)![1](data),
  });
}

type Rules = readonly (readonly [RegExp, (text: string) => unknown])[];
const NULL: Rules = [[/^(?:~|[Nn]ull|NULL)?$/, () => null]];
const BOOL: Rules = [[/^(?:[Tt]rue|TRUE|[Ff]alse|FALSE)$/, (t) => t[0] === 't' || t[0] === 'T']];
const INT: Rules = [
  [/^[-+]?[0-9]+$/, (t) => Number.parseInt(t, 10)],
  [/^0o[0-7]+$/, (t) => Number.parseInt(t.slice(2), 8)],
  [/^0x[0-9a-fA-F]+$/, (t) => Number.parseInt(t.slice(2), 16)],
];
const FLOAT: Rules = [
  [/^[-+]?\.(?:inf|Inf|INF)$/, (t) => (t.startsWith('-') ? -Infinity : Infinity)],
  [/^\.(?:nan|NaN|NAN)$/, () => Number.NaN],
  [/^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+$/, (t) => Number.parseFloat(t)],
  [/^[-+]?(?:\.[0-9]+|[0-9]+\.[0-9]*)$/, (t) => Number.parseFloat(t)],
];
const CORE_SCHEMA = FAILSAFE_SCHEMA.extend({
  implicit: [
    coreScalar('tag:yaml.org,2002:null', NULL),
    coreScalar('tag:yaml.org,2002:bool', BOOL),
    coreScalar('tag:yaml.org,2002:int', INT),
    coreScalar('tag:yaml.org,2002:float', FLOAT),
  ],
});

/**
 * Whether a key, as js-yaml hands it over, could have been a plain scalar of another type: the
 * `yaml` library turns such keys into strings its own way (`null:` becomes `""`), so those files go
 * to it. A quoted key that looks like one only costs the slower parse.
 */
function typedKey(key: string): boolean {
  return [NULL, BOOL, INT, FLOAT].some((rules) => rules.some(([re]) => re.test(key)));
}

/** Whether any mapping under `value` has a key {@link typedKey} refuses. */
function hasTypedKey(value: unknown): boolean {
  if (typeof value !== 'object' || value === null) return false;
  if (Array.isArray(value)) return value.some(hasTypedKey);
  for (const [k, v] of Object.entries(value)) if (typedKey(k) || hasTypedKey(v)) return true;
  return false;
}

/**
 * Where js-yaml and the `yaml` library could read the same text differently, or where only the
 * latter guards (aliases: its expansion limit): directives, anchors, aliases, tags, explicit keys
 * and collections used as keys. A match inside a quoted string only costs the slower parse.
 */
const NEEDS_REFERENCE = /^%|(?:^|[\s[{,])[&*!]|(?:^|\s)\?(?:\s|$)|[\]}]\s*:(?:\s|$)/m;

/**
 * The objects of `text` when js-yaml reads it without error, outside {@link NEEDS_REFERENCE},
 * and every document is a mapping or empty; otherwise null, and the `yaml` library parses it (so
 * that every message and position comes from one parser).
 */
export function fastYamlObjects(text: string): unknown[] | null {
  if (NEEDS_REFERENCE.test(text)) return null;
  let docs: unknown[];
  try {
    docs = loadAll(text, null, { schema: CORE_SCHEMA });
  } catch {
    // Syntax errors, duplicate keys and nesting beyond the stack are the `yaml` library's to word.
    return null;
  }
  const objects: unknown[] = [];
  for (const d of docs) {
    if (d === null || d === undefined) continue;
    if (typeof d !== 'object' || Array.isArray(d) || hasTypedKey(d)) return null;
    objects.push(d);
  }
  return objects;
}

/**
 * Parses multi-document YAML (`---` separated) into raw objects. Empty documents are skipped. A
 * document that fails to parse gives a `YamlParseError` condition naming the file, the document and
 * the line, and is left out; a document that parses to something other than a mapping gives
 * `InvalidObject`. Other documents are unaffected. `sourceName` only labels conditions.
 */
export function parseYamlObjects(text: string, sourceName: string): ParsedYaml {
  const objects: unknown[] = [];
  const conditions: Condition[] = [];
  const parseErrors: YamlParseError[] = [];
  const fast = fastYamlObjects(text);
  if (fast) return { objects: fast, conditions, parseErrors };
  const docs = parseAllDocuments(text);
  // An empty stream (no documents at all) is not an array.
  if (!Array.isArray(docs)) return { objects, conditions, parseErrors };
  for (const [i, doc] of docs.entries()) {
    const field = `documents[${i}]`;
    const number = i + 1;
    const error = doc.errors[0];
    if (error) {
      const at = error.linePos?.[0];
      const where = at ? `line ${at.line}, column ${at.col}` : `line ${lineOf(text, error.pos[0])}`;
      const what = (error.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      parseErrors.push({
        document: number,
        line: at ? at.line : lineOf(text, error.pos[0]),
        column: at ? at.col : null,
        reason: what,
      });
      conditions.push(
        fileCondition(
          sourceName,
          'YamlParseError',
          `document ${number} is not valid YAML at ${where}: ${what}; the document is left out; fix the YAML there`,
          field,
        ),
      );
      continue;
    }
    let value: unknown;
    try {
      value = doc.toJS();
    } catch (e) {
      // toJS refuses, for example, alias expansions beyond its safety limit.
      const what = e instanceof Error ? e.message : String(e);
      parseErrors.push({ document: number, line: lineOf(text, startOf(doc)), column: null, reason: what });
      conditions.push(
        fileCondition(
          sourceName,
          'YamlParseError',
          `document ${number} (line ${lineOf(text, startOf(doc))}) cannot be read: ${what}; the document is left out; simplify it`,
          field,
        ),
      );
      continue;
    }
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      conditions.push(
        fileCondition(
          sourceName,
          'InvalidObject',
          `document ${number} (line ${lineOf(text, startOf(doc))}) is ${show(value)}, not a Kubernetes object (a mapping with apiVersion, kind and metadata.name); the document is left out; fix or remove it`,
          field,
        ),
      );
      continue;
    }
    objects.push(value);
  }
  return { objects, conditions, parseErrors };
}
