/**
 * A small Prometheus metrics registry (text exposition format 0.0.4): counters, gauges and
 * summaries with labels. Values can also be read at scrape time from callbacks, so stages expose
 * their own counters without pushing into the registry.
 */

/** Label values by label name. */
export type Labels = Readonly<Record<string, string>>;

type Kind = 'counter' | 'gauge' | 'summary';

interface Family {
  name: string;
  help: string;
  kind: Kind;
  values: Map<string, { labels: Labels; value: number }>;
  collect?: () => { labels: Labels; value: number }[];
  observations?: Map<string, { labels: Labels; count: number; sum: number }>;
}

function key(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  return `{${keys.map((k) => `${k}="${escapeLabel(labels[k] ?? '')}"`).join(',')}}`;
}

/** A metrics registry rendered by {@link Metrics.render}. */
export class Metrics {
  private readonly families = new Map<string, Family>();

  private family(name: string, help: string, kind: Kind): Family {
    let f = this.families.get(name);
    if (!f) {
      f = { name, help, kind, values: new Map() };
      this.families.set(name, f);
    }
    return f;
  }

  /** Adds `by` (default 1) to a counter. */
  inc(name: string, help: string, labels: Labels = {}, by = 1): void {
    const f = this.family(name, help, 'counter');
    const k = key(labels);
    const cur = f.values.get(k);
    f.values.set(k, { labels, value: (cur?.value ?? 0) + by });
  }

  /** Sets a gauge. */
  set(name: string, help: string, value: number, labels: Labels = {}): void {
    this.family(name, help, 'gauge').values.set(key(labels), { labels, value });
  }

  /** Records one observation of a summary (count and sum). */
  observe(name: string, help: string, value: number, labels: Labels = {}): void {
    const f = this.family(name, help, 'summary');
    f.observations ??= new Map();
    const k = key(labels);
    const cur = f.observations.get(k) ?? { labels, count: 0, sum: 0 };
    f.observations.set(k, { labels, count: cur.count + 1, sum: cur.sum + value });
  }

  /** Registers a metric whose samples are read at scrape time. */
  collect(
    name: string,
    help: string,
    kind: 'counter' | 'gauge',
    fn: () => { labels: Labels; value: number }[],
  ): void {
    const f = this.family(name, help, kind);
    f.collect = fn;
  }

  /** The current value of a counter or gauge sample (for tests and status views). */
  value(name: string, labels: Labels = {}): number | undefined {
    const f = this.families.get(name);
    if (!f) return undefined;
    if (f.collect) return f.collect().find((s) => key(s.labels) === key(labels))?.value;
    return f.values.get(key(labels))?.value;
  }

  /** Prometheus text exposition of every metric, sorted by name. */
  render(): string {
    const out: string[] = [];
    for (const f of [...this.families.values()].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      out.push(`# HELP ${f.name} ${f.help}`, `# TYPE ${f.name} ${f.kind}`);
      if (f.kind === 'summary') {
        for (const o of f.observations?.values() ?? []) {
          out.push(
            `${f.name}_count${labelText(o.labels)} ${o.count}`,
            `${f.name}_sum${labelText(o.labels)} ${o.sum}`,
          );
        }
        continue;
      }
      const samples = f.collect ? f.collect() : [...f.values.values()];
      for (const s of samples) out.push(`${f.name}${labelText(s.labels)} ${s.value}`);
    }
    return `${out.join('\n')}\n`;
  }
}
