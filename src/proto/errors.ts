// The one error table of stx/1 (spec/PROTOCOL.md §10). test/spec-tables.test.ts checks that the
// spec's table says the same.

/** `local` errors are found by one side alone and never cross the wire (no wire number). */
type ErrorFamily = 'protocol' | 'crypto' | 'upload' | 'command' | 'resource' | 'local';

interface ErrorInfo {
  readonly wire: number | null;
  readonly family: ErrorFamily;
  /** Exit code of stx-send when it meets this error (§10). */
  readonly exit: number;
  /** Whether a client reconnects and resumes after it (§10): the one retry rule. */
  readonly transient: boolean;
}

export const ERRORS = {
  BAD_PREAMBLE: { wire: 1, family: 'protocol', exit: 3, transient: false },
  VERSION_UNSUPPORTED: { wire: 2, family: 'protocol', exit: 3, transient: false },
  FRAME_TOO_LARGE: { wire: 3, family: 'protocol', exit: 3, transient: false },
  UNKNOWN_FRAME_TYPE: { wire: 4, family: 'protocol', exit: 3, transient: false },
  MALFORMED_FRAME: { wire: 5, family: 'protocol', exit: 3, transient: false },
  UNEXPECTED_FRAME: { wire: 6, family: 'protocol', exit: 3, transient: false },
  TRUNCATED: { wire: 7, family: 'protocol', exit: 3, transient: true },
  HANDSHAKE_FAILED: { wire: 20, family: 'crypto', exit: 3, transient: false },
  DECRYPT_FAILED: { wire: 21, family: 'crypto', exit: 3, transient: true },
  AUTH_REFUSED: { wire: 22, family: 'crypto', exit: 5, transient: false },
  KEY_LIMIT: { wire: 23, family: 'crypto', exit: 3, transient: true },
  SERVER_KEY_MISMATCH: { wire: 24, family: 'crypto', exit: 4, transient: false },
  BAD_NAME: { wire: 30, family: 'upload', exit: 6, transient: false },
  BUSY: { wire: 31, family: 'upload', exit: 6, transient: false },
  EXISTS: { wire: 32, family: 'upload', exit: 6, transient: false },
  NO_SPACE: { wire: 33, family: 'upload', exit: 6, transient: false },
  TOO_LARGE: { wire: 34, family: 'upload', exit: 6, transient: false },
  BAD_OFFSET: { wire: 35, family: 'upload', exit: 3, transient: false },
  INTEGRITY_FAILED: { wire: 36, family: 'upload', exit: 7, transient: false },
  SUPERSEDED: { wire: 37, family: 'upload', exit: 6, transient: false },
  NOT_FOUND: { wire: 38, family: 'command', exit: 6, transient: false },
  NOT_ALLOWED: { wire: 39, family: 'command', exit: 6, transient: false },
  BAD_RANGE: { wire: 45, family: 'upload', exit: 3, transient: false },
  TIMEOUT: { wire: 50, family: 'resource', exit: 3, transient: true },
  TOO_MANY_CONNECTIONS: { wire: 51, family: 'resource', exit: 3, transient: true },
  SHUTTING_DOWN: { wire: 52, family: 'resource', exit: 3, transient: true },
  IO_ERROR: { wire: 53, family: 'resource', exit: 6, transient: false },
  INTERNAL: { wire: 54, family: 'resource', exit: 1, transient: false },
  RATE_LIMITED: { wire: 55, family: 'resource', exit: 3, transient: true },
  HELD_ELSEWHERE: { wire: 56, family: 'resource', exit: 3, transient: true },
  TOO_MANY_STREAMS: { wire: 58, family: 'resource', exit: 3, transient: true },
  CONNECT_FAILED: { wire: null, family: 'local', exit: 3, transient: true },
  CONNECTION_LOST: { wire: null, family: 'local', exit: 3, transient: true },
  LOCAL_FILE: { wire: null, family: 'local', exit: 1, transient: false },
  USAGE: { wire: null, family: 'local', exit: 2, transient: false },
  INTERRUPTED: { wire: null, family: 'local', exit: 130, transient: false },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERRORS;

const BY_WIRE = new Map<number, ErrorCode>(
  (Object.keys(ERRORS) as ErrorCode[]).flatMap((code) => {
    const wire = ERRORS[code].wire;
    return wire === null ? [] : [[wire, code] as const];
  }),
);

/** The code for a wire number, or undefined for a number this version does not define. */
export function codeFromWire(wire: number): ErrorCode | undefined {
  return BY_WIRE.get(wire);
}

/**
 * The number `code` goes on the wire with. Local codes never should; if one reaches a frame
 * by a bug, the peer reads INTERNAL.
 */
export function wireNumber(code: ErrorCode): number {
  return ERRORS[code].wire ?? ERRORS.INTERNAL.wire;
}

/** The errno name (`ENOENT`, `ECONNREFUSED`, …) of a Node.js system error, if it has one. */
export function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' ? err.code : undefined;
}

/** Base of every error stx raises on purpose. Branch on `code`, never on `message`. */
export class StxError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
  get wire(): number {
    return wireNumber(this.code);
  }
  /** Whether a client reconnects and resumes after it (§10). */
  get transient(): boolean {
    return ERRORS[this.code].transient;
  }
  /** Whether this code is for one side alone (never sent to the peer). */
  get local(): boolean {
    return ERRORS[this.code].wire === null;
  }
  get family(): ErrorFamily {
    return ERRORS[this.code].family;
  }
  get exitCode(): number {
    return ERRORS[this.code].exit;
  }
}

export class ProtocolError extends StxError {
  override readonly name = 'ProtocolError';
}
export class CryptoError extends StxError {
  override readonly name = 'CryptoError';
}
export class UploadError extends StxError {
  override readonly name = 'UploadError';
}
/** A download or listing the server will not serve (§9.9, §9.10). */
export class CommandError extends StxError {
  override readonly name = 'CommandError';
}
export class ResourceError extends StxError {
  override readonly name = 'ResourceError';
}
/** A failure one side found by itself: usage, its own file, the network, an interrupt. */
export class LocalError extends StxError {
  override readonly name = 'LocalError';
}

/** Builds the right subclass for a code (used when an ERROR frame arrives). */
export function errorFor(code: ErrorCode, message: string): StxError {
  switch (ERRORS[code].family) {
    case 'protocol':
      return new ProtocolError(code, message);
    case 'crypto':
      return new CryptoError(code, message);
    case 'upload':
      return new UploadError(code, message);
    case 'command':
      return new CommandError(code, message);
    case 'resource':
      return new ResourceError(code, message);
    case 'local':
      return new LocalError(code, message);
  }
}
