/**
 * The web dashboard in a real browser (Debian's Chromium, driven by playwright-core) against a
 * running Weft with real Envoy sidecars and real traffic: the topology shows allowed and live
 * edges; the split's weights and observed share render and a split
 * edit shows up without a reload; proxies, conditions and an EnvoyPatch render; an explain query
 * answers. Screenshots go to `test-artifacts/` (ignored by git; for CI to keep).
 *
 * Pods: buyer (may call store's `/open`), thief (may use store's TCP port only: its HTTP calls
 * are refused by store's sidecar), store-v1 and store-v2 behind the Service `store`, split 90/10.
 *
 * Needs root, ip, iptables, unshare, setpriv, Envoy and Chromium; skips saying what is missing.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { findEnvoy, NO_ENVOY } from '../../src/envoy/binary';
import { setLogLevel } from '../../src/log';
import { EnvoyMesh, type MeshPod } from '../../src/netns/mesh';
import { netnsUnavailable } from '../../src/netns/system';
import { dashboardQueries, exportedNames, promqlMetricNames } from '../deploy/grafana-queries';
import {
  buyerToStore,
  OTHER_TARGETS,
  PORT,
  STORE_SPLIT,
  startTierPods,
  TIER_ROUTES,
  TIER_SERVICE_ACCOUNTS,
  type TierAddresses,
  type TierPod,
  tierAddresses,
  tierWorkloads,
} from '../envoy/tier-fixture';
import { ConfigDir } from '../mesh/mesh-fixture';

setLogLevel(process.env.WEFT_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

const CHROMIUM = process.env.WEFT_CHROMIUM ?? '/usr/bin/chromium';
const envoy = findEnvoy();
const missing =
  [
    netnsUnavailable(),
    envoy ? undefined : NO_ENVOY,
    existsSync(CHROMIUM)
      ? undefined
      : `no Chromium at ${CHROMIUM} (apt-get install chromium, or set WEFT_CHROMIUM)`,
  ]
    .filter((r) => r !== undefined)
    .join('; ') || undefined;

const ARTIFACTS = join(__dirname, '..', '..', '..', 'test-artifacts');
const RUNNING: readonly TierPod[] = ['buyer', 'thief', 'store-v1', 'store-v2'];
/** Generous: the sidecars flush their stats every 5 s, and the machine may be busy. */
const BOUND = 60_000;
/** HTTP calls thief makes that store-v1's sidecar refuses. */
const THIEF_CALLS = 5;

/** A TrafficTarget naming a route group that does not exist: a condition with its fix. */
const BROKEN_TARGET = `apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: { name: broken, namespace: shop }
spec:
  destination: { kind: ServiceAccount, name: store, namespace: shop }
  rules: [{ kind: HTTPRouteGroup, name: no-such-paths }]
  sources: [{ kind: ServiceAccount, name: buyer, namespace: shop }]
`;

/** An EnvoyPatch on buyer's cluster for store-v1. */
const PATCH = `apiVersion: weft.dev/v1alpha1
kind: EnvoyPatch
metadata: { name: slower-connect, namespace: shop }
spec:
  selector: { matchLabels: { app: buyer } }
  patches:
    - target: { type: Cluster, name: "outbound|${PORT.http1}|shop/store-v1" }
      jsonPatch:
        - { op: add, path: /connect_timeout, value: 3s }
`;

function split(v1: number, v2: number): string {
  return STORE_SPLIT.replace('weight: 90', `weight: ${v1}`).replace('weight: 10', `weight: ${v2}`);
}

