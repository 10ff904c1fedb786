// Bounds of the data path both sides share (src/transfer): body buffers, hashing, the byte
// budget's low water. Wire limits live in src/proto/limits.ts. Units are in the names.

const MiB = 1024 * 1024;

/**
 * Pooled DATA body buffers (BodyPool) kept for reuse once written: what one connection holds at
 * most (its queue, the chunk it may take past the bound, the record being opened, the one after
 * it), so a transfer stops allocating them after its first few MiB.
 */
export const MAX_FREE_BODY_BUFFERS = 12;

/** Body buffers are carved out of aligned memory this many at a time (one WebAssembly.Memory). */
export const BODY_POOL_ARENA_BUFFERS = 16;

/**
 * Address, offset and length alignment for O_DIRECT writes (direct-io.ts): a multiple of every
 * common logical block size (512, 4096).
 */
export const DIRECT_IO_ALIGN_BYTES = 4096;

/** A paused queue (or the shared budget) resumes once it is at or below this share of its maximum. */
export const LOW_WATER_FRACTION = 0.5;

/**
 * Bytes an upload may have waiting for the hashing thread (transfer/hasher.ts) before its
 * connection stops reading, like a full write queue; they are buffers the upload still holds.
 */
export const MAX_HASH_BACKLOG_BYTES = 4 * MiB;

/** Read buffer used once per resume to re-hash the durable prefix of a partial upload. */
export const HASH_READ_BUFFER_BYTES = 1 * MiB;

/** A re-hash reports its progress (for PROGRESS frames, §9.7) every this many bytes. */
export const REHASH_PROGRESS_BYTES = 16 * MiB;

/**
 * Running hashes of interrupted uploads the daemon keeps, so a reconnecting client resumes
 * without a re-read (§9.7; transfer/file-hash.ts). A SHA-256 state is well under 1 KiB.
 */
export const MAX_PARKED_HASHES = 4096;
