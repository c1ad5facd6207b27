#!/usr/bin/env node
'use strict';
// Writes crds/<plural>.<group>.yaml and the Helm chart's copy (deploy/helm/weft/crds/) from
// src/crds/definitions.ts (run after `npm run build`). Both folders are generated from the same
// definitions; test/cli/crds.test.ts fails when either one is stale.
const { mkdirSync, writeFileSync, readdirSync, unlinkSync } = require('node:fs');
const { join } = require('node:path');
const { allCrds } = require('../dist/src/crds/definitions.js');
const { crdFileName, crdYaml, CRD_FOLDERS } = require('../dist/src/crds/render.js');

const root = join(__dirname, '..');
for (const folder of CRD_FOLDERS) {
  const dir = join(root, folder);
  mkdirSync(dir, { recursive: true });
  const wanted = new Set();
  for (const crd of allCrds()) {
    const name = crdFileName(crd);
    wanted.add(name);
    writeFileSync(join(dir, name), crdYaml(crd));
  }
  for (const f of readdirSync(dir)) if (f.endsWith('.yaml') && !wanted.has(f)) unlinkSync(join(dir, f));
  console.log(`wrote ${wanted.size} CRDs to ${folder}/`);
}
