/**
 * What `weft top` and `weft topology` print, from TrafficMetrics lists: rows of success rate,
 * requests per second and latency percentiles, and a graph of who calls whom (text or Graphviz
 * DOT). Pure: lists in, text out.
 */
import { renderTable } from '../cli/table';
import { namesResource, parseSecondsQuantity, type ResourceRef, type TrafficMetrics } from './api';
import { parseWindow } from './store';

/** One row of `weft top`. */
export interface TopRow {
  namespace: string;
  name: string;
  /** Calls that got an answer other than 5xx. */
  success: number;
  failure: number;
  /** Requests per second over the window. */
  rps: number;
  /** Milliseconds, when there were calls. */
  p50?: number;
  p90?: number;
  p99?: number;
}

function value(t: TrafficMetrics, name: string): string | undefined {
  return t.metrics.find((m) => m.name === name)?.value;
}

/** The {@link TopRow} of one TrafficMetrics (its name given, for split backends). */
export function topRow(t: TrafficMetrics, name = t.resource.name ?? ''): TopRow {
  const success = Number(value(t, 'success_count') ?? 0);
  const failure = Number(value(t, 'failure_count') ?? 0);
  const seconds = (parseWindow(t.window) ?? 30_000) / 1000;
  const ms = (n: string): number | undefined => {
    const v = value(t, n);
    return v === undefined ? undefined : parseSecondsQuantity(v);
  };
  const row: TopRow = {
    namespace: t.resource.namespace ?? '',
    name,
    success,
    failure,
    rps: (success + failure) / seconds,
  };
  const p50 = ms('p50_response_latency');
  const p90 = ms('p90_response_latency');
  const p99 = ms('p99_response_latency');
  if (p50 !== undefined) row.p50 = p50;
  if (p90 !== undefined) row.p90 = p90;
  if (p99 !== undefined) row.p99 = p99;
  return row;
}

function rate(r: TopRow): string {
  const n = r.success + r.failure;
  return n === 0 ? '-' : `${((100 * r.success) / n).toFixed(2)}%`;
}

function latency(ms: number | undefined): string {
  if (ms === undefined) return '-';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)}s` : `${ms < 10 ? ms.toFixed(1) : Math.round(ms)}ms`;
}

/** The `weft top` table (the spec's `kubectl traffic top`). */
export function topTable(rows: readonly TopRow[]): string {
  return renderTable(
    ['NAMESPACE', 'NAME', 'SUCCESS', 'RPS', 'LATENCY_P50', 'LATENCY_P90', 'LATENCY_P99'],
    rows.map((r) => [
      r.namespace,
      r.name,
      rate(r),
      `${r.rps.toFixed(1)}rps`,
      latency(r.p50),
      latency(r.p90),
      latency(r.p99),
    ]),
  );
}

/** One edge of the topology: `from` called `to`. */
export interface TopologyEdge {
  from: string;
  to: string;
  row: TopRow;
}

/** A resource's name as the graph shows it: `<ns>/<name>`, or the kind's for other kinds. */
export function nodeName(r: ResourceRef, kind: string): string {
  const base = r.namespace ? `${r.namespace}/${r.name}` : (r.name ?? '');
  return r.kind === kind ? base : `${r.kind.toLowerCase()}:${base}`;
}

/** The edges of a graph from each resource's `edges` list (its `to` items), sorted. */
export function topologyEdges(
  lists: readonly { items: readonly TrafficMetrics[] }[],
  kind: string,
): TopologyEdge[] {
  const out: TopologyEdge[] = [];
  for (const l of lists)
    for (const t of l.items) {
      if (t.edge.direction !== 'to' || !namesResource(t.edge.resource)) continue;
      out.push({ from: nodeName(t.resource, kind), to: nodeName(t.edge.resource, kind), row: topRow(t) });
    }
  return out.sort((a, b) => a.from.localeCompare(b.from) || a.to.localeCompare(b.to));
}

/** The graph as text, one edge a line. */
export function topologyText(edges: readonly TopologyEdge[]): string {
  if (edges.length === 0) return 'no traffic in the window\n';
  return renderTable(
    ['FROM', '', 'TO', 'SUCCESS', 'RPS', 'LATENCY_P99'],
    edges.map((e) => [e.from, '-->', e.to, rate(e.row), `${e.row.rps.toFixed(1)}rps`, latency(e.row.p99)]),
  );
}

/** The graph in Graphviz's DOT language; edges are labelled with success rate, rate and p99. */
export function topologyDot(edges: readonly TopologyEdge[]): string {
  const q = (s: string): string => `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  const nodes = [...new Set(edges.flatMap((e) => [e.from, e.to]))].sort();
  const lines = ['digraph weft {', '  rankdir=LR;', '  node [shape=box];'];
  for (const n of nodes) lines.push(`  ${q(n)};`);
  for (const e of edges)
    lines.push(
      `  ${q(e.from)} -> ${q(e.to)} [label=${q(`${rate(e.row)} ${e.row.rps.toFixed(1)}rps p99 ${latency(e.row.p99)}`)}];`,
    );
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
