#!/usr/bin/env node
'use strict';
// The compiled CLI lives in dist/; `npm run build` produces it.
// The demo's proxyless gRPC servers enforce RBAC only with this grpc-js-xds switch on; it must be
// set before grpc-js-xds loads.
process.env.GRPC_XDS_EXPERIMENTAL_RBAC ??= 'true';
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
