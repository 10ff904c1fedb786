#!/usr/bin/env node
// The stx-send command file (dist/bin/stx-send.js): runs cli.ts's bundle, dist/bin/stx-send.cjs,
// through V8's code cache of earlier runs (send/code-cache.ts). Its start-up is on the path of
// every transfer, and of every script that calls stx-send per file.
import { runCached } from './code-cache.js';

runCached(new URL('./stx-send.cjs', import.meta.url), 'stx-send');
