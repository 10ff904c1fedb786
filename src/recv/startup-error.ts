// Failures of the daemon before it serves anyone: bad --out, key file, lock, authorized keys.
// Each has a stable code (tests and callers branch on it, never on the text) and a message that
// names the path and says what to do. The CLI prints the message and exits 1 (runtime failure).

export type StartupErrorCode =
  | 'OUT_NOT_A_DIRECTORY'
  | 'OUT_PARENT_MISSING'
  | 'OUT_NOT_WRITABLE'
  | 'OUT_UNUSABLE'
  | 'KEY_PERMISSIONS_TOO_OPEN'
  | 'KEY_MISSING'
  | 'KEY_UNUSABLE'
  | 'OUT_LOCKED';

export class StartupError extends Error {
  constructor(
    readonly code: StartupErrorCode,
    message: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
    this.name = 'StartupError';
  }
}
