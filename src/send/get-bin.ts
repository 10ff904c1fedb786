#!/bin/sh
// The stx-get command file (dist/bin/stx-get.js): runs get-cli.ts's bundle, dist/bin/stx-get-main.js.
// Run as a command it is a shell line first, as stx-send's is (bin.ts): stx-get makes no TLS
// connection, so node starts without NODE_EXTRA_CA_CERTS and the certificates it would parse.
await import(new URL('./stx-get-main.js', import.meta.url).href);
