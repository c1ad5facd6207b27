/**
 * Turning YAML text into raw objects for `buildModel`. The caller reads the files; this module only
 * parses text, so the input stage stays free of I/O.
 */
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
