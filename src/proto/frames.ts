// Frame types of stx/1 (spec/PROTOCOL.md §4): the one place that maps names to type bytes.

export const FRAME_TYPES = {
  CLIENT_HELLO: 0x01,
  SERVER_HELLO: 0x02,
  KEY_EXCHANGE: 0x03,
  CLIENT_FINISHED: 0x04,
  SERVER_FINISHED: 0x05,
  OPEN: 0x10,
  OPEN_OK: 0x11,
  DATA: 0x12,
  ACK: 0x13,
  END: 0x14,
  DONE: 0x15,
  PROGRESS: 0x16,
  MKDIR: 0x17,
  SYMLINK: 0x18,
  MADE: 0x19,
  PUT: 0x1a,
  PUT_DONE: 0x1b,
  PUT_FAILED: 0x1c,
  PUT_INLINE: 0x1d,
  PUTS_DONE: 0x1e,
  END_DETACHED: 0x1f,
  ERROR: 0x20,
  PING: 0x21,
  PONG: 0x22,
  GOAWAY: 0x23,
  NEW_TICKET: 0x24,
  LIST: 0x30,
  LIST_ENTRY: 0x31,
  LIST_END: 0x32,
  GET: 0x33,
  GET_OK: 0x34,
  GET_END: 0x35,
  LIST_DIR: 0x36,
  PUT_PACK: 0x37,
  RANGE: 0x40,
  RANGE_OK: 0x41,
  RANGE_END: 0x42,
  RANGE_DONE: 0x43,
} as const;

export type FrameName = keyof typeof FRAME_TYPES;

export interface ClientHello {
  readonly type: 'CLIENT_HELLO';
  readonly random: Buffer;
  readonly x25519: Buffer;
  /** A ticket of an earlier session with this server, to resume with (§7.5, revision 1.13). */
  readonly ticket?: Buffer;
  /** 1: the client asks for a NEW_TICKET after SERVER_FINISHED (§7.5); absent (or 0): it does not. */
  readonly tickets?: number;
}
export interface ServerHello {
  readonly type: 'SERVER_HELLO';
  readonly random: Buffer;
  readonly x25519: Buffer;
  /** DER SubjectPublicKeyInfo of the server's RSA key. */
  readonly server_key: Buffer;
  /** 1: the server accepted CLIENT_HELLO's ticket, no KEY_EXCHANGE follows (§7.5); absent (or 0): a full handshake. */
  readonly resumed?: number;
}
export interface KeyExchange {
  readonly type: 'KEY_EXCHANGE';
  readonly encrypted_secret: Buffer;
}
export interface ClientFinished {
  readonly type: 'CLIENT_FINISHED';
  readonly verify: Buffer;
  /** Raw Ed25519 public key and signature (§7.4): both present or both absent. */
  readonly identity?: Buffer;
  readonly signature?: Buffer;
}
export interface ServerFinished {
  readonly type: 'SERVER_FINISHED';
  readonly verify: Buffer;
}
interface Open {
  readonly type: 'OPEN';
  readonly name: string;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  /**
   * A stream of unknown length (§9.8): 16 random bytes chosen once per run, part of the upload's
   * identity (§9.2). With it `size` is 0 and END carries the length.
   */
  readonly stream?: Buffer;
  /**
   * The whole file's SHA-256, sent by a client that skips files the server already holds
   * identical (stx-send --checksum, §9.1): the server may then answer DONE at once.
   */
  readonly sha256?: Buffer;
}
interface OpenOk {
  readonly type: 'OPEN_OK';
  readonly offset: number;
}
interface Data {
  readonly type: 'DATA';
  readonly offset: number;
  readonly data: Buffer;
}
interface Ack {
  readonly type: 'ACK';
  readonly offset: number;
}
interface End {
  readonly type: 'END';
  readonly sha256: Buffer;
  /** The stream's length (§9.8); required after a stream OPEN, else absent or OPEN's `size`. */
  readonly size?: number;
}
/**
 * END of an OPEN upload whose answer comes later, as a PUT's (§9.1, §9.11, revision 1.7): both
 * sides are Ready at once; PUT_DONE, PUTS_DONE or PUT_FAILED answers it in the order of the PUTs.
 */
interface EndDetached {
  readonly type: 'END_DETACHED';
  readonly sha256: Buffer;
  /** As END's: the stream's length (§9.8), else absent or OPEN's `size`. */
  readonly size?: number;
}
interface Done {
  readonly type: 'DONE';
  readonly size: number;
  readonly sha256: Buffer;
}
/** The server is reading stored bytes back before it can answer (§9.7): a sign of life. */
interface ProgressFrame {
  readonly type: 'PROGRESS';
  /** Bytes read back so far, of `total`. */
  readonly done: number;
  readonly total: number;
}
/** Creates a directory, or sets the mode and mtime of one that exists (§9.8). */
interface Mkdir {
  readonly type: 'MKDIR';
  readonly name: string;
  readonly mtime: number;
  readonly mode: number;
}
/** Creates a symbolic link whose relative `target` stays inside the output directory (§9.8). */
interface Symlink {
  readonly type: 'SYMLINK';
  readonly name: string;
  readonly target: string;
  readonly mtime: number;
}
/** MKDIR or SYMLINK done (§9.8). */
interface Made {
  readonly type: 'MADE';
}
/**
 * A whole small file with no OPEN_OK to wait for (§9.11): DATA from offset 0 and END follow at
 * once; the answer (PUT_DONE or PUT_FAILED) comes later, in the order of the PUTs.
 */
