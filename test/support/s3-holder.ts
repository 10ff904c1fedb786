// A second daemon for test/storage-contract-s3.ts (run by e2e-s3.test.ts), as a process of its own so that the test
// can stop it (SIGSTOP): it opens partial PARTIAL_ID on the S3 store with a LEASE_MS lease,
// writes and checkpoints 100 KiB, prints "held 102400", then on a line on stdin writes 100 KiB
// more and checkpoints again, and prints "ok N" or "failed CODE".
import { createInterface } from 'node:readline';
import { StxError } from '../../src/proto/errors.js';
import { S3Backend } from '../../src/storage/s3/backend.js';
import { createS3Client } from '../../src/storage/s3/client.js';
import { ByteBudget } from '../../src/transfer/budget.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const KiB = 1024;
const backend = new S3Backend({ client: createS3Client({ endpoint: env('S3_ENDPOINT') }), bucket: env('S3_BUCKET'), prefix: env('S3_PREFIX'), leaseMs: Number(env('LEASE_MS')) });
const limits = { budget: new ByteBudget(64 * 1024 * KiB), maxQueuedBytes: 4 * 1024 * KiB, maxChunkBytes: 128 * KiB };
const partial = await backend.openPartial(env('PARTIAL_ID'), { principal: 'anonymous', name: 's.bin', size: 300 * KiB, mtime: 1_700_000_000_000, mode: 0o644 }, undefined, limits);
partial.write(0, Buffer.alloc(100 * KiB, 1));
process.stdout.write(`held ${await partial.checkpoint()}\n`);
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
await lines.next();
try {
  partial.write(100 * KiB, Buffer.alloc(100 * KiB, 2));
  process.stdout.write(`ok ${await partial.checkpoint()}\n`);
} catch (err) {
  process.stdout.write(`failed ${err instanceof StxError ? err.code : String(err)}\n`);
}
await partial.close();
process.exit(0);
