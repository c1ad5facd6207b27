/**
 * An estimate of RE2's program size for a pattern, for the limit Envoy enforces on every
 * `RegexMatcher` (`CompiledGoogleReMatcher` in Envoy's source/common/common/regex.cc compiles the
 * pattern and refuses it when `RE2::ProgramSize()` exceeds the runtime value
 * `re2.max_program_size.error_level`, 100 unless set).
 *
 * Why an estimate: the RE2 build Weft carries (`re2-wasm`) does not expose `ProgramSize()`, so the
 * size is computed here from the pattern's shape with costs measured on Envoy 1.40's RE2 (each
 * pattern padded past the limit so Envoy printed its exact size; `test/envoy/patch-judge.test.ts`
 * compares the two). Where RE2 shares instructions (alternations of single characters, common
 * prefixes, character classes it merges) this counts them apart, and Unicode classes other than
 * `\pL` are given a flat, generous cost: the estimate errs high, so a pattern near the limit may
 * be refused natively that Envoy would take; Envoy, when at hand, has the last word.
 */

/** Instructions every program has: fail, match and the unanchored `.*?` prefix. */
const OVERHEAD = 4;

/** Costs of escapes, as measured (one ASCII range is one instruction). */
const ESCAPES: Record<string, number> = {
  d: 1,
  D: 2,
  w: 3,
  W: 5,
  s: 3,
  S: 4,
  b: 1,
  B: 1,
  A: 1,
  z: 1,
};

/** A Unicode class RE2 must spell out in UTF-8 byte ranges: measured \pL is 7, others vary. */
const UNICODE_CLASS = 40;