describe('Web dashboard in Chromium, real sidecars and traffic', { skip: missing }, () => {
  let work: string;
  let config: ConfigDir;
  let mesh: EnvoyMesh;
  let A: TierAddresses;
  let browser: Browser;
  let page: Page;
  const pods = new Map<TierPod, MeshPod>();

  const shot = async (name: string): Promise<void> => {
    await page.screenshot({ path: join(ARTIFACTS, `dashboard-${name}.png`), fullPage: true });
  };

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    work = mkdtempSync(join(tmpdir(), 'weft-dashboard-'));
    config = new ConfigDir();
    mesh = await EnvoyMesh.create({
      network: process.env.WEFT_DASHBOARD_NETWORK ?? 'td',
      subnet: process.env.WEFT_DASHBOARD_SUBNET ?? '10.218.0.0/24',
      configDir: config.path,
      workDir: work,
      serviceAccounts: TIER_SERVICE_ACCOUNTS,
      envoyBinary: envoy!,
    });
    A = tierAddresses(mesh.network);
    config.write('00-workloads.yaml', tierWorkloads(A));
    config.write('10-routes.yaml', TIER_ROUTES);
    config.write('20-buyer-to-store.yaml', buyerToStore(['open']));
    config.write('21-targets.yaml', OTHER_TARGETS);
    config.write('30-split.yaml', split(90, 10));
    config.write('40-broken.yaml', BROKEN_TARGET);
    config.write('50-patch.yaml', PATCH);
    await mesh.start();
    await startTierPods(mesh, RUNNING, A, pods);
    const call = async (from: TierPod, host: string, n: number, status?: number): Promise<void> => {
      const out = await pods
        .get(from)!
        .app!.call({ op: 'http', protocol: 'http1', host, port: PORT.http1, path: '/open', n });
      if (status !== undefined)
        for (const o of out)
          assert.ok(o.ok && o.status === status, `${from} → ${host}: ${JSON.stringify(o)}`);
      else
        for (const o of out)
          assert.ok(!o.ok || o.status !== 200, `${from} → ${host} got through: ${JSON.stringify(o)}`);
    };
    await call('buyer', A.services['store-v1'], 10, 200);
    await call('buyer', A.services.store, 20, 200);
    // Sidecars send counters as deltas since their last flush, and the refusals below are one
    // burst: wait until store-v1's stats reach Weft (buyer's calls counted on its own side), so
    // the burst is not sent before its stream is up.
    const served = `${mesh.weft.adminUrl}/apis/metrics.smi-spec.io/v1alpha1/namespaces/shop/pods/store-v1?window=5m`;
    const end = Date.now() + BOUND;
    for (;;) {
      const r = await fetch(served, { signal: AbortSignal.timeout(5000) });
      const body = (await r.json()) as { metrics?: { name: string; value: string }[] };
      if (Number(body.metrics?.find((m) => m.name === 'success_count')?.value ?? 0) >= 10) break;
      assert.ok(Date.now() < end, `store-v1's sidecar never reported buyer's calls: ${JSON.stringify(body)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    // thief may use store's TCP port only: store-v1's sidecar refuses its HTTP calls with 403.
    await call('thief', A.services['store-v1'], THIEF_CALLS, 403);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    // The page may fetch from Weft only: anything else would fail in an air-gapped cluster.
    const admin = new URL(mesh.weft.adminUrl!);
    page.on('request', (r) => {
      const u = new URL(r.url());
      if (u.host !== admin.host) offsite.push(r.url());
    });
    // Script errors and refusals of the page's Content-Security-Policy show up as console errors.
    page.on('console', (m) => {
      if (m.type() === 'error') pageErrors.push(m.text());
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${mesh.weft.adminUrl}/dashboard/`);
    // Marks this document: a reload would lose it.
    // (Page code is given as text: the tests compile without the DOM's types.)
    await page.evaluate('window.weftTestMark = 42');
  });
  const offsite: string[] = [];
  const pageErrors: string[] = [];

  after(async () => {
    await browser?.close();
    await mesh?.stop();
    config?.remove();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('draws the topology: allowed edges, and live edges with rate, success and p99', async () => {
    await page.waitForSelector('#live[data-state="live"]', { timeout: BOUND });
    const row = (from: string, to: string): string =>
      `#live-edges tbody tr:has(td:text-is("${from}")):has(td:text-is("${to}"))`;
    await page.waitForSelector(row('shop/buyer', 'shop/store-v1'), { timeout: BOUND });
    // The refusals, at the destination: the RBAC stats of store-v1's sidecar.
    const refused = page.locator('#denied tbody tr:has(td:text-is("shop/store-v1"))');
    await refused.waitFor({ timeout: BOUND });
    const end = Date.now() + BOUND;
    while (Number(await refused.locator('td').nth(1).textContent()) < THIEF_CALLS) {
      assert.ok(Date.now() < end, `store-v1's refusals: ${await refused.locator('td').nth(1).textContent()}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.equal(Number(await refused.locator('td').nth(1).textContent()), THIEF_CALLS);
    const buyerRow = await page.locator(row('shop/buyer', 'shop/store-v1')).locator('td').allTextContents();
    assert.equal(buyerRow[3], '100.0%', `buyer's calls all answered: ${buyerRow.join(' | ')}`);
    assert.match(buyerRow[4]!, /^\d+(\.\d+)?m?s$/, 'a p99 latency');
    assert.equal(buyerRow[5], '', 'buyer is allowed');
    const graph = await page.locator('#graph').evaluate((e) => ({
      nodes: Number(e.dataset.nodes),
      allowed: Number(e.dataset.allowed),
      live: Number(e.dataset.live),
      refused: Number(e.dataset.refused),
      canvases: e.querySelectorAll('canvas').length,
    }));
    // Workloads buyer, thief, store-v1, store-v2, web-0, web-1; Services store, store-v1, store-v2, web.
    assert.equal(graph.nodes, 10);
    assert.ok(graph.allowed >= 2, 'buyer → store-v1 and buyer → store-v2 are allowed');
    assert.ok(graph.live >= 2, 'buyer → store-v1 and buyer → store are live');
    assert.equal(graph.refused, 1, 'store-v1 is marked with its refusals');
    assert.ok(graph.canvases > 0, 'cytoscape drew');
    await shot('topology');
  });

  it('shows the split: configured weights beside the observed share; an edit shows up without a reload', async () => {
    const weight = (b: string): Promise<string | null> =>
      page
        .locator(`[data-split="shop/store-split"] [data-backend="${b}"] [data-weight]`)
        .getAttribute('data-weight');
    await page.waitForSelector('[data-split="shop/store-split"] [data-backend="store-v1"]', {
      timeout: BOUND,
    });
    assert.equal(await weight('store-v1'), '90');
    assert.equal(await weight('store-v2'), '10');
    // The split calls show up as an observed share once the sidecars' stats arrive. (How many of
    // them the window holds is the TrafficMetrics API's business, tested with its own exact counts.)
    const splitCalls = async (): Promise<number> => {
      let n = 0;
      for (const l of await page.locator('[data-split="shop/store-split"] [data-calls]').all())
        n += Number(await l.getAttribute('data-calls'));
      return n;
    };
    const end = Date.now() + BOUND;
    while ((await splitCalls()) === 0) {
      assert.ok(Date.now() < end, 'no observed share of the split ever showed');
      await new Promise((r) => setTimeout(r, 500));
    }
    const observed = await page.locator('[data-split="shop/store-split"] [data-calls]').allTextContents();
    const shares = observed.map((t) => Number(/observed ([\d.]+)%/.exec(t)?.[1] ?? 0));
    assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 0.5, `shares add up to 100%: ${observed}`);
    await shot('split-before');
    config.write('30-split.yaml', split(30, 70));
    await page.waitForSelector(
      '[data-split="shop/store-split"] [data-backend="store-v2"] [data-weight="70"]',
      { timeout: BOUND },
    );
    assert.equal(await weight('store-v1'), '30');
    assert.equal(await page.evaluate('window.weftTestMark'), 42, 'the page was not reloaded');
    const graph = await page.locator('#graph').evaluate((e) => [e.dataset.nodes, e.dataset.placed]);
    assert.equal(graph[1], graph[0], 'after live updates every node of the graph still has its own place');
    await shot('split-after');
  });

  it('lists the proxies in sync, the conditions with their fix, the EnvoyPatch applied', async () => {
    await page.waitForFunction(
      "document.querySelectorAll('#proxy-table tbody tr .ok').length === 4",
      undefined,
      { timeout: BOUND },
    );
    const condition = page
      .locator('#condition-table tbody tr:has(td:text-is("TrafficTarget/shop/broken"))')
      .filter({ hasText: 'no-such-paths' });
    await condition.first().waitFor({ timeout: BOUND });
    const patch = page.locator('#patch-table tbody tr:has(td:text-is("shop/slower-connect"))');
    await page.waitForSelector(
      '#patch-table tbody tr:has(td:text-is("shop/slower-connect")) td:text-is("Applied")',
      {
        timeout: BOUND,
      },
    );
    assert.match((await patch.locator('td').nth(2).textContent()) ?? '', /buyer/);
    await page.locator('#proxies').scrollIntoViewIfNeeded();
    await shot('proxies-conditions-patches');
  });

  it('answers an explain query: allowed for buyer, denied for thief with the reason', async () => {
    const ask = async (from: string, path: string): Promise<void> => {
      await page.fill('#explain-form [name=from]', from);
      await page.fill('#explain-form [name=to]', 'shop/store-v1');
      await page.fill('#explain-form [name=port]', String(PORT.http1));
      await page.fill('#explain-form [name=path]', path);
      await page.click('#explain-form button');
    };
    await ask('shop/buyer', '/open');
    await page.waitForSelector('#explain-result[data-allowed="true"]', { timeout: BOUND });
    await ask('shop/thief', '/open');
    await page.waitForSelector('#explain-result[data-allowed="false"]', { timeout: BOUND });
    assert.match((await page.locator('#explain-result').textContent()) ?? '', /denied/);
    await page.locator('#explain').scrollIntoViewIfNeeded();
    await shot('explain');
    assert.deepEqual(offsite, [], 'the page fetched nothing but Weft');
    assert.deepEqual(pageErrors, [], 'no script errors, nothing the page policy refused');
  });

  it("every Grafana query names a metric that Weft's /metrics or a sidecar's /stats/prometheus exports", async () => {
    const scrape = async (url: string): Promise<string> => {
      const res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
      assert.equal(res.status, 200, url);
      return res.text();
    };
    const weft = exportedNames(await scrape(`${mesh.weft.adminUrl}/metrics`));
    // A client and a server sidecar: outbound and inbound stats, on the injected stats port.
    const envoyNames = new Set<string>();
    for (const p of ['buyer', 'store-v1'] as const)
      for (const n of exportedNames(await scrape(`http://${A.pods[p]}:15090/stats/prometheus`)))
        envoyNames.add(n);
    const unknown: string[] = [];
    for (const q of dashboardQueries())
      for (const n of promqlMetricNames(q.expr))
        if (!weft.has(n) && !envoyNames.has(n)) unknown.push(`${q.dashboard} ${q.where}: ${n}`);
    assert.deepEqual(unknown, [], 'metrics no scrape exports');
  });
});
