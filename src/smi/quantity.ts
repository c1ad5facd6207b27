/**
 * Kubernetes resource quantities (`500m`, `1`, `2Ki`, `1e3`), as used by TrafficSplit v1alpha1
 * backend weights, parsed exactly into fractions, and the rule that turns relative weights into
 * integers a proxy can use.
 */

/** An exact non-negative rational number `num / den` with `den > 0`. */
export interface Fraction {
  readonly num: bigint;
  readonly den: bigint;
}

// Grammar of a Kubernetes quantity: a signed decimal number, then an optional decimal SI suffix,
// binary suffix or decimal exponent.
const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

const DECIMAL_SUFFIX: Readonly<Record<string, number>> = {
  n: -9,
  u: -6,
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18,
};

const BINARY_SUFFIX: Readonly<Record<string, bigint>> = {
  Ki: 1n << 10n,
  Mi: 1n << 20n,
  Gi: 1n << 30n,
  Ti: 1n << 40n,
  Pi: 1n << 50n,
  Ei: 1n << 60n,
};

// Exponents this large are not weights anyone means; refusing them keeps bigint sizes small.
const MAX_EXPONENT = 64;

/**
 * Parses a quantity (a string like `500m`, or a plain number as YAML gives for `weight: 1`) into an
 * exact non-negative fraction. Returns null for anything that is not a quantity, for negative
 * values, and for absurd exponents.
 */
export function parseQuantity(value: string | number): Fraction | null {
  const text = typeof value === 'number' ? numberText(value) : value.trim();
  if (text === null) return null;
  const m = QUANTITY.exec(text);
  if (!m) return null;
  const [, sign, digits, suffix = ''] = m as unknown as [string, string, string, string | undefined];
  const [whole, frac = ''] = digits.split('.') as [string, string | undefined];
  let num = BigInt(`${whole}${frac}` || '0');
  let exp = -frac.length;
  if (suffix in BINARY_SUFFIX) {
    num *= BINARY_SUFFIX[suffix]!;
  } else if (suffix in DECIMAL_SUFFIX) {
    exp += DECIMAL_SUFFIX[suffix]!;
  } else {
    exp += Number(suffix.slice(1));
  }
  if (Math.abs(exp) > MAX_EXPONENT) return null;
  if (sign === '-' && num !== 0n) return null;
  return exp >= 0 ? reduce(num * 10n ** BigInt(exp), 1n) : reduce(num, 10n ** BigInt(-exp));
}

function numberText(n: number): string | null {
  if (!Number.isFinite(n)) return null;
  // String() gives `1e+21` for large numbers, which the exponent branch of the grammar accepts.
  return String(n).replace('e+', 'e');
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

function reduce(num: bigint, den: bigint): Fraction {
  const g = gcd(num, den);
  return g > 1n ? { num: num / g, den: den / g } : { num, den };
}

/**
 * Turns exact relative weights into the smallest integers with exactly the same ratios: bring all
 * fractions to a common denominator, then divide by the greatest common divisor of the results.
 * `500m, 1` gives `1, 2`; `50m, 50m` gives `1, 1`; zeros stay zero.
 */
export function toRelativeIntegers(weights: readonly Fraction[]): bigint[] {
  const lcm = weights.reduce((acc, w) => (acc / gcd(acc, w.den)) * w.den, 1n);
  const scaled = weights.map((w) => w.num * (lcm / w.den));
  const g = scaled.reduce((acc, w) => gcd(acc, w), 0n);
  return g > 1n ? scaled.map((w) => w / g) : scaled;
}

/** Largest total weight of one split: Envoy weights are uint32 and their sum must fit too. */
export const MAX_TOTAL_WEIGHT = 0xffffffffn;

/** Total that weights are scaled to when their sum does not fit in {@link MAX_TOTAL_WEIGHT}. */
export const RESCALED_TOTAL = 1_000_000n;

/**
 * Makes weights fit a proxy: when their sum exceeds {@link MAX_TOTAL_WEIGHT}, scales them to a total
 * of about {@link RESCALED_TOTAL}, rounding half up, and keeps every non-zero weight at least 1 so
 * no backend silently loses all traffic. Returns the weights and whether they were rescaled.
 */
export function fitWeights(weights: readonly bigint[]): { weights: number[]; rescaled: boolean } {
  const total = weights.reduce((a, b) => a + b, 0n);
  if (total <= MAX_TOTAL_WEIGHT) return { weights: weights.map(Number), rescaled: false };
  const scaled = weights.map((w) => {
    if (w === 0n) return 0;
    const r = (w * RESCALED_TOTAL * 2n + total) / (2n * total);
    return Number(r > 0n ? r : 1n);
  });
  return { weights: scaled, rescaled: true };
}
