// The frames a command takes (spec/PROTOCOL.md §11.2). The connection's state table lets no other
// frame through to a command; one that came anyway is UNEXPECTED_FRAME, named with the command.
import { ProtocolError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import type { CommandFrames } from '../connection.js';

export type FrameOf<T extends Frame['type']> = Extract<Frame, { type: T }>;

/**
 * A command's frame handler: `handle` hears only the `types` the command takes (its switch on them
 * is exhaustive), any other frame throws UNEXPECTED_FRAME "<type> during <during>".
 */
export function taking<T extends Frame['type']>(types: readonly T[], during: string, handle: (f: FrameOf<T>) => void): CommandFrames {
  const taken: ReadonlySet<Frame['type']> = new Set(types);
  const takes = (f: Frame): f is FrameOf<T> => taken.has(f.type);
  return (f) => {
    if (!takes(f)) throw new ProtocolError('UNEXPECTED_FRAME', `${f.type} during ${during}`);
    handle(f);
  };
}