function utf8Length(cp: number): number {
  return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

class Estimator {
  private i = 0;
  private readonly chars: string[];
  private dotAll = false;

  constructor(pattern: string) {
    this.chars = [...pattern];
  }

  run(): number {
    const n = this.alternation();
    if (this.i < this.chars.length) throw new Error('unbalanced )');
    return n;
  }

  private peek(): string | undefined {
    return this.chars[this.i];
  }

  /** a|b|c: RE2's flattened program spends no instruction on the choice itself (measured). */
  private alternation(): number {
    let total = this.concat();
    while (this.peek() === '|') {
      this.i++;
      total += this.concat();
    }
    return total;
  }

  private concat(): number {
    let total = 0;
    while (this.i < this.chars.length && this.peek() !== '|' && this.peek() !== ')') {
      total += this.repeat(this.atom());
    }
    return total;
  }

  private repeat(size: number): number {
    let out = size;
    for (;;) {
      const c = this.peek();
      if (c === '*') out = out + 0;
      else if (c === '+' || c === '?') out = out + 1;
      else if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(this.chars.slice(this.i, this.i + 16).join(''));
        if (!m) return out;
        const min = Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' ? undefined : Number(m[3]);
        // x{n} is n copies; x{n,m} adds (m-n) optional copies; x{n,} adds a loop (x+).
        out = max === undefined ? min * out + 1 : min * out + (max - min) * (out + 1);
        this.i += m[0].length;
        if (this.peek() === '?') this.i++;
        continue;
      } else return out;
      this.i++;
      if (this.peek() === '?') this.i++; // lazy: same program size
    }
  }

  private atom(): number {
    const c = this.chars[this.i++]!;
    if (c === '(') return this.group();
    if (c === '[') return this.charClass();
    if (c === '.') return this.dotAll ? 1 : 2;
    if (c === '^') return 0;
    if (c === '$') return 1;
    if (c === '\\') return this.escape();
    return utf8Length(c.codePointAt(0)!);
  }

  private group(): number {
    let capture = true;
    let flagsOnly = false;
    if (this.peek() === '?') {
      this.i++;
      if (this.peek() === 'P' || this.peek() === '<') {
        while (this.i < this.chars.length && this.chars[this.i] !== '>') this.i++;
        this.i++;
      } else {
        capture = false;
        let flags = '';
        while (this.i < this.chars.length && this.peek() !== ':' && this.peek() !== ')') {
          flags += this.chars[this.i++];
        }
        const on = flags.split('-')[0] ?? '';
        if (on.includes('s')) this.dotAll = true;
        if (this.peek() === ')') flagsOnly = true;
        this.i++;
      }
    }
    if (flagsOnly) return 0;
    const inner = this.alternation();
    if (this.peek() !== ')') throw new Error('missing )');
    this.i++;
    // A capture is a pair of Capture instructions around its contents.
    return inner + (capture ? 2 : 0);
  }

  private escape(): number {
    const c = this.chars[this.i++];
    if (c === undefined) throw new Error('trailing \\');
    if (c in ESCAPES) return ESCAPES[c]!;
    if (c === 'p' || c === 'P') {
      let name = this.chars[this.i++] ?? '';
      if (name === '{') {
        name = '';
        while (this.i < this.chars.length && this.chars[this.i] !== '}') name += this.chars[this.i++];
        this.i++;
      }
      const base = name === 'L' ? 7 : UNICODE_CLASS;
      return c === 'P' ? base + 1 : base;
    }
    if (c === 'x') {
      let hex = '';
      if (this.peek() === '{') {
        this.i++;
        while (this.i < this.chars.length && this.chars[this.i] !== '}') hex += this.chars[this.i++];
        this.i++;
      } else {
        hex = this.chars.slice(this.i, this.i + 2).join('');
        this.i += 2;
      }
      return utf8Length(Number.parseInt(hex, 16) || 0);
    }
    if (c === 'Q') {
      let n = 0;
      while (this.i < this.chars.length && !(this.chars[this.i] === '\\' && this.chars[this.i + 1] === 'E')) {
        n += utf8Length(this.chars[this.i++]!.codePointAt(0)!);
      }
      this.i += 2;
      return n;
    }
    return utf8Length(c.codePointAt(0)!);
  }

  /**
   * A bracket class: one instruction per ASCII range, a byte-range chain per non-ASCII one, one
   * more when negated (the complement reaches into multi-byte UTF-8), all as measured.
   */
  private charClass(): number {
    let negated = false;
    if (this.peek() === '^') {
      negated = true;
      this.i++;
    }
    let cost = 0;
    let first = true;
    let prev: number | undefined;
    while (this.i < this.chars.length && (first || this.peek() !== ']')) {
      first = false;
      const c = this.chars[this.i++]!;
      if (c === '[' && this.peek() === ':') {
        while (this.i < this.chars.length && !(this.chars[this.i] === ':' && this.chars[this.i + 1] === ']'))
          this.i++;
        this.i += 2;
        cost += 2;
        prev = undefined;
        continue;
      }
      if (c === '-' && prev !== undefined && this.peek() !== ']') {
        const hi = this.chars[this.i++]!;
        const cp = hi === '\\' ? (this.chars[this.i++] ?? '').codePointAt(0)! : hi.codePointAt(0)!;
        // The range's start was already counted; a range wider than its start costs its end's width.
        cost += Math.max(0, utf8Length(cp) - utf8Length(prev));
        prev = undefined;
        continue;
      }
      if (c === '\\') {
        const e = this.chars[this.i++] ?? '';
        if (e in ESCAPES) {
          cost += ESCAPES[e]!;
          prev = undefined;
          continue;
        }
        if (e === 'p' || e === 'P') {
          this.i--; // back to the p, where escape() reads from
          cost += this.escape();
          prev = undefined;
          continue;
        }
        prev = e.codePointAt(0);
        cost += utf8Length(prev ?? 0);
        continue;
      }
      prev = c.codePointAt(0)!;
      cost += utf8Length(prev);
    }
    if (this.peek() !== ']') throw new Error('missing ]');
    this.i++;
    return cost + (negated ? 1 : 0);
  }
}

/**
 * RE2's program size for `pattern`, estimated (see the module comment), or undefined when the
 * pattern cannot be read (its syntax is checked elsewhere, with RE2 itself).
 */
export function re2ProgramSize(pattern: string): number | undefined {
  try {
    return OVERHEAD + new Estimator(pattern).run();
  } catch {
    return undefined;
  }
}

/** Envoy's default `re2.max_program_size.error_level`. */
export const RE2_MAX_PROGRAM_SIZE = 100;
