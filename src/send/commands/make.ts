// MKDIR and SYMLINK (spec/PROTOCOL.md §9.8): the frame, then MADE; the connection is Ready again
// after the last one's MADE. One may follow another before its MADE (pipelined, revision 1.11, at
// most MAX_MAKES_AHEAD unanswered); each MADE answers the oldest. Both are idempotent, so after a
// lost connection those not answered are sent again.
import { ProtocolError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import type { Connection } from '../connection.js';

export type MakeFrame = Extract<Frame, { type: 'MKDIR' | 'SYMLINK' }>;

/** Sends `frame` on `conn` (Ready, or AwaitMade) and resolves at its MADE; rejects with the connection's failure. */
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
