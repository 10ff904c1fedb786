// Shared by bench/baseline-tus.ts (the processes) and bench/contenders/tus.ts (the runner side).

export const TUS_PATH = '/files';
/** One PATCH request per chunk: large enough that request overhead is small, bounded memory. */
export const TUS_CHUNK_BYTES = 64 * 1024 * 1024;
