// Receiver-side bounds (STYLE.md "Backpressure & resources"). Wire limits live in
// src/proto/limits.ts; these are the server's own resource choices. Units are in the names.

const MiB = 1024 * 1024;

/**
 * Positional writes one connection may have in flight on its .part file at once. One: Linux
 * serialises buffered writes to a file (the inode lock), so more only spin on that lock; instead
 * each write takes every chunk queued meanwhile (WriteQueue), up to MAX_WRITE_BATCH_BYTES.
 */
export const WRITE_CONCURRENCY_PER_CONNECTION = 1;

/**
 * Bytes one connection may have queued for disk; its socket pauses before this is crossed.
 * 5 MiB keeps a writer busy (a write takes all of it) and the receiver's memory small. Measured
 * (`npm run bench`, 1 GiB and 4 GiB): 4 MiB was slower (220–226 MiB/s against 241–264) for
 * 89–90 MiB peak RSS; 5 MiB 90–93 MiB; 6 MiB 91–96; 8 MiB no faster and 95–98; 16 MiB no faster.
 */
export const MAX_QUEUED_BYTES_PER_CONNECTION = 5 * MiB;

/** Bytes all connections together may have queued for disk (the shared ByteBudget). */
export const MAX_QUEUED_BYTES_TOTAL = 128 * MiB;

/** One write of a connection's queue takes at most this many bytes... */
export const MAX_WRITE_BATCH_BYTES = 8 * MiB;
/** ...and at most this many buffers (Linux accepts 1024 per writev). */
export const MAX_WRITE_BATCH_BUFFERS = 256;

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

/**
 * The daemon collects V8's young generation after this many bytes of dropped buffers (socket
 * reads and opened records; runtime/young-gc.ts): what it leaves resident beyond live data. Unlike
 * the client it lets malloc return freed memory to the kernel (no keepFreedMemory()): that would
 * keep up to 32 MiB more resident (peak 95–100 MiB measured instead of 91).
 */
export const YOUNG_GC_INTERVAL_BYTES = 4 * MiB;

/** A paused queue (or the shared budget) resumes once it is at or below this share of its maximum. */
export const LOW_WATER_FRACTION = 0.5;

/** The network layer checkpoints and sends ACK at least every this many bytes (§9.1 step 4)... */
export const ACK_INTERVAL_BYTES = 16 * MiB;
/** ...and at least every this many milliseconds while data arrives (§9.1 step 4). */
export const ACK_INTERVAL_MS = 1000;

/**
 * Bytes queued for a peer that does not read them before we stop reading from it: our output
 * (ACK, PONG) is small, so more than this means the peer stopped reading.
 */
export const MAX_UNREAD_OUTPUT_BYTES = 256 * 1024;

/** Connections served at once before refusing with TOO_MANY_CONNECTIONS (§9.6). */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/** A partial upload not updated for this long may be swept (§9.2). */
export const DEFAULT_PARTIAL_TTL_MS = 24 * 60 * 60 * 1000;

/** OPEN needs this much free space on top of the bytes still to come (§9.5). */
export const FREE_SPACE_MARGIN_BYTES = 64 * MiB;

/**
 * Bytes an upload may have waiting for the hashing thread (store/hasher.ts) before its
 * connection stops reading, like a full write queue; they are buffers the upload still holds.
 */
export const MAX_HASH_BACKLOG_BYTES = 4 * MiB;

/** Read buffer used once per resume to re-hash the durable prefix of a partial upload. */
export const HASH_READ_BUFFER_BYTES = 1 * MiB;

/** A re-hash reports its progress (for PROGRESS frames, §9.7) every this many bytes. */
export const REHASH_PROGRESS_BYTES = 16 * MiB;

/**
 * Running hashes of interrupted uploads the daemon keeps, so a reconnecting client resumes
 * without a re-read (§9.7; store/file-hash.ts). A SHA-256 state is well under 1 KiB.
 */
export const MAX_PARKED_HASHES = 4096;

/**
 * How often a connection sends PROGRESS while the server reads stored bytes back (§9.7: at
 * least every second); more often, so that a client idle timeout near a second still holds.
 */
export const PROGRESS_INTERVAL_MS = 250;

/** How long an OPEN of the same upload identity waits for a stale holder to let go (§9.4 TAKEOVER_TIMEOUT). */
export const LOCK_HANDOVER_TIMEOUT_MS = 2000;

/** The server's reserved directory inside the output directory (§9.3). */
export const RESERVED_DIR_NAME = '.stx';

/** Modes of what the store creates: name directories, the reserved directory, partial files. */
export const NAME_DIR_MODE = 0o755;
export const RESERVED_DIR_MODE = 0o700;
export const PARTIAL_FILE_MODE = 0o600;
