#!/usr/bin/env node
'use strict';
// Writes crds/<plural>.<group>.yaml from src/crds/definitions.ts (run after `npm run build`).
const { mkdirSync, writeFileSync, readdirSync, unlinkSync } = require('node:fs');
const { join } = require('node:path');
const { allCrds } = require('../dist/src/crds/definitions.js');
const { crdFileName, crdYaml } = require('../dist/src/crds/render.js');

const dir = join(__dirname, '..', 'crds');
mkdirSync(dir, { recursive: true });
const wanted = new Set();
for (const crd of allCrds()) {
  const name = crdFileName(crd);
  wanted.add(name);
  writeFileSync(join(dir, name), crdYaml(crd));
}
for (const f of readdirSync(dir)) if (f.endsWith('.yaml') && !wanted.has(f)) unlinkSync(join(dir, f));
console.log(`wrote ${wanted.size} CRDs to crds/`);
