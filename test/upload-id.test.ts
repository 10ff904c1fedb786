// uploadId (§9.2) names partials on disk: its bytes must not change between versions, or a resume
// after an upgrade finds nothing. The encoding is written here from its documented layout with
// Node's BigInt writers, an oracle independent of upload-id.ts's number arithmetic.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { it } from 'node:test';
import { uploadId, type UploadIdentity } from '../src/recv/store/upload-id.js';

function reference(id: UploadIdentity): string {
  const u32 = (n: number): Buffer => {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(n);
    return b;
  };
  const principal = Buffer.from(id.principal, 'utf8');
  const name = Buffer.from(id.name, 'utf8');
  const size = Buffer.alloc(8);
  size.writeBigUInt64BE(BigInt(id.size));
  const mtime = Buffer.alloc(8);
  mtime.writeBigInt64BE(BigInt(id.mtime));
  const parts = [Buffer.from('stx/1 upload id\0', 'latin1'), u32(principal.length), principal, u32(name.length), name, size, mtime, id.stream ?? Buffer.alloc(0)];
  return createHash('sha256').update(Buffer.concat(parts)).digest('hex');
}

it('uploadId is SHA-256 of label, principal, name, u64 size, i64 mtime (and stream), for sizes and mtimes across 32-bit word edges and signs', () => {
  const edges = [0, 1, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 40 + 12345, Number.MAX_SAFE_INTEGER];
  const mtimes = [...edges, -1, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 32), -(2 ** 32) - 1, -1_000_000_000_123, Number.MIN_SAFE_INTEGER, 1_764_700_000_000];
  let checked = 0;
  for (const size of edges) {
    for (const mtime of mtimes) {
      for (const stream of [undefined, Buffer.alloc(16, 7)]) {
        const id: UploadIdentity = { principal: 'SHA256:abc', name: 'dir/é file.bin', size, mtime, stream };
        assert.equal(uploadId(id), reference(id), `size ${size} mtime ${mtime}`);
        checked++;
      }
    }
  }
  assert.equal(checked, edges.length * mtimes.length * 2);
});
