// OS errors become typed stx errors (§9.5, §10): out of space is NO_SPACE (the partial upload is
// kept), anything else is IO_ERROR. The message says what failed and where, never a stack; the
// original error stays as `cause` for the local log.

import { errnoOf, ResourceError, StxError, UploadError } from '../proto/errors.js';

export { errnoOf };

/** `what` is a short verb phrase ("writing"), `where` a path relative to the output directory. */
export function toStxError(err: unknown, what: string, where: string): StxError {
  if (err instanceof StxError) return err;
  const errno = errnoOf(err) ?? 'unknown error';
  if (errno === 'ENOSPC' || errno === 'EDQUOT') {
    return new UploadError('NO_SPACE', `${what} ${where}: no space left (${errno})`, { cause: err });
  }
  // Out of file descriptors is load, not a broken disk: the client retries later (§10).
  if (errno === 'EMFILE' || errno === 'ENFILE') {
    return new ResourceError('TOO_MANY_CONNECTIONS', `${what} ${where}: the server is out of file descriptors (${errno}); retry later`, { cause: err });
  }
  return new ResourceError('IO_ERROR', `${what} ${where} failed (${errno})`, { cause: err });
}
