/**
 * The Grafana dashboards in `deploy/grafana` and the metric names their queries use: every panel
 * target's PromQL and every templating query (`label_values(<metric>, <label>)`), reduced to the
 * metric names they select. The check that each name is exported is in the Envoy tier's
 * dashboard test, against real scrapes of Weft and of a sidecar.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where the dashboards are, from the compiled test file. */
export const GRAFANA_DIR = join(__dirname, '..', '..', '..', 'deploy', 'grafana');

/** PromQL words that look like names but are not metrics (operators, modifiers). */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'inf',
  'nan',
]);

/**
 * The metric names a PromQL expression selects. Strings, label matchers, range and subquery
 * brackets and grouping clauses are removed first; what is left that looks like a name and is not
 * called like a function (`rate(`) nor a keyword is a metric.
 */
export function promqlMetricNames(expr: string): string[] {
  const s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/(?<![\w$.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || KEYWORDS.has(m[1]!.toLowerCase())) continue;
    names.add(m[1]!);
  }
  return [...names].sort();
}

/** One query of a dashboard, where it is. */
export interface DashboardQuery {
  readonly dashboard: string;
  readonly where: string;
  readonly expr: string;
}

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** Every query of every dashboard in {@link GRAFANA_DIR} (panels, nested rows, templating). */
export function dashboardQueries(dir = GRAFANA_DIR): DashboardQuery[] {
  const out: DashboardQuery[] = [];
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()) {
    const d = JSON.parse(readFileSync(join(dir, file), 'utf8')) as {
      panels?: Panel[];
      templating?: { list?: { name: string; query?: string | { query?: string } }[] };
    };
    const walk = (panels: readonly Panel[]): void => {
      for (const p of panels) {
        for (const t of p.targets ?? [])
          if (t.expr) out.push({ dashboard: file, where: `panel "${p.title ?? ''}"`, expr: t.expr });
        walk(p.panels ?? []);
      }
    };
    walk(d.panels ?? []);
    for (const v of d.templating?.list ?? []) {
      const q = typeof v.query === 'string' ? v.query : v.query?.query;
      const m = q ? /^label_values\(\s*([^,)]+)/.exec(q) : null;
      // label_values(<selector>, <label>): only the selector names a metric.
      if (m) out.push({ dashboard: file, where: `variable $${v.name}`, expr: m[1]! });
    }
  }
  return out;
}

/** The metric names a Prometheus text exposition holds, histogram and summary series included. */
export function exportedNames(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\w+)/.exec(line);
    if (type) {
      names.add(type[1]!);
      const suffixes =
        type[2] === 'histogram'
          ? ['_bucket', '_sum', '_count']
          : type[2] === 'summary'
            ? ['_sum', '_count']
            : [];
      for (const s of suffixes) names.add(type[1]! + s);
      continue;
    }
    const sample = /^([A-Za-z_:][A-Za-z0-9_:]*)[{ ]/.exec(line);
    if (sample) names.add(sample[1]!);
  }
  return names;
}
