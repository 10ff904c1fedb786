// Contender "tus": @tus/server + @tus/file-store over HTTPS, tus-js-client uploading.
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { makeSelfSignedCert } from '../lib/cert.js';
import { describeExit, startMeasured } from '../lib/measure.js';
import { benchScript, PROJECT_ROOT } from '../lib/paths.js';
import { LOCAL, type Placement } from '../lib/placement.js';
import type { TestFile } from '../lib/testfile.js';
import { TUS_CHUNK_BYTES, TUS_PATH } from '../lib/tus-constants.js';
import { READY_TIMEOUT_MS, transferTimeoutMs, type Contender, type RunResult } from './types.js';

const SCRIPT = benchScript('baseline-tus.js');
const PACKAGES = ['@tus/server', '@tus/file-store', 'tus-js-client'] as const;

async function run(file: TestFile, workdir: string, place: Placement = LOCAL): Promise<RunResult> {
  const storeDir = join(workdir, 'store');
  await mkdir(storeDir);
  const { certPath, keyPath } = await makeSelfSignedCert(workdir, place.host);
  const timeoutMs = transferTimeoutMs(file.size);
  const serverArgs = [SCRIPT, 'server', '--host', place.host, '--port', '0', '--dir', storeDir, '--cert', certPath, '--key', keyPath];
  const server = startMeasured(...place.command('server', process.execPath, serverArgs), { timeoutMs });
  const ready = await server.waitForMatch('stdout', /listening on \S+:(\d+)/, READY_TIMEOUT_MS);
  if (ready === null) {
    await server.signal('SIGKILL');
    return { kind: 'failed', reason: describeExit('tus server did not listen;', await server.done) };
  }
  const endpoint = `https://${place.host}:${ready[1] ?? ''}${TUS_PATH}/`;
  const clientArgs = [SCRIPT, 'client', '--endpoint', endpoint, '--file', file.path, '--ca', certPath];
  const t0 = performance.now();
  const client = await startMeasured(...place.command('client', process.execPath, [...clientArgs, '--chunk-size', String(TUS_CHUNK_BYTES)]), {
    timeoutMs,
  }).done;
  const wallSeconds = (performance.now() - t0) / 1000;
  await server.signal('SIGTERM');
  const serverExit = await server.done;

  if (client.exitCode !== 0 || client.rusage === null) return { kind: 'failed', reason: describeExit('tus client', client) };
  if (serverExit.rusage === null) return { kind: 'failed', reason: describeExit('tus server', serverExit) };
  const reply = parseReply(client.stdout);
  if (reply === null) return { kind: 'failed', reason: `tus client printed no upload URL: ${client.stdout.slice(-200)}` };
  const id = reply.url.split('/').pop() ?? '';
  if (!/^[\w-]+$/.test(id)) return { kind: 'failed', reason: `unexpected upload URL ${reply.url}` };
  return {
    kind: 'ok',
    wallSeconds,
    sender: client.rusage,
    receiver: serverExit.rusage,
    receivedPath: join(storeDir, id),
    notes: [`cipher ${/^tls (.+)$/m.exec(serverExit.stderr)?.[1] ?? 'unknown'}`, `chunkSize ${TUS_CHUNK_BYTES}`],
  };
}

function parseReply(stdout: string): { url: string } | null {
  const line = stdout.trim().split('\n').pop() ?? '';
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const url: unknown = Reflect.get(value, 'url');
  return typeof url === 'string' ? { url } : null;
}

async function version(): Promise<string> {
  const versions = await Promise.all(
    PACKAGES.map(async (name) => {
      const pkg: unknown = JSON.parse(await readFile(join(PROJECT_ROOT, 'node_modules', name, 'package.json'), 'utf8'));
      const v: unknown = typeof pkg === 'object' && pkg !== null ? Reflect.get(pkg, 'version') : undefined;
      return `${name}@${typeof v === 'string' ? v : '?'}`;
    }),
  );
  return versions.join(', ');
}

export const tus: Contender = {
  name: 'tus',
  measures: `tus-js-client (${TUS_CHUNK_BYTES / 1024 / 1024} MiB PATCHes) → @tus/server + file-store over HTTPS; wall = client start → client exit`,
  available: async () => {
    try {
      await version();
      return null;
    } catch {
      return `not installed: npm install (devDependencies ${PACKAGES.join(', ')})`;
    }
  },
  version,
  run,
};
