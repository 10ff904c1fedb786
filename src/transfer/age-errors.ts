// Typed failures of the age format (age-encryption.org/v1). The stage names follow the age
// test kit's `expect` values (C2SP/CCTV age/README.md), so that a caller and the vector tests can
// tell a malformed header from a wrong identity from a tampered payload without reading messages.
import { LocalError, UploadError } from '../proto/errors.js';

/**
 * Where an age file failed: `header` (it does not parse, or a stanza meant for our identity is
 * malformed, or the payload nonce is missing), `hmac` (the header MAC does not match the unwrapped
 * file key), `payload` (a STREAM chunk does not open, or the stream is cut or has bytes after its
 * final chunk).
 */
export type AgeIntegrityStage = 'header' | 'hmac' | 'payload';

/** A corrupt or tampered age file: INTEGRITY_FAILED. */
export class AgeIntegrityError extends UploadError {
  readonly stage: AgeIntegrityStage;
  constructor(stage: AgeIntegrityStage, message: string, options?: ErrorOptions) {
    super('INTEGRITY_FAILED', `age ${stage}: ${message}`, options);
    this.stage = stage;
  }
}

/**
 * A key problem on our side: `no-match` (none of our identities opens any stanza of the file),
 * `key` (a string or key file that is not a valid age identity or recipient). LOCAL_FILE.
 */
export type AgeKeyProblem = 'no-match' | 'key';

export class AgeKeyError extends LocalError {
  readonly problem: AgeKeyProblem;
  constructor(problem: AgeKeyProblem, message: string, options?: ErrorOptions) {
    super('LOCAL_FILE', message, options);
    this.problem = problem;
  }
}
