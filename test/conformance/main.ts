// npm run conformance -- --host H --port P [--fingerprint SHA256:…] [--timeouts] [--downloads] [--only §9]
// Runs the spec's vectors and state-table cases against a running stx/1 server (spec §14) and
// prints a pass/fail table by section; exits 0 only if every case passed.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SPEC_DIR } from '../support/paths.js';
import { conformanceCases } from './cases.js';
import { report, runConformance, sectionTitles } from './runner.js';

const USAGE = 'usage: conformance --host H --port P [--fingerprint SHA256:…] [--timeouts] [--downloads] [--only §N] [--wait-ms N]';

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      fingerprint: { type: 'string' },
      timeouts: { type: 'boolean', default: false },
      downloads: { type: 'boolean', default: false },
      only: { type: 'string' },
      'wait-ms': { type: 'string', default: '3000' },
      'timer-wait-ms': { type: 'string', default: '75000' },
      verbose: { type: 'boolean', default: false },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    console.error(USAGE);
    return 2;
  }
  const only = values.only;
  const cases = conformanceCases({ timers: values.timeouts, downloads: values.downloads }).filter((c) => only === undefined || c.section === only || c.section.startsWith(`${only}.`));
  const t0 = Date.now();
  const results = await runConformance(cases, {
    host: values.host,
    port,
    fingerprint: values.fingerprint,
    waitMs: Number(values['wait-ms']),
    timerWaitMs: Number(values['timer-wait-ms']),
    onResult: (r) => {
      if (values.verbose || !r.pass) console.error(`${r.pass ? 'pass' : 'FAIL'} ${r.section} ${r.name} (${r.ms} ms)${r.pass ? '' : `: got ${r.got}`}`);
    },
  });
  console.log(report(results, sectionTitles(readFileSync(path.join(SPEC_DIR, 'PROTOCOL.md'), 'utf8'))));
  console.log(`\n${results.length} cases against ${values.host}:${port} in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return results.every((r) => r.pass) && results.length > 0 ? 0 : 1;
}

main().then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    console.error(err);
    process.exitCode = 2;
  },
);
