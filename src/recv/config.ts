// Receiver-side bounds (STYLE.md "Backpressure & resources"). Wire limits live in
// src/proto/limits.ts; these are the server's own resource choices. Units are in the names.

const MiB = 1024 * 1024;

/**
 * Bytes one connection may have queued for disk; its socket pauses before this is crossed.
 * 5 MiB keeps a writer busy (a write takes all of it) and the receiver's memory small. Measured
 * (`npm run bench`, 1 GiB and 4 GiB): 4 MiB was slower (220–226 MiB/s against 241–264) for
 * 89–90 MiB peak RSS; 5 MiB 90–93 MiB; 6 MiB 91–96; 8 MiB no faster and 95–98; 16 MiB no faster.
 */
export const MAX_QUEUED_BYTES_PER_CONNECTION = 5 * MiB;
/**
 * PUTs (§9.11) one connection may have received and not yet answered, and the bytes they hold:
 * at either bound the connection stops reading until answers go out. Each PUT is a job writing
 * and syncing its file. The count is high enough for the publishing threads' batches (one
 * filesystem sync per batch, storage/local/put-pool.ts) to grow to hundreds of small files: at
 * 128 a batch held at most 64, and the syncs per file cost twice as much.
 */
export const MAX_PUTS_PENDING = 1024;
export const MAX_PUT_PENDING_BYTES = 8 * MiB;
/**
 * OPEN uploads ended by END_DETACHED and not yet answered, per connection (§9.1, §9.11, revision
 * 1.7): each holds its partial's descriptor, hash and lock until published. Reading stops at it,
 * as at the PUT bounds. stx-send keeps at most as many (tree.ts), so it never meets the bound.
 */
export const MAX_DETACHED_PENDING = 8;
/**
 * PUT jobs running at once in the whole daemon; more wait their turn (their data stays counted on
 * their connection, MAX_PUT_PENDING_BYTES). Twice what the publishing thread works on at once
 * (storage/local/put-pool.ts: 2 batches of 256 files), so that the next batches fill up while
 * two run: at 512, exactly two full batches, the jobs freed by a finished batch reached the pool
 * one by one and a batch left as soon as 64 waited (on 10,000 files of 4 KiB, 61 batches and 122
 * filesystem syncs per run, where 1024 gives 42 and 84).
 */
export const MAX_PUT_JOBS_RUNNING = 1024;

/** Bytes all connections together may have queued for disk (the shared ByteBudget). */
export const MAX_QUEUED_BYTES_TOTAL = 128 * MiB;

/**
 * The daemon collects V8's young generation after this many bytes of dropped buffers (socket
 * reads and opened records; runtime/young-gc.ts): what it leaves resident beyond live data.
 */
export const YOUNG_GC_INTERVAL_BYTES = 4 * MiB;

/**
 * Freed memory malloc keeps rather than give back to the kernel (runtime/young-gc.ts
 * keepFreedMemory): twice the young-generation interval, so that what one collection frees is
 * reused by the next allocations instead of being faulted in and zeroed again. The client keeps 32
 * MiB; the daemon less, for its resident memory (32 MiB once cost 95–100 MiB peak against 91 on
 * one upload). With malloc trimming at its default 128 KiB, 100 uploads at once cost the daemon
 * ~70,000 more page faults per 800 MiB than one upload (issue 15). Kept from the daemon's start
 * since its sockets read into one shared buffer (recv/reads.ts): without a new 64 KiB buffer per
 * read holding the heap's top, malloc gave the top back and grew it again all through one upload
 * (735 brk calls per 256 MiB); kept, one 1 GiB upload cost 2.2-2.4 CPU s against 2.7-2.9 before
 * the shared buffer, at the same peak (84 MiB; 4 GiB: 89-93 MiB against 92-95).
 */
export const KEEP_FREED_BYTES = 2 * YOUNG_GC_INTERVAL_BYTES;

