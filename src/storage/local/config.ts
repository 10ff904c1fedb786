// Layout and modes of the local-disk backend.
import { RESERVED_NAME_PREFIX } from '../backend.js';

/** The server's reserved directory inside the output directory (§9.3): names cannot reach it. */
export const RESERVED_DIR_NAME = RESERVED_NAME_PREFIX;
/** Where partial uploads live, under the reserved directory. */
export const PARTIALS_DIR_NAME = 'partials';

/** Modes of what the backend creates: name directories, the reserved directory, partial files. */
export const NAME_DIR_MODE = 0o755;
export const RESERVED_DIR_MODE = 0o700;
export const PARTIAL_FILE_MODE = 0o600;
/** Under RESERVED_DIR_NAME: the recorded SHA-256 of published files (sums.ts). */
export const SUMS_DIR_NAME = 'sums';
/**
 * A published file at most this large has no record in SUMS_DIR_NAME: its SHA-256 is computed
 * from its bytes when a reader asks (sums.ts sha256OfSmall), about what reading a record costs.
 */
export const SMALL_SUM_MAX_BYTES = 64 * 1024;
/**
 * A partial of at most this size has no O_DIRECT handle (direct-io.ts): its few chunks go through
 * the page cache, which costs less than the handle's open, fstat and close (issue 15).
 */
export const BUFFERED_PARTIAL_MAX_BYTES = 64 * 1024;