interface Put {
  readonly type: 'PUT';
  readonly name: string;
  /** At most MAX_PUT_BYTES. */
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
}
/** A PUT published and durable (§9.11): the answer to the oldest PUT not yet answered. */
interface PutDone {
  readonly type: 'PUT_DONE';
  readonly size: number;
  readonly sha256: Buffer;
}
/** A PUT refused or failed (§9.11), alone: the connection goes on. */
interface PutFailed {
  readonly type: 'PUT_FAILED';
  /** Wire number of the error code (§10). */
  readonly code: number;
  readonly message: string;
}
/**
 * A whole small file in one control frame (§9.11, revision 1.6): a PUT, its DATA and its END in
 * one record. Answered as a PUT is, in the order of all PUTs.
 */
interface PutInline {
  readonly type: 'PUT_INLINE';
  readonly name: string;
  readonly mtime: number;
  readonly mode: number;
  /** SHA-256 of `data`, as END's. */
  readonly sha256: Buffer;
  /** The whole file; its length is the file's size. */
  readonly data: Buffer;
}
/**
 * The answer to the next n PUTs not yet answered, all published and durable (§9.11, revision
 * 1.6): their SHA-256 values concatenated, 32 bytes each, in the order of the PUTs.
 */
interface PutsDone {
  readonly type: 'PUTS_DONE';
  readonly sha256s: Buffer;
}
/**
 * Many small files in two records (§9.11 step 8, revision 1.9): this header, then their bytes
 * concatenated as DATA. Each file is a PUT, answered in the order of all PUTs. Columnar, every
 * column in the files' order: checked whole by the decoder (pack.ts); read it with packFiles().
 */
interface PutPack {
  readonly type: 'PUT_PACK';
  /** The n names joined by NUL (which no valid name holds, §9.3). */
  readonly names: string;
  /** n sizes, u32 big-endian each. */
  readonly sizes: Buffer;
  /** n mtimes, i64 big-endian each. */
  readonly mtimes: Buffer;
  /** n modes, u16 big-endian each. */
  readonly modes: Buffer;
  /** n SHA-256 values, 32 bytes each. */
  readonly sha256s: Buffer;
}
interface ErrorFrame {
  readonly type: 'ERROR';
  /** Wire number of the error code (§10); numbers this version does not know are kept. */
  readonly code: number;
  readonly message: string;
}
interface Ping {
  readonly type: 'PING';
  readonly seq: number;
}
interface Pong {
  readonly type: 'PONG';
  readonly seq: number;
}
interface GoAway {
  readonly type: 'GOAWAY';
  readonly code: number;
  readonly message: string;
}
/** A ticket to resume with (§7.5, revision 1.13): the first record after SERVER_FINISHED, to a client that asked. */
export interface NewTicket {
  readonly type: 'NEW_TICKET';
  /** Opaque to the client. */
  readonly ticket: Buffer;
  /** Seconds the client may keep it, at most MAX_TICKET_LIFETIME_S. */
  readonly lifetime: number;
}

/** List the published files under `prefix` (§9.10), after `after` in listing order when given. */
interface List {
  readonly type: 'LIST';
  readonly prefix: string;
  readonly after?: string;
}
/** One published file of a listing (§9.10); `sha256` only where the server knows it without reading the file. */
interface ListEntry {
  readonly type: 'LIST_ENTRY';
  readonly name: string;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  readonly sha256?: Buffer;
}
/** One directory of a listing (§9.10), before the names under it. */
interface ListDir {
  readonly type: 'LIST_DIR';
  readonly name: string;
  readonly mtime: number;
  readonly mode: number;
}
/** The listing is over; `next`, when present, is where a following LIST goes on (§9.10). */
interface ListEnd {
  readonly type: 'LIST_END';
  readonly count: number;
  readonly next?: string;
}
/** Download `name` from `offset` (§9.9); `size` and `mtime` name the version the client holds a prefix of. */
interface Get {
  readonly type: 'GET';
  readonly name: string;
  readonly offset: number;
  readonly size?: number;
  readonly mtime?: number;
}
/** The file a GET serves and where its DATA starts (§9.9). */
interface GetOk {
  readonly type: 'GET_OK';
  readonly offset: number;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  readonly sha256?: Buffer;
}
/** The download's last frame: the SHA-256 of the whole file as the server read it (§9.9). */
interface GetEnd {
  readonly type: 'GET_END';
  readonly size: number;
  readonly sha256: Buffer;
}

/**
 * Claims bytes [start, end) of the ranged upload with OPEN's identity (§9.13): one of several
 * connections carrying one file in parallel.
 */
interface Range {
  readonly type: 'RANGE';
  readonly name: string;
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  readonly start: number;
  readonly end: number;
}
/** The claim is granted: DATA goes on from `offset`, the range's durable end so far (§9.13). */
interface RangeOk {
  readonly type: 'RANGE_OK';
  readonly offset: number;
}
/** All of the claimed range was sent (§9.13); `end` repeats the claim's. */
interface RangeEnd {
  readonly type: 'RANGE_END';
  readonly end: number;
}
/** The whole range is durable (§9.13): the connection is Ready again. */
interface RangeDone {
  readonly type: 'RANGE_DONE';
  readonly end: number;
}

export type Frame =
  | ClientHello
  | ServerHello
  | KeyExchange
  | ClientFinished
  | ServerFinished
  | Open
  | OpenOk
  | Data
  | Ack
  | End
  | EndDetached
  | Done
  | ProgressFrame
  | Mkdir
  | Symlink
  | Made
  | Put
  | PutDone
  | PutFailed
  | PutInline
  | PutsDone
  | PutPack
  | ErrorFrame
  | Ping
  | Pong
  | GoAway
  | NewTicket
  | List
  | ListEntry
  | ListDir
  | ListEnd
  | Get
  | GetOk
  | GetEnd
  | Range
  | RangeOk
  | RangeEnd
  | RangeDone;

