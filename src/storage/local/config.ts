// Bounds of the local-disk backend's writes. Units are in the names.

const MiB = 1024 * 1024;

/** One write of a connection's queue takes at most this many bytes... */
export const MAX_WRITE_BATCH_BYTES = 8 * MiB;
/** ...and at most this many buffers (Linux accepts 1024 per writev). */
export const MAX_WRITE_BATCH_BUFFERS = 256;
