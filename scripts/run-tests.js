#!/usr/bin/env node
'use strict';
// Runs every compiled test file with Node's built-in test runner. Test files are
// `*.test.js` under dist/test and dist/e2e; WEFT_TEST_FILTER narrows them by substring.
const { readdirSync, statSync, existsSync } = require('node:fs');
const { join } = require('node:path');
const { spawn } = require('node:child_process');

function collect(dir, out) {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) collect(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filter = process.env.WEFT_TEST_FILTER ?? '';
const files = [...collect('dist/test', []), ...collect('dist/e2e', [])].filter((f) => f.includes(filter));
if (files.length === 0) {
  console.error('run-tests: no test files found (did `npm run build` run?)');
  process.exit(1);
}
const concurrency = process.env.WEFT_TEST_CONCURRENCY ?? '2';
// Files that each run a whole mesh (an API server, Weft, many workloads or Envoy sidecars) and
// measure convergence: they run one at a time after the rest, so two of them never share the
// 2 cores and a slow machine is not mistaken for a slow mesh.
const HEAVY = [
  'conformance/suite.test',
  'conformance/suite-envoy.test',
  'conformance/cluster-driver.test',
  'envoy/tier.test',
  'envoy/metrics.test',
  'envoy/metrics-prometheus.test',
  'cli/demo-envoy.test',
  'dashboard/browser.test',
  'cluster/',
];
const heavy = files.filter((f) => HEAVY.some((h) => f.includes(h)));
const light = files.filter((f) => !heavy.includes(f));
/** Runs one pass, streaming its report, and resolves with its exit status and totals. */
function runPass(list, n) {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      // --test-force-exit: grpc-js's file_watcher certificate providers can leave an interval
      // running after every channel and server is closed, which would keep a finished file alive.
      ['--test', '--test-force-exit', `--test-concurrency=${n}`, '--test-reporter=spec', ...list],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, GRPC_XDS_EXPERIMENTAL_RBAC: 'true' } },
    );
    // The spec reporter's summary is at the end; keep a tail to read the counts from.
    let tail = '';
    child.stdout.on('data', (chunk) => {
      process.stdout.write(chunk);
      tail = (tail + chunk.toString()).slice(-8192);
    });
    child.on('close', (code) => {
      const count = (key) => Number(new RegExp(`^ℹ ${key} (\\d+)$`, 'm').exec(tail)?.[1] ?? 0);
      resolve({ status: code ?? 1, pass: count('pass'), fail: count('fail'), skipped: count('skipped') });
    });
  });
}

(async () => {
  let status = 0;
  const totals = { pass: 0, fail: 0, skipped: 0 };
  for (const [list, n] of [
    [light, concurrency],
    [heavy, '1'],
  ]) {
    if (list.length === 0) continue;
    const r = await runPass(list, n);
    if (r.status !== 0) status = r.status;
    totals.pass += r.pass;
    totals.fail += r.fail;
    totals.skipped += r.skipped;
  }
  console.log(`\ntests: ${totals.pass} passed, ${totals.fail} failed, ${totals.skipped} skipped`);
  process.exit(status);
})();
