#!/usr/bin/env node
'use strict';
// Runs every compiled test file with Node's built-in test runner. Test files are
// `*.test.js` under dist/test and dist/e2e; WEFT_TEST_FILTER narrows them by substring.
const { readdirSync, statSync, existsSync } = require('node:fs');
const { join } = require('node:path');
const { spawnSync } = require('node:child_process');

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
const res = spawnSync(
  process.execPath,
  // --test-force-exit: grpc-js's file_watcher certificate providers can leave an interval running
  // after every channel and server is closed, which would keep a finished test file alive.
  ['--test', '--test-force-exit', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit', env: { ...process.env, GRPC_XDS_EXPERIMENTAL_RBAC: 'true' } },
);
process.exit(res.status ?? 1);
