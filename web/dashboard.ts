/**
 * The dashboard page: draws the state Weft pushes over Server-Sent Events (`api/events`) and runs
 * explain queries (`api/explain`). Everything is bundled into one file at build time; the page
 * talks to nothing but the Weft that served it, so it works without internet access.
 */
import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  type ChartConfiguration,
  Legend,
  LinearScale,
  Tooltip,
} from 'chart.js';
import cytoscape from 'cytoscape';
import dagre from 'cytoscape-dagre';
import type { DashboardState, LiveEdge, SplitView } from '../src/dashboard/types';
import type { Condition } from '../src/smi/model';

cytoscape.use(dagre);
Chart.register(BarController, BarElement, CategoryScale, LinearScale, Legend, Tooltip);

const $ = <T extends HTMLElement>(sel: string): T => {
  const e = document.querySelector<T>(sel);
  if (!e) throw new Error(`the page has no ${sel}`);
  return e;
};

/** Builds an element with text content and attributes. */
function el(tag: string, text = '', attrs: Record<string, string> = {}): HTMLElement {
  const e = document.createElement(tag);
  e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

/** Replaces a table body's rows. */
function fillTable(
  sel: string,
  rows: readonly (readonly (string | HTMLElement)[])[],
  cls?: (i: number) => string,
): void {
  const body = $(`${sel} tbody`);
  body.replaceChildren(
    ...rows.map((cells, i) => {
      const tr = el('tr');
      const c = cls?.(i);
      if (c) tr.className = c;
      for (const cell of cells) {
        const td = el('td');
        if (typeof cell === 'string') td.textContent = cell;
        else td.append(cell);
        tr.append(td);
      }
      return tr;
    }),
  );
}

const label = (id: string): string => id.slice(2);
const pct = (n: number | null): string => (n === null ? '-' : `${(100 * n).toFixed(1)}%`);
const ms = (n: number | null): string =>
  n === null ? '-' : n >= 1000 ? `${(n / 1000).toFixed(2)}s` : `${n}ms`;
const edgeLabel = (e: LiveEdge): string =>
  e.denied ? `denied ${e.rps} rps` : `${e.rps} rps ${pct(e.success)} p99 ${ms(e.p99)}`;

// The graph: elements are rebuilt on each state, and laid out again only when the set of nodes
// changes, so a new rate does not make every node jump.
const cy = cytoscape({
  container: $('#graph'),
  wheelSensitivity: 0.3,
  style: [
    {
      selector: 'node',
      style: {
        label: 'data(label)',
        'font-size': 11,
        'text-valign': 'center',
        'text-halign': 'center',
        width: 'label',
        height: 26,
        padding: '6px',
        shape: 'round-rectangle',
        'background-color': '#e3ecfb',
        'border-width': 1,
        'border-color': '#5b7fc7',
      },
    },
    {
      selector: 'node[kind="service"]',
      style: { shape: 'ellipse', 'background-color': '#fff4d6', 'border-color': '#c79a2b' },
    },
    {
      selector: 'node[refused="yes"]',
      style: { 'border-color': '#d93025', 'border-width': 3, color: '#b3261e' },
    },
    {
      selector: 'edge',
      style: { 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', width: 1.5, 'font-size': 10 },
    },
    {
      selector: 'edge[kind="backs"]',
      style: { 'line-style': 'dotted', 'line-color': '#999', 'target-arrow-color': '#999' },
    },
    {
      selector: 'edge[kind="allowed"]',
      style: { 'line-style': 'dashed', 'line-color': '#2e9d5b', 'target-arrow-color': '#2e9d5b' },
    },
    {
      selector: 'edge[kind="live"]',
      style: {
        'line-color': '#2f6fde',
        'target-arrow-color': '#2f6fde',
        width: 'data(width)',
        label: 'data(label)',
        'text-background-color': '#fff',
        'text-background-opacity': 0.8,
      },
    },
    {
      selector: 'edge[kind="denied"]',
      style: {
        'line-color': '#d93025',
        'target-arrow-color': '#d93025',
        width: 3,
        label: 'data(label)',
        color: '#d93025',
        'text-background-color': '#fff',
        'text-background-opacity': 0.8,
      },
    },
  ],
});
let nodeKey = '';

function drawGraph(s: DashboardState): void {
  const nodes = s.nodes.map((n) => ({
    data: {
      id: n.id,
      label: n.denied > 0 ? `${n.name} (${n.denied} denied)` : n.name,
      kind: n.kind,
      ns: n.namespace,
      refused: n.denied > 0 ? 'yes' : 'no',
    },
  }));
  const edges = [
    ...s.nodes.flatMap((n) =>
      n.backends.map((b) => ({ data: { id: `b ${n.id} ${b}`, source: n.id, target: b, kind: 'backs' } })),
    ),
    ...s.allowed.map((e) => ({
      data: { id: `a ${e.from} ${e.to}`, source: e.from, target: e.to, kind: 'allowed' },
    })),
    ...s.live.map((e) => ({
      data: {
        id: `l ${e.from} ${e.to}`,
        source: e.from,
        target: e.to,
        kind: e.denied ? 'denied' : 'live',
        label: edgeLabel(e),
        width: Math.min(8, 1.5 + Math.log2(1 + e.rps)),
      },
    })),
  ];
  // Counts on the container, for people inspecting the page and for the browser test.
  const box = $('#graph');
  box.dataset.nodes = String(nodes.length);
  box.dataset.allowed = String(s.allowed.length);
  box.dataset.live = String(s.live.filter((e) => !e.denied).length);
  box.dataset.denied = String(s.live.filter((e) => e.denied).length);
  box.dataset.refused = String(s.nodes.filter((n) => n.denied > 0).length);
  // Only what changed is touched: existing nodes keep their places, edges get their new numbers.
  const wanted = new Map<string, { data: Record<string, unknown> }>(
    [...nodes, ...edges].map((e) => [e.data.id, e]),
  );
  cy.batch(() => {
    cy.elements()
      .filter((e) => !wanted.has(e.id()))
      .remove();
    for (const [id, e] of wanted) {
      const have = cy.getElementById(id);
      if (have.nonempty()) have.data(e.data);
    }
    cy.add([...nodes, ...edges].filter((e) => cy.getElementById(e.data.id).empty()));
  });
  const key = s.nodes.map((n) => n.id).join(' ');
  if (key !== nodeKey) {
    nodeKey = key;
    cy.layout({ name: 'dagre', rankDir: 'LR', nodeSep: 30, rankSep: 120 } as cytoscape.LayoutOptions).run();
  }
  // How many nodes have a place of their own (all of them, once laid out).
  box.dataset.placed = String(
    new Set(cy.nodes().map((n) => `${Math.round(n.position('x'))},${Math.round(n.position('y'))}`)).size,
  );
}

function drawDenied(s: DashboardState): void {
  const refused = s.nodes.filter((n) => n.denied > 0);
  fillTable(
    '#denied',
    refused.map((n) => [label(n.id), String(n.denied)]),
  );
}

function drawLiveEdges(s: DashboardState): void {
  $('#window').textContent = `live over the last ${s.window}`;
  fillTable(
    '#live-edges',
    s.live.map((e) => [
      label(e.from),
      label(e.to),
      e.rps === 0 && e.success !== null ? '<0.01' : String(e.rps),
      pct(e.success),
      ms(e.p99),
      e.denied ? 'denied' : '',
    ]),
    (i) => (s.live[i]!.denied ? 'denied' : ''),
  );
}

// One chart per split, kept across states so new numbers update it in place.
const charts = new Map<string, Chart<'bar'>>();

function drawSplits(splits: readonly SplitView[]): void {
  const list = $('#split-list');
  const keep = new Set<string>();
  for (const s of splits) {
    const key = `${s.namespace}/${s.name}`;
    keep.add(key);
    let box = list.querySelector<HTMLElement>(`[data-split="${CSS.escape(key)}"]`);
    if (!box) {
      box = el('div', '', { class: 'split', 'data-split': key });
      const info = el('div');
      info.append(el('h3'), el('table'));
      const chartBox = el('div', '', { class: 'chart' });
      const canvas = el('canvas') as HTMLCanvasElement;
      chartBox.append(canvas);
      box.append(info, chartBox);
      list.append(box);
      const config: ChartConfiguration<'bar'> = {
        type: 'bar',
        data: {
          labels: [],
          datasets: [
            { label: 'configured %', data: [], backgroundColor: '#9cb8ea' },
            { label: 'observed %', data: [], backgroundColor: '#2f6fde' },
          ],
        },
        options: {
          animation: false,
          responsive: true,
          maintainAspectRatio: false,
          scales: { y: { min: 0, max: 100 } },
        },
      };
      charts.set(key, new Chart(canvas, config));
    }
    box.querySelector('h3')!.textContent = `${key} (root ${s.rootService})`;
    const table = box.querySelector('table')!;
    table.replaceChildren(
      el('tr'),
      ...s.backends.map((b) => {
        const tr = el('tr', '', { 'data-backend': b.service });
        tr.append(
          el('td', b.service),
          el('td', `weight ${b.weight}`, { 'data-weight': String(b.weight) }),
          el('td', `configured ${b.configuredPercent}%`),
          el(
            'td',
            b.observedPercent === null ? 'observed -' : `observed ${b.observedPercent}% (${b.calls} calls)`,
            { 'data-calls': String(b.calls) },
          ),
        );
        return tr;
      }),
    );
    table.firstElementChild!.replaceChildren(
      ...['Backend', 'Weight', 'Configured', 'Observed'].map((h) => el('th', h)),
    );
    const chart = charts.get(key)!;
    chart.data.labels = s.backends.map((b) => b.service);
    chart.data.datasets[0]!.data = s.backends.map((b) => b.configuredPercent);
    chart.data.datasets[1]!.data = s.backends.map((b) => b.observedPercent ?? 0);
    chart.update();
  }
  for (const [key, chart] of charts)
    if (!keep.has(key)) {
      chart.destroy();
      charts.delete(key);
      list.querySelector(`[data-split="${CSS.escape(key)}"]`)?.remove();
    }
  if (splits.length === 0 && !list.querySelector('p')) list.append(el('p', 'No TrafficSplit in the mesh.'));
  else if (splits.length > 0) list.querySelector('p')?.remove();
}

function drawProxies(s: DashboardState): void {
  fillTable(
    '#proxy-table',
    s.proxies.map((p) => {
      const nack = p.types.find((t) => t.nack !== null);
      const state = el('span', nack ? 'NACK' : p.synced ? 'synced' : 'syncing', {
        class: nack ? 'bad' : p.synced ? 'ok' : '',
      });
      return [
        p.id,
        p.flavor,
        p.group ?? '-',
        state,
        p.types
          .map((t) => `${t.type} ${t.acked === t.sent ? '✓' : '…'}${t.nack ? ` NACK: ${t.nack}` : ''}`)
          .join('  '),
      ];
    }),
  );
}

function drawConditions(list: readonly Condition[]): void {
  fillTable(
    '#condition-table',
    list.map((c) => [c.object, `${c.type}=${c.status}`, `${c.severity} ${c.reason}`, c.message]),
    (i) => (list[i]!.severity === 'Error' ? 'denied' : ''),
  );
}

function drawPatches(s: DashboardState): void {
  fillTable(
    '#patch-table',
    s.patches.map((p) => [
      `${p.namespace}/${p.name}`,
      p.status,
      p.groups.join(', ') || '-',
      p.messages.join('\n') || '-',
    ]),
    (i) => (s.patches[i]!.status === 'Failed' ? 'denied' : ''),
  );
}

function draw(s: DashboardState): void {
  $('#at').textContent =
    `as of ${new Date(s.at).toLocaleTimeString()}${s.permissive ? ' · permissive mode' : ''}`;
  drawGraph(s);
  drawLiveEdges(s);
  drawDenied(s);
  drawSplits(s.splits);
  drawProxies(s);
  drawConditions(s.conditions);
  drawPatches(s);
  document.body.dataset.updated = s.at;
}

function connect(): void {
  const live = $('#live');
  // `?window=1m` on the page's address narrows the metrics window (default: Weft's, 5m).
  const window = new URLSearchParams(location.search).get('window');
  const source = new EventSource(`api/events${window ? `?window=${encodeURIComponent(window)}` : ''}`);
  source.addEventListener('open', () => {
    live.textContent = 'live';
    live.dataset.state = 'live';
  });
  source.addEventListener('state', (ev) =>
    draw(JSON.parse((ev as MessageEvent<string>).data) as DashboardState),
  );
  // EventSource reconnects by itself; the badge says meanwhile that what is shown may be old.
  source.addEventListener('error', () => {
    live.textContent = 'disconnected, retrying…';
    live.dataset.state = 'down';
  });
}

$('#explain-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target as HTMLFormElement);
  const q = new URLSearchParams();
  for (const [k, v] of form) if (typeof v === 'string' && v.trim() !== '') q.set(k, v.trim());
  const out = $('#explain-result');
  out.textContent = 'asking…';
  delete out.dataset.allowed;
  const res = await fetch(`api/explain?${q}`);
  const body = (await res.json()) as {
    error?: string;
    allowed?: boolean;
    routing?: string;
    summary?: string;
  };
  if (!res.ok) {
    out.replaceChildren(el('span', body.error ?? `HTTP ${res.status}`, { class: 'bad verdict' }));
    out.dataset.allowed = 'error';
    return;
  }
  out.dataset.allowed = String(body.allowed);
  out.replaceChildren(
    el('strong', body.allowed ? 'allowed' : 'denied', { class: 'verdict' }),
    el('p', body.routing ?? ''),
    el('p', body.summary ?? ''),
  );
});

connect();
