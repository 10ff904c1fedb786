// contrib/stx-recv.service (issue 10, item 10): the unit says what the README promises, and
// `systemd-analyze verify` accepts it where systemd-analyze is installed (skipped otherwise:
// the tests must not depend on the machine having systemd).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { RECV_CLI, tempDir } from './support/procs.js';
import { REPO_ROOT } from './support/paths.js';

const UNIT = path.join(REPO_ROOT, 'contrib', 'stx-recv.service');
const INSTALLED_BIN = '/usr/local/bin/stx-recv';

/** The unit's `Key=value` settings, in order (comments and section headers dropped). */
function settings(text: string): Array<[string, string]> {
  return text
    .split('\n')
    .filter((l) => /^[A-Za-z]+=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]);
}

describe('contrib/stx-recv.service', () => {
  const text = readFileSync(UNIT, 'utf8');
  const all = settings(text);
  const get = (key: string): string[] => all.filter(([k]) => k === key).map(([, v]) => v);

  it('runs as its own user with STX_HOME in its state directory, reloads with SIGHUP, and is hardened', () => {
    assert.deepEqual(get('User'), ['stx']);
    assert.deepEqual(get('Environment'), ['STX_HOME=/var/lib/stx']);
    assert.deepEqual(get('StateDirectory'), ['stx']);
    assert.deepEqual(get('ExecReload'), ['/bin/kill -HUP $MAINPID']);
    const exec = get('ExecStart')[0] ?? '';
    assert.ok(exec.startsWith(`${INSTALLED_BIN} `), exec);
    assert.match(exec, /--authorized-keys \S+/, 'the shipped unit does not let anonymous clients upload');
    const out = /--out (\S+)/.exec(exec)?.[1];
    assert.ok(out !== undefined && get('ReadWritePaths').includes(out), 'ReadWritePaths names the --out directory');
    for (const [key, value] of [
      ['NoNewPrivileges', 'yes'],
      ['ProtectSystem', 'strict'],
      ['ProtectHome', 'yes'],
      ['PrivateTmp', 'yes'],
      ['CapabilityBoundingSet', ''],
      ['SystemCallFilter', '@system-service'],
      ['RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'],
    ] as const) {
      assert.deepEqual(get(key), [value], key);
    }
    assert.deepEqual(get('MemoryDenyWriteExecute'), [], "V8's JIT needs W+X memory");
  });

  const probe = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  it(
    'systemd-analyze verify accepts it',
    { skip: probe.status === 0 ? false : 'systemd-analyze is not installed (apt-get install systemd provides it)' },
    async () => {
      const tmp = await tempDir('stx-unit-');
      try {
        // verify checks that ExecStart's program exists: point it at the built daemon instead of
        // the installed one; every other line is verified as shipped.
        const unit = path.join(tmp.dir, 'stx-recv.service');
        await writeFile(unit, text.replace(`ExecStart=${INSTALLED_BIN} `, `ExecStart=${process.execPath} ${RECV_CLI} `));
        const r = spawnSync('systemd-analyze', ['verify', '--man=no', unit], { encoding: 'utf8', timeout: 60_000 });
        assert.equal(r.status, 0, r.stdout + r.stderr);
        assert.equal(r.stderr.split('\n').filter((l) => l.includes('stx-recv.service')).join('\n'), '', 'no warnings about the unit');
      } finally {
        await tmp.cleanup();
      }
    },
  );
});
