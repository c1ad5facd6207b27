#!/usr/bin/env node
'use strict';
// The compiled CLI lives in dist/; `npm run build` produces it.
require('../dist/src/cli/index.js')
  .main(process.argv)
  .then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      console.error(`weft: ${err instanceof Error ? err.message : String(err)}`);
      process.exitCode = 2;
    },
  );
