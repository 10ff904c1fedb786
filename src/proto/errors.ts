// The one error table of stx/1 (spec/PROTOCOL.md §10). test/spec-tables.test.ts checks that the
// spec's table says the same.

export type ErrorFamily = 'protocol' | 'crypto' | 'upload' | 'resource';

interface ErrorInfo {
  readonly wire: number;
  readonly family: ErrorFamily;
  /** Exit code of stx-send when it meets this error (§10). */
  readonly exit: number;
}

export const ERRORS = {
  BAD_PREAMBLE: { wire: 1, family: 'protocol', exit: 3 },
  VERSION_UNSUPPORTED: { wire: 2, family: 'protocol', exit: 3 },
  FRAME_TOO_LARGE: { wire: 3, family: 'protocol', exit: 3 },
  UNKNOWN_FRAME_TYPE: { wire: 4, family: 'protocol', exit: 3 },
  MALFORMED_FRAME: { wire: 5, family: 'protocol', exit: 3 },
  UNEXPECTED_FRAME: { wire: 6, family: 'protocol', exit: 3 },
  TRUNCATED: { wire: 7, family: 'protocol', exit: 3 },
  HANDSHAKE_FAILED: { wire: 20, family: 'crypto', exit: 3 },
  DECRYPT_FAILED: { wire: 21, family: 'crypto', exit: 3 },
  AUTH_REFUSED: { wire: 22, family: 'crypto', exit: 5 },
  KEY_LIMIT: { wire: 23, family: 'crypto', exit: 3 },
  SERVER_KEY_MISMATCH: { wire: 24, family: 'crypto', exit: 4 },
  BAD_NAME: { wire: 30, family: 'upload', exit: 6 },
  BUSY: { wire: 31, family: 'upload', exit: 6 },
  EXISTS: { wire: 32, family: 'upload', exit: 6 },
  NO_SPACE: { wire: 33, family: 'upload', exit: 6 },
  TOO_LARGE: { wire: 34, family: 'upload', exit: 6 },
  BAD_OFFSET: { wire: 35, family: 'upload', exit: 3 },
  INTEGRITY_FAILED: { wire: 36, family: 'upload', exit: 7 },
  SUPERSEDED: { wire: 37, family: 'upload', exit: 6 },
  TIMEOUT: { wire: 50, family: 'resource', exit: 3 },
  TOO_MANY_CONNECTIONS: { wire: 51, family: 'resource', exit: 3 },
  SHUTTING_DOWN: { wire: 52, family: 'resource', exit: 3 },
  IO_ERROR: { wire: 53, family: 'resource', exit: 6 },
  INTERNAL: { wire: 54, family: 'resource', exit: 1 },
} as const satisfies Record<string, ErrorInfo>;

export type ErrorCode = keyof typeof ERRORS;

const BY_WIRE = new Map<number, ErrorCode>(
  (Object.keys(ERRORS) as ErrorCode[]).map((code) => [ERRORS[code].wire, code]),
);

/** The code for a wire number, or undefined for a number this version does not define. */
export function codeFromWire(wire: number): ErrorCode | undefined {
  return BY_WIRE.get(wire);
}

/** Codes after which a client reconnects and resumes instead of giving up (§10). */
export const TRANSIENT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'SHUTTING_DOWN',
  'KEY_LIMIT',
  'TIMEOUT',
  'TOO_MANY_CONNECTIONS',
  'TRUNCATED',
]);

/** Base of every error stx raises on purpose. Branch on `code`, never on `message`. */
export class StxError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
  }
  get wire(): number {
    return ERRORS[this.code].wire;
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
export class ResourceError extends StxError {
  override readonly name = 'ResourceError';
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
    case 'resource':
      return new ResourceError(code, message);
  }
}
