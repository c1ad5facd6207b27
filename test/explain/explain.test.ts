/**
 * `weft explain` against compiled truth: for every golden input with access rules, every caller,
 * service port and a spread of requests, explain's verdict at each destination must equal what the
 * destination's compiled Envoy inbound RBAC (evaluated here the way Envoy does) decides, and an
 * allowing rule must be the RBAC policy of that name. Plus the routing shares and the CLI.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RE2 } from 're2-wasm';
import { explain } from '../../src/explain';
import { parseManifests, renderMesh } from '../../src/mesh/render';
import { extractPatches } from '../../src/patch/mesh';
import { buildModel } from '../../src/smi/build';
import type { MeshModel } from '../../src/smi/model';

const ROOT = join(__dirname, '..', '..', '..');
const CASES = join(ROOT, 'test', 'golden', 'cases');

type Json = Record<string, unknown>;

const full = (re: string, s: string): boolean => new RE2(`^(?:${re})$`, 'u').test(s);

interface Req {
  source: string;
  method: string;
  path: string;
  headers: Record<string, string>;
}

function stringMatch(m: Json, value: string | undefined): boolean {
  if (value === undefined) return false;
  const sr = m.safe_regex as { regex: string } | undefined;
  if (sr) return full(sr.regex, value);
  if (typeof m.exact === 'string') return m.exact === value;
  throw new Error(`matcher not handled: ${JSON.stringify(m)}`);
}

function permission(p: Json, r: Req): boolean {
  if (p.any === true) return true;
  if (p.and_rules) return ((p.and_rules as Json).rules as Json[]).every((x) => permission(x, r));
  if (p.url_path) return stringMatch(((p.url_path as Json).path as Json) ?? {}, r.path);
  if (p.header) {
    const h = p.header as { name: string; string_match: Json };
    return stringMatch(h.string_match, h.name === ':method' ? r.method : r.headers[h.name]);
  }
  throw new Error(`permission not handled: ${JSON.stringify(p)}`);
}

function principal(p: Json, r: Req): boolean {
  if (p.any === true) return true;
  const exact = ((p.authenticated as Json)?.principal_name as Json)?.exact;
  if (typeof exact === 'string') return exact === r.source;
  throw new Error(`principal not handled: ${JSON.stringify(p)}`);
}

/** Envoy's RBAC (ALLOW): the names of the policies the request meets. */
function rbac(rules: Json | undefined, r: Req): string[] {
  const policies = (rules?.policies ?? {}) as Record<string, { permissions: Json[]; principals: Json[] }>;
  return Object.entries(policies)
    .filter(
      ([, p]) => p.permissions.some((x) => permission(x, r)) && p.principals.some((x) => principal(x, r)),
    )
    .map(([name]) => name);
}

/** What the destination proxy's compiled inbound config decides: allowed, and by which policies. */
function compiledDecision(
  resources: { listeners: Json[]; routes: Json[] },
  port: number,
  r: Req,
): { allowed: boolean; policies: string[] } {
  const inbound = resources.listeners.find((l) => l.name === 'inbound')!;
  const chain = (inbound.filter_chains as Json[]).find(
    (c) => (c.filter_chain_match as Json | undefined)?.destination_port === port,
  );
  if (!chain) return { allowed: false, policies: [] };
  const filters = chain.filters as { name: string; typed_config: Json }[];
  const hcm = filters.find((f) => f.name === 'envoy.filters.network.http_connection_manager');
  if (hcm) {
    const routeName = ((hcm.typed_config.rds as Json).route_config_name as string) ?? '';
    const rc = resources.routes.find((x) => x.name === routeName)!;
    const vh = (rc.virtual_hosts as Json[])[0]!;
    const per = (vh.typed_per_filter_config as Record<string, Json>)['envoy.filters.http.rbac']!;
    const policies = rbac((per.rbac as Json).rules as Json, r);
    return { allowed: policies.length > 0, policies };
  }
  const net = filters.find((f) => f.name === 'envoy.filters.network.rbac');
  if (!net) return { allowed: true, policies: [] }; // permissive: no RBAC filter at all
  const policies = rbac(net.typed_config.rules as Json, r);
  return { allowed: policies.length > 0, policies };
}

function modelOf(text: string): MeshModel {
  const { rest } = extractPatches(parseManifests([{ source: 'case', text }]).objects);
  return buildModel(rest).model;
}

const REQUESTS: Omit<Req, 'source'>[] = [
  { method: 'GET', path: '/', headers: {} },
  { method: 'POST', path: '/weft.echo.Echo/Get', headers: {} },
  { method: 'GET', path: '/api/v1/books', headers: { 'x-tenant': 'acme', 'x-env': 'prod' } },
  { method: 'DELETE', path: '/admin', headers: { 'x-tenant': 'other', 'x-env': 'prod-eu' } },
  { method: 'POST', path: '/bookstore.Store/Buy', headers: { 'x-version': 'v2' } },
];

