// Bounds of the data path both sides share (src/transfer): body buffers, hashing, the byte
// budget's low water. Wire limits live in src/proto/limits.ts. Units are in the names.

const MiB = 1024 * 1024;

/**
 * Pooled DATA body buffers (BodyPool) kept for reuse once written: what one connection holds at
 * most (its queue, the chunk it may take past the bound, the record being opened, the one after
 * it), so a transfer stops allocating them after its first few MiB.
 */
export const MAX_FREE_BODY_BUFFERS = 12;

/**
 * While buffers are out, the pool keeps as many in all as were out at once in the last one to two
 * of these windows (BodyPool's reserve), instead of letting arenas go and mapping new ones as the
 * number out swings: at 100 uploads at once that churn was 41 arenas mapped and 38 dropped per
 * 800 MiB, each a few thousand page faults and a full collection (issue 15).
 */
export const BODY_POOL_RESERVE_WINDOW_MS = 2000;

/**
 * Spare read slots (source.ts spareReadSlots) go once no reader took or gave back any for this
 * long: as the body pool lets its reserve go, two windows after the last use.
 */
export const SPARE_READ_SLOTS_KEEP_MS = 2 * BODY_POOL_RESERVE_WINDOW_MS;

/**
 * Body buffers are carved out of aligned memory this many at a time (one WebAssembly.Memory):
 * one buffer still out keeps its whole arena, so arenas are small. Each memory also reserves
 * address space, which is why buffers do not get one each.
 */
export const BODY_POOL_ARENA_BUFFERS = 4;

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

/**
 * The hashing thread collects its young generation after hashing this many bytes of shared
 * memory, so that the handles to pool arenas its messages brought do not keep dropped arenas
 * mapped (hash-worker.ts).
 */
export const WORKER_COLLECT_INTERVAL_BYTES = 16 * MiB;

/**
 * An upload whose whole size is at most this is hashed on the event loop (Hasher.open), as a PUT's
 * file is: its few records cost less to hash in place than the ~6 messages to and from the hashing
 * thread (open, update, digest and their answers) that would carry them (issue 15).
 */
export const INLINE_HASH_MAX_BYTES = 64 * 1024;

/** Read buffer used once per resume to re-hash the durable prefix of a partial upload. */
export const HASH_READ_BUFFER_BYTES = 1 * MiB;

/** A re-hash reports its progress (for PROGRESS frames, §9.7) every this many bytes. */
export const REHASH_PROGRESS_BYTES = 16 * MiB;

/**
 * Running hashes of interrupted uploads the daemon keeps, so a reconnecting client resumes
 * without a re-read (§9.7; transfer/file-hash.ts). A SHA-256 state is well under 1 KiB.
 */
export const MAX_PARKED_HASHES = 4096;

/**
 * What one queued chunk costs beyond its bytes: its entry in the write queue and the hashing
 * backlog, its buffer object and release callback. Measured at ~430 bytes per 1-byte DATA chunk
 * (issue 14); queues charge this much per chunk to their bounds and the shared budget, so that
 * a million 1-byte chunks do not fit where 5 MiB of bytes would.
 */
export const CHUNK_OVERHEAD_BYTES = 512;

/** Chunks a write queue holds at most (MAX_WRITE_BATCH_BUFFERS go in one writev)... */
export const MAX_QUEUED_CHUNKS = 1024;
/** ...and all queues together (ByteBudget). */
export const MAX_QUEUED_CHUNKS_TOTAL = 64 * 1024;

/**
 * DATA chunks up to this size are copied into a shared buffer of COALESCE_BUFFER_BYTES
 * (transfer/coalescer.ts) and handed on together: 1-byte records become one write and one hash
 * update per socket read, not one each.
 */
export const MAX_COALESCED_CHUNK_BYTES = 16 * 1024;
export const COALESCE_BUFFER_BYTES = 64 * 1024;

/** Chunks an upload may have waiting for the hashing thread, like MAX_HASH_BACKLOG_BYTES. */
export const MAX_HASH_BACKLOG_CHUNKS = 1024;