/** The network layer checkpoints and sends ACK at least every this many bytes (§9.1 step 4)... */
export const ACK_INTERVAL_BYTES = 16 * MiB;
/** ...and at least every this many milliseconds while data arrives (§9.1 step 4). */
export const ACK_INTERVAL_MS = 1000;

/**
 * What our output queued for a peer that does not read it may cost before we stop reading from
 * it: its bytes plus OUTPUT_RECORD_OVERHEAD_BYTES per record. Our output (ACK, PONG) is small, so
 * more than this, or more than MAX_UNREAD_OUTPUT_RECORDS records, means the peer stopped reading.
 * Counted in bytes alone it was 256 KiB of 36-byte PONGs: ~8,600 records, ~25 MiB resident for
 * one connection (issue 14).
 */
export const MAX_UNREAD_OUTPUT_BYTES = 64 * 1024;
export const MAX_UNREAD_OUTPUT_RECORDS = 128;
/** A record waiting in the socket's buffer costs about this much beyond its bytes (a write request and its buffer). */
export const OUTPUT_RECORD_OVERHEAD_BYTES = 512;

/**
 * The memory budget (--max-memory) by default: a quarter of the machine's memory, at most
 * 64 MiB and at least 32 MiB. It covers what connections hold: queued and hashing bodies,
 * incomplete records, unread output. The runtime holds ~90–120 MiB besides (code, heaps, the
 * pool's free buffers): at 256 MiB the daemon's peak RSS was 330–460 MiB with 100 uploads at
 * once, at 128 MiB 220–250 MiB (225–254 at 1000 uploads once it kept freed memory), at 64 MiB
 * 174–190 and 181–201 (issue 15, bench extras concurrency). One upload uses ~12 MiB of it; 100
 * slow ones fill it with a record each, and every MiB of it first touched costs the daemon ~4 ms
 * of page faults (DESIGN.md, "Many clients at once").
 */
export function defaultMaxMemoryBytes(totalMemoryBytes: number): number {
  return Math.max(32 * MiB, Math.min(64 * MiB, Math.floor(totalMemoryBytes / 4 / MiB) * MiB));
}

/**
 * The share of the memory budget the buffers of long records (the body pool's buffers out:
 * records being opened, written and hashed) may take together, and the least they may always
 * take (one upload at full speed holds ~12 of 1 MiB). With 100 slow uploads each holding a
 * record that is still arriving, the pool grew to the whole budget, and every MiB of it first
 * touched cost page faults (DESIGN.md, "Many clients at once").
 */
export const RECORD_BUFFERS_SHARE = 0.5;
export const MIN_RECORD_BUFFERS_BYTES = 16 * MiB;

/** What the buffers of long records may hold together under a budget of `maxMemoryBytes`. */
export function recordBuffersMaxBytes(maxMemoryBytes: number): number {
  return Math.min(maxMemoryBytes, Math.max(MIN_RECORD_BUFFERS_BYTES, Math.floor(maxMemoryBytes * RECORD_BUFFERS_SHARE)));
}

/** The least --max-memory accepted: room for a few long records (1 MiB each) beside everything else. */
export const MIN_MAX_MEMORY_BYTES = 8 * MiB;

/**
 * A connection holding at most this much is never stopped by the memory budget, so that a
 * newcomer still gets its handshake and OPEN through (a small-record buffer is 64 KiB).
 */
export const MEMORY_FLOOR_BYTES = 128 * 1024;

/** Connections served at once before refusing with TOO_MANY_CONNECTIONS (§9.6). */
export const DEFAULT_MAX_CONNECTIONS = 1024;

/**
 * Handshakes in progress (accepted, SERVER_FINISHED not yet sent) before refusing newcomers with
 * TOO_MANY_CONNECTIONS (§9.6; recv/admission.ts): from all sources, and from one source (an IPv4
 * address or IPv6 /64). A client has one in progress per connection it opens, for a round trip
 * or two; 32 lets one host start that many uploads at once.
 */
