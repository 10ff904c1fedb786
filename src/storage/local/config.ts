// Bounds and layout of the local-disk backend. Units are in the names.
import { RESERVED_NAME_PREFIX } from '../backend.js';

const MiB = 1024 * 1024;

/** One write of a connection's queue takes at most this many bytes... */
export const MAX_WRITE_BATCH_BYTES = 8 * MiB;
/** ...and at most this many buffers (Linux accepts 1024 per writev). */
export const MAX_WRITE_BATCH_BUFFERS = 256;

/** The server's reserved directory inside the output directory (§9.3): names cannot reach it. */
export const RESERVED_DIR_NAME = RESERVED_NAME_PREFIX;
/** Where partial uploads live, under the reserved directory. */
export const PARTIALS_DIR_NAME = 'partials';

/** Modes of what the backend creates: name directories, the reserved directory, partial files. */
export const NAME_DIR_MODE = 0o755;
export const RESERVED_DIR_MODE = 0o700;
export const PARTIAL_FILE_MODE = 0o600;
