#!/usr/bin/env node
'use strict';
// Bundles the dashboard page (web/) into dist/web: one minified script with every library in it
// (cytoscape, dagre, Chart.js), plus the page and its stylesheet, so the admin server serves it
// from the package and the browser fetches nothing from anywhere else.
const { copyFileSync, mkdirSync, statSync } = require('node:fs');
const { join } = require('node:path');
const esbuild = require('esbuild');

const root = join(__dirname, '..');
const out = join(root, 'dist', 'web');
mkdirSync(out, { recursive: true });
esbuild.buildSync({
  entryPoints: [join(root, 'web', 'dashboard.ts')],
  outfile: join(out, 'dashboard.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['chrome100', 'firefox100', 'safari15'],
  legalComments: 'linked',
  logLevel: 'warning',
});
for (const f of ['index.html', 'dashboard.css']) copyFileSync(join(root, 'web', f), join(out, f));
const kib = (f) => (statSync(join(out, f)).size / 1024).toFixed(0);
console.log(
  `dashboard bundle: dashboard.js ${kib('dashboard.js')} KiB (index.html, dashboard.css beside it)`,
);
