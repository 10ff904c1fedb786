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

/** Bytes all connections together may have queued for disk (the shared ByteBudget). */
export const MAX_QUEUED_BYTES_TOTAL = 128 * MiB;

/**
 * The daemon collects V8's young generation after this many bytes of dropped buffers (socket
 * reads and opened records; runtime/young-gc.ts): what it leaves resident beyond live data. Unlike
 * the client it lets malloc return freed memory to the kernel (no keepFreedMemory()): that would
 * keep up to 32 MiB more resident (peak 95–100 MiB measured instead of 91).
 */
export const YOUNG_GC_INTERVAL_BYTES = 4 * MiB;

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
 * 256 MiB and at least 32 MiB. It covers what connections hold: queued and hashing bodies,
 * incomplete records, unread output.
 */
export function defaultMaxMemoryBytes(totalMemoryBytes: number): number {
  return Math.max(32 * MiB, Math.min(256 * MiB, Math.floor(totalMemoryBytes / 4 / MiB) * MiB));
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

/** The reserved directory and the modes of what the local store creates (storage/local/config.ts). */
export { NAME_DIR_MODE, RESERVED_DIR_NAME } from '../storage/local/config.js';