describe('weft explain agrees with the compiled RBAC', () => {
  const cases = [
    'bookstore',
    'access-headers-both-encodings',
    'access-tcproute-only',
    'access-v1alpha1-top-level',
    'access-v1alpha2-port',
    'access-v1alpha4-identitybinding',
    'deny-by-default',
    'permissive',
    'split-v1alpha4-ab-matches',
    'split-3-way',
  ];
  for (const name of cases) {
    it(name, () => {
      const text = readFileSync(join(CASES, `${name}.in.yaml`), 'utf8');
      const model = modelOf(text);
      const rendered = renderMesh([{ source: name, text }], { flavors: ['envoy'] });
      const sources = [...new Set(model.workloads.map((w) => `${w.namespace}/${w.serviceAccount}`))];
      let checked = 0;
      let allowedSeen = 0;
      for (const src of sources) {
        const [ns, sa] = src.split('/') as [string, string];
        for (const svc of model.services) {
          for (const p of svc.ports) {
            if (p.protocol !== 'TCP') continue;
            for (const rq of REQUESTS) {
              const e = explain(model, {
                from: { namespace: ns, serviceAccount: sa },
                to: { namespace: svc.namespace, service: svc.name, port: p.port },
                method: rq.method,
                path: rq.path,
                headers: rq.headers,
              });
              for (const b of e.backends) {
                const backend = model.services.find((s) => `${s.namespace}/${s.name}` === b.service)!;
                for (const v of b.access) {
                  if (v.inboundPort === null) continue;
                  // Every workload of this backend with this identity must decide the same.
                  for (const w of backend.workloads) {
                    const proxy = rendered.proxies.find((x) => x.name === `${w.namespace}/${w.name}`);
                    if (!proxy || proxy.identity !== v.destination) continue;
                    const truth = compiledDecision(
                      proxy.resources as unknown as { listeners: Json[]; routes: Json[] },
                      v.inboundPort,
                      { source: e.source, ...e.request },
                    );
                    const what = `${name}: ${src} -> ${b.service}:${p.port} ${rq.method} ${rq.path} at ${proxy.name}`;
                    assert.equal(v.allowed, truth.allowed, `${what}: explain says ${v.reason}`);
                    if (v.allowedBy?.trafficTarget) {
                      const policy = `${v.allowedBy.trafficTarget}|${v.allowedBy.rule}`;
                      assert.ok(
                        truth.policies.includes(policy),
                        `${what}: ${policy} not in ${truth.policies}`,
                      );
                    }
                    checked++;
                    if (truth.allowed) allowedSeen++;
                  }
                }
              }
            }
          }
        }
      }
      assert.ok(checked > 0, 'something was checked');
      // Where the requests above are meant to meet a rule, the comparison covered allowed calls too.
      if (
        [
          'bookstore',
          'access-tcproute-only',
          'permissive',
          'access-headers-both-encodings',
          'access-v1alpha4-identitybinding',
        ].includes(name)
      )
        assert.ok(allowedSeen > 0, 'some call is allowed');
    });
  }
});

describe('weft explain routing', () => {
  it('gives the split backends and their shares, and the root for calls outside the matches', () => {
    const model = modelOf(readFileSync(join(CASES, 'split-3-way.in.yaml'), 'utf8'));
    const split = model.splits[0]!;
    const svc = model.services.find((s) => s.namespace === split.namespace && s.name === split.rootService)!;
    const e = explain(model, {
      from: { namespace: split.namespace, serviceAccount: 'default' },
      to: { namespace: svc.namespace, service: svc.name, port: svc.ports[0]!.port },
    });
    assert.match(e.routing, /^TrafficSplit /);
    assert.equal(e.backends.length, 3);
    const sum = e.backends.reduce((n, b) => n + b.percent, 0);
    assert.ok(Math.abs(sum - 100) < 0.5, String(sum));
  });
});

function weft(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'bin', 'weft.js'), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout, err: stderr }),
    );
  });
}

describe('weft explain command', () => {
  const file = join(CASES, 'bookstore.in.yaml');
  it('says allowed, by which TrafficTarget and rule, with a boolean in -o json', async () => {
    const r = await weft([
      'explain',
      '-f',
      file,
      '--from',
      'bookbuyer/bookbuyer',
      '--to',
      'bookstore/bookstore:14001',
      '--path',
      '/weft.echo.Echo/Get',
      '-o',
      'json',
    ]);
    assert.equal(r.code, 0, r.err + r.out);
    const e = JSON.parse(r.out) as {
      allowed: boolean;
      backends: { access: { allowedBy?: { trafficTarget?: string } }[] }[];
    };
    assert.equal(e.allowed, true);
    assert.equal(e.backends[0]!.access[0]!.allowedBy?.trafficTarget, 'bookstore/bookbuyer-to-bookstore');
  });
  it('says denied with the closest rule and what did not match; exits 1', async () => {
    const r = await weft([
      'explain',
      '-f',
      file,
      '--from',
      'bookthief/bookthief',
      '--to',
      'bookstore/bookstore:14001',
    ]);
    assert.equal(r.code, 1);
    assert.match(r.out, /^DENIED/);
    assert.match(r.out, /closest: TrafficTarget bookstore\/bookbuyer-to-bookstore/);
    assert.match(r.out, /sources are bookbuyer\/bookbuyer, not the caller/);
  });
  it('exits 2 on bad arguments and unknown services', async () => {
    const a = await weft(['explain', '-f', file, '--from', 'x', '--to', 'bookstore/bookstore:14001']);
    assert.equal(a.code, 2);
    assert.match(a.err, /--from/);
    const b = await weft(['explain', '-f', file, '--from', 'a/b', '--to', 'bookstore/nothing:1']);
    assert.equal(b.code, 2);
    assert.match(b.err, /no Service bookstore\/nothing/);
  });
});
