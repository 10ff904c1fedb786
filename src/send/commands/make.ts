// MKDIR and SYMLINK on one Ready connection (spec/PROTOCOL.md §9.8): the frame, then MADE; the
// connection is Ready again. Both are idempotent, so after a lost connection they are sent again.
import { ProtocolError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import type { Connection } from '../connection.js';

export type MakeFrame = Extract<Frame, { type: 'MKDIR' | 'SYMLINK' }>;

/** Sends `frame` on `conn` (Ready) and resolves at MADE; rejects with the connection's failure. */
export function make(conn: Connection, frame: MakeFrame): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const off = conn.onFailure(reject);
    try {
      conn.begin(frame, (f) => {
        if (f.type !== 'MADE') throw new ProtocolError('UNEXPECTED_FRAME', `${f.type} while awaiting MADE`); // the tables let none through
        conn.progressed();
        off();
        resolve();
      });
    } catch (err) {
      off();
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}
