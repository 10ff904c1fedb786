// A paused net.Socket still reads (issue 15 item 3): Node stops its handle only once a chunk sits
// in the stream's own buffer, so every connection the daemon stops reading (memory, disk, a
// record's buffer) holds one more socket read, up to 64 KiB: with 1000 uploads at once, 115 such
// chunks were found in paused sockets' buffers by a heap snapshot. Node stops the handle itself
// for sockets that read into a buffer of their own (net.Socket `onread`); this does the same for
// ours, through the same internal handle fields, and leaves anything that is not such a socket
// (a test's in-memory transport) to its own pause() and resume(). Off with STX_TUNING (read-stop).
import { tuned } from './tuning.js';

interface Readable {
  pause(): unknown;
  resume(): unknown;
  readonly destroyed: boolean;
}

/** The socket's libuv handle, if it has one that can stop and start reading. */
function handleOf(stream: object): object | null {
  const handle: unknown = Reflect.get(stream, '_handle');
  if (typeof handle !== 'object' || handle === null) return null;
  return typeof Reflect.get(handle, 'readStop') === 'function' && typeof Reflect.get(handle, 'readStart') === 'function' ? handle : null;
}

/** Pauses `stream` and, for a socket, stops reading from the kernel at once. */
export function stopReading(stream: Readable): void {
  stream.pause();
  if (!tuned('read-stop')) return;
  const handle = handleOf(stream);
  if (handle === null || Reflect.get(handle, 'reading') !== true || stream.destroyed) return;
  Reflect.set(handle, 'reading', false);
  Reflect.apply(Reflect.get(handle, 'readStop') as (...args: unknown[]) => unknown, handle, []);
}

/** Reads again: the handle stopped by stopReading() starts (unless the peer's end was read), then the stream resumes. */
export function startReading(stream: Readable): void {
  const handle = tuned('read-stop') ? handleOf(stream) : null;
  const state: unknown = Reflect.get(stream, '_readableState');
  const ended = typeof state === 'object' && state !== null && Reflect.get(state, 'ended') === true;
  if (handle !== null && Reflect.get(handle, 'reading') === false && !stream.destroyed && !ended) {
    Reflect.set(handle, 'reading', true);
    Reflect.apply(Reflect.get(handle, 'readStart') as (...args: unknown[]) => unknown, handle, []);
  }
  stream.resume();
}
