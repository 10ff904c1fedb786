// Wire limits of stx/1 (spec/PROTOCOL.md §2, §8). Units are in the names.

/** Protocol version this implementation speaks (§3). */
export const PROTOCOL_VERSION = 1;

/** Preamble magic "STX\0" and total preamble size (§3). */
export const PREAMBLE_MAGIC = Buffer.from([0x53, 0x54, 0x58, 0x00]);
export const PREAMBLE_BYTES = 8;

/** Size of the u32 length prefix of frames and records (§2, §8). */
export const LENGTH_PREFIX_BYTES = 4;

/** Data bytes in one DATA frame (§2). */
export const MAX_DATA_CHUNK_BYTES = 1_048_576;

/** DATA payload header: offset u64 (§2.2). */
export const DATA_HEADER_BYTES = 8;

/** Largest frame body (type + payload) (§2). */
export const MAX_FRAME_LENGTH_BYTES = 1 + DATA_HEADER_BYTES + MAX_DATA_CHUNK_BYTES;

/** Largest payload of any frame but DATA (§2). */
export const MAX_CONTROL_PAYLOAD_BYTES = 16_384;

/** Largest plaintext frame body: only control frames travel in plaintext (§2). */
export const MAX_PLAINTEXT_FRAME_LENGTH_BYTES = 1 + MAX_CONTROL_PAYLOAD_BYTES;

/** AES-GCM tag length (§8). */
export const TAG_BYTES = 16;

/** Record length bounds (§8). */
export const MAX_RECORD_LENGTH_BYTES = MAX_FRAME_LENGTH_BYTES + TAG_BYTES;
/** Longest record in a state where the receiver does not accept DATA: one control frame (§2, §8). */
export const MAX_CONTROL_RECORD_LENGTH_BYTES = MAX_PLAINTEXT_FRAME_LENGTH_BYTES + TAG_BYTES;
export const MIN_RECORD_LENGTH_BYTES = 1 + TAG_BYTES;

/** Per-key, per-direction record limits (§8). */
export const MAX_RECORDS_PER_KEY = 2 ** 32;
export const MAX_BYTES_PER_KEY = 2 ** 38;

/** Largest integer a uint/int field or a DATA offset may carry (§2.1, §2.2). */
export const MAX_SAFE_UINT = Number.MAX_SAFE_INTEGER;

/** Name limits (§9.3). */
export const MAX_NAME_BYTES = 4096;
export const MAX_NAME_COMPONENT_BYTES = 255;
/**
 * Components a name may have (§9.3, revision 1.3). Each is a directory the server may have to
 * create and check; 64 is deeper than real trees go (a Maven or nested node_modules path has
 * well under 40) and keeps a name's directories and lookups bounded.
 */
export const MAX_NAME_COMPONENTS = 64;
export const MAX_MESSAGE_BYTES = 1024;

/** Bytes of a resumption ticket (CLIENT_HELLO `ticket`, NEW_TICKET `ticket`, §7.5, revision 1.13). */
export const MAX_TICKET_BYTES = 512;
/** Seconds a ticket may be kept and used (NEW_TICKET `lifetime`, §7.5): 7 days, as TLS 1.3's. */
export const MAX_TICKET_LIFETIME_S = 7 * 24 * 3600;

/** Bytes of a stream upload's id (OPEN `stream`, §9.8). */
export const STREAM_ID_BYTES = 16;

/**
 * Largest `size` of a PUT (§9.11, revision 1.4): a whole file sent without waiting for an answer,
 * never resumed (a cut sends it again whole), so a loss costs at most this much again.
 */
export const MAX_PUT_BYTES = MAX_DATA_CHUNK_BYTES;

/**
 * PUT_INLINE (§9.11, revision 1.6): the most its payload spends besides the name's and the data's
 * bytes (map, keys, headers, mtime, mode, sha256). A file whose name and data fit in
 * MAX_CONTROL_PAYLOAD_BYTES less this always fits in one PUT_INLINE.
 */
export const PUT_INLINE_OVERHEAD_BYTES = 96;

/**
 * Most PUTs one PUTS_DONE answers (§9.11, revision 1.6): its payload (map, key "sha256s", bin 16
 * header: 12 bytes, and 32 bytes per PUT) stays within MAX_CONTROL_PAYLOAD_BYTES.
 */
export const MAX_PUTS_PER_DONE = Math.floor((MAX_CONTROL_PAYLOAD_BYTES - 12) / 32);

/**
 * PUT_PACK (§9.11 step 8, revision 1.9): at most MAX_PACK_FILES files in one pack, whose bytes
 * together (one DATA frame's worth) are at most MAX_PACK_BYTES.
 */
export const MAX_PACK_FILES = 256;
export const MAX_PACK_BYTES = MAX_DATA_CHUNK_BYTES;

/**
 * Pipelined MKDIR and SYMLINK (§9.8, revision 1.11): a client has at most MAX_MAKES_AHEAD of them
 * sent and not yet answered by MADE on a connection.
 */
export const MAX_MAKES_AHEAD = 64;

/**
 * Ranged uploads (§9.13, revision 1.5). A ranged upload has at most MAX_RANGES_PER_UPLOAD ranges
 * over its life (each is a line of its crash-safe record) and at most MAX_STREAMS_PER_UPLOAD of
 * them claimed by a connection at once; a range is at least MIN_RANGE_BYTES long unless it ends
 * at the file's end, so that a client cannot make the server keep a record per few bytes.
 */
export const MAX_RANGES_PER_UPLOAD = 64;
export const MAX_STREAMS_PER_UPLOAD = 16;
export const MIN_RANGE_BYTES = MAX_DATA_CHUNK_BYTES;

/** Mode bits allowed in OPEN (§4). */
export const MAX_MODE = 0o7777;

/** Default timeouts (§9.6). */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
export const IDLE_TIMEOUT_MS = 60_000;
export const PING_INTERVAL_MS = 15_000;
