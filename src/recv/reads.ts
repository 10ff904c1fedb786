// How the daemon reads its sockets: into one buffer, reused by every read of every connection,
// instead of a new 64 KiB buffer per read. A socket read through Node's stream ('data' events)
// gets a buffer of its own per read, which malloc hands out, the kernel faults in and V8 collects
// (bench/micro/socket-reads.ts: ~3× the receiver's CPU per GiB of a reused buffer, mostly page
// faults). net.Socket's `onread` option reads into a buffer of the caller's instead, but Node
// offers it only for sockets the program makes, not for the ones a server accepts; so an accepted
// socket's handle is taken over by a socket made with `onread`, through Node's `_handle` (the
// fields used are checked first, and a socket without them is read as before).
//
// One buffer serves every connection because each read is handled before the next one starts
// (one event loop), and the connection copies out whatever must outlive its read
// (Connection.receiveShared). Memory: one buffer for the process, not one per connection.
import net from 'node:net';

/** The size of the one read buffer: what a read may bring at most (Node's own reads ask 64 KiB). */
export const READ_BUFFER_BYTES = 64 * 1024;

/** Where a socket's reads go once its connection exists; before that they are dropped. */
export interface ReadSink {
  receiveShared(chunk: Buffer): void;
}

interface Adoptable {
  _handle?: { useUserBuffer?: unknown; readStart?: unknown } | null;
}

let shared: Buffer | null = null;

/**
 * A socket on the handle of `accepted` that reads into the shared buffer and gives each read to
 * the sink `attach` sets; or `accepted` itself, reading as before, where Node's handle is not
 * what this expects (then `attach` does nothing: the sink reads through 'data' events).
 * `accepted` must not have started reading (the server's pauseOnConnect).
 */
export function withSharedReads(accepted: net.Socket, server: net.Server): { socket: net.Socket; attach: (sink: ReadSink) => void } {
  const handle = (accepted as unknown as Adoptable)._handle;
  if (handle == null || typeof handle.useUserBuffer !== 'function' || typeof handle.readStart !== 'function') {
    accepted.resume();
    return { socket: accepted, attach: () => undefined };
  }
  const buffer = (shared ??= Buffer.allocUnsafeSlow(READ_BUFFER_BYTES));
  let sink: ReadSink | null = null;
  // `handle` is the constructor's own (undocumented) option, the one net.Server uses itself.
  const options: { handle: unknown; onread: net.OnReadOpts } = {
    handle,
    onread: {
      buffer: () => buffer,
      // True: read on (the connection pauses the socket itself, through its ReadGate).
      callback: (bytes: number) => {
        sink?.receiveShared(buffer.subarray(0, bytes));
        return true;
      },
    },
  };
  const socket = new net.Socket(options as net.SocketConstructorOpts);
  // The accepted socket lets go of the handle (it never reads or closes it); the new one counts
  // as the server's connection in its place, so that server.close() still waits for it.
  (accepted as unknown as Adoptable)._handle = null;
  (socket as unknown as { _server: net.Server })._server = server;
  return {
    socket,
    attach: (s) => {
      sink = s;
    },
  };
}
