#!/bin/sh
// The stx-send command file (dist/bin/stx-send.js): runs cli.ts's bundle, dist/bin/stx-send.cjs,
// through V8's code cache of earlier runs (send/code-cache.ts). Its start-up is on the path of
// every transfer, and of every script that calls stx-send per file.
//
// Run as a command, the file is a shell script first: the bundle's banner (package.json
// "bundle") is its second line, `':' //; unset NODE_EXTRA_CA_CERTS; exec node "$0" "$@"`, which
// sh runs and node reads as a string and a comment. Node 20 parses the certificates that
// NODE_EXTRA_CA_CERTS names at every start, before any JavaScript (~30 ms of a 45 ms start with
// a distribution's 144-certificate bundle), and stx-send makes no TLS connection. `node
// dist/bin/stx-send.js` still works (node skips the #! line), paying that cost.
import { runCached } from './code-cache.js';

runCached(new URL('./stx-send.cjs', import.meta.url), 'stx-send');