export const DEFAULT_MAX_HANDSHAKES = 256;
export const DEFAULT_MAX_HANDSHAKES_PER_SOURCE = 32;

/**
 * Handshakes one source may start per second (a token bucket of twice that): each costs an RSA
 * decryption, ~2 ms of the event loop with a 3072-bit key, so a source flooding handshakes gets
 * about 4 % of it. A client starts one per upload attempt.
 */
export const DEFAULT_HANDSHAKE_RATE_PER_SOURCE = 20;

/** A partial upload not updated for this long may be swept (§9.2). */
export const DEFAULT_PARTIAL_TTL_MS = 24 * 60 * 60 * 1000;

/** OPEN needs this much free space on top of the bytes still to come (§9.5). */
export const FREE_SPACE_MARGIN_BYTES = 64 * MiB;

/**
 * How often a connection sends PROGRESS while the server reads stored bytes back (§9.7: at
 * least every second); more often, so that a client idle timeout near a second still holds.
 */
export const PROGRESS_INTERVAL_MS = 250;

/** How long an OPEN of the same upload identity waits for a stale holder to let go (§9.4 TAKEOVER_TIMEOUT). */
export const LOCK_HANDOVER_TIMEOUT_MS = 2000;

/**
 * Ranges (§9.13) one client may be sending at once, over all its uploads: each is a connection
 * with its own write queue, so this bounds what one client's parallel streams hold.
 */
export const MAX_STREAMS_PER_CLIENT = 64;

/** The reserved directory and the modes of what the local store creates (storage/local/config.ts). */
export { NAME_DIR_MODE, RESERVED_DIR_NAME } from '../storage/local/config.js';

/**
 * --max-partial-bytes when not given (§9.5): what one client's partial uploads may reserve, the
 * larger of this and a quarter of the space free for --out at start (Store.init).
 */
export const MIN_DEFAULT_MAX_PARTIAL_BYTES = 10 * 1024 * MiB;
/** ...a quarter: a client that leaves partials behind holds at most a quarter of the free space. */
export const DEFAULT_MAX_PARTIAL_FREE_FRACTION = 0.25;

/**
 * Read-backs (§9.7) are charged to the client that asks (store/read-back.ts): each client may
 * have one in progress, and its bytes come out of an allowance that refills at this rate, up to
 * READ_BACK_BURST_BYTES. One read-back always starts when the allowance is not overdrawn,
 * however large, and overdraws it: the client's next one waits until it is paid back (a client
 * that re-verified 10 GiB waits about 5 minutes for its next read-back, with PROGRESS). 32 MiB/s
 * is under a sixth of what the hashing thread reads on a slow core (~250 MB/s measured here).
 */
export const READ_BACK_BYTES_PER_SECOND = 32 * MiB;
export const READ_BACK_BURST_BYTES = 64 * MiB;
/** OPENs (or ENDs) of one client that may wait for its read-back turn; more are RATE_LIMITED. */
export const MAX_READ_BACKS_WAITING = 4;
/**
 * A read-back that would wait longer than this for the client's allowance is RATE_LIMITED at
 * once (the client retries later); a shorter wait is spent waiting, with PROGRESS (§9.7).
 */
export const MAX_READ_BACK_WAIT_MS = 5 * 60_000;

/**
 * Downloads and listings (§9.9, §9.10): DATA and LIST_ENTRY frames are queued for the peer until
 * this many bytes, or MAX_UNREAD_OUTPUT_RECORDS records, wait in the socket, then the command
 * awaits 'drain' (TCP is the flow control). Four DATA records keep the link busy.
 */
export const MAX_SERVE_OUTPUT_BYTES = 4 * MiB;

/** Entries one LIST answers at most; LIST_END's `next` says where the next LIST goes on (§9.10). */
export const MAX_LIST_ENTRIES = 10_000;

/** SHA-256 values the daemon remembers for published files it has read whole (recv/digests.ts). */
export const MAX_KNOWN_DIGESTS = 65_536;
