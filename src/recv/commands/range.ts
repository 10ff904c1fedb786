// Ranged uploads on one connection (spec/PROTOCOL.md §9.13): RANGE → RANGE_OK with where the
// range resumes, DATA at its next offsets (written as they come, ACK at each checkpoint), then
// RANGE_END → RANGE_DONE once the whole range is durable. The file is published later by an
// OPEN … END of the same upload (commands/upload.ts), which verifies its SHA-256.
import { CommandError, UploadError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import type { BodyLease } from '../../transfer/body-pool.js';
import { ACK_INTERVAL_BYTES, ACK_INTERVAL_MS } from '../config.js';
import type { RangeClaim } from '../store/ranges.js';
import type { CommandLink, Tagged } from './command.js';

/** When the next ACK is due; one checkpoint at a time. */
interface RangeAcks {
  bytesSinceAck: number;
  lastAck: number;
  checkpointing: boolean;
}

export type RangeState =
  /** RANGE being granted (name, policy, lock, takeover of a stale claim). */
  | { readonly kind: 'Claiming' }
  | { readonly kind: 'Ranging'; readonly claim: RangeClaim; readonly started: number; readonly acks: RangeAcks }
  /** RANGE_END received: the range is being made durable; RANGE_DONE goes out next. */
  | { readonly kind: 'Settling'; readonly claim: RangeClaim; readonly started: number };

type Link = CommandLink<Tagged>;
type Ranging = Extract<RangeState, { kind: 'Ranging' }>;

export function isRangeState(state: Tagged): state is RangeState {
  return state.kind === 'Claiming' || state.kind === 'Ranging' || state.kind === 'Settling';
}

/** RANGE in Ready (§9.13): permission first, then the store's checks (§10.1). */
export async function claimRange(frame: Extract<Frame, { type: 'RANGE' }>, link: CommandLink<RangeState>): Promise<void> {
  if (!link.policy.upload) throw new CommandError('NOT_ALLOWED', 'this client may not upload (its key says no-upload)');
  const request = { principal: link.principal(), source: link.remoteAddress, name: frame.name, size: frame.size, mtime: frame.mtime, mode: frame.mode };
  const claim = await link.store.claimRange(request, frame.start, frame.end, link.policy, () =>
    link.fail(new UploadError('SUPERSEDED', 'another connection took this range over')),
  );
  if (link.closed()) {
    await claim.release();
    return;
  }
  link.channel.longRecords = true;
  const now = Date.now();
  link.send({ type: 'RANGE_OK', offset: claim.offset }, { kind: 'Ranging', claim, started: now, acks: { bytesSinceAck: 0, lastAck: now, checkpointing: false } });
  link.log.info({ event: 'range', name: claim.name, start: claim.start, end: claim.end, offset: claim.offset }, 'range claimed');
}

/** DATA of a range; `lease` (when given) is held for `data` until it is written. */
export function rangeData(state: Ranging, offset: number, data: Buffer, lease: BodyLease | undefined, link: CommandLink<RangeState>): void {
  // A short DATA frame's bytes live in the channel's buffer: copied.
  const bytes = lease === undefined ? Buffer.from(data) : data;
  let pause: boolean;
  try {
    pause = state.claim.write(offset, bytes, () => lease?.release());
  } catch (err) {
    lease?.release();
    throw err;
  }
  link.dropped(data.length);
  if (pause && !link.holds('disk')) {
    link.hold('disk');
    void state.claim.drained().then(() => link.release('disk'));
  }
  const acks = state.acks;
  acks.bytesSinceAck += data.length;
  if (acks.bytesSinceAck >= ACK_INTERVAL_BYTES || Date.now() - acks.lastAck >= ACK_INTERVAL_MS) checkpoint(state, link);
}

function checkpoint(state: Ranging, link: CommandLink<RangeState>): void {
  const { claim, acks } = state;
  if (acks.checkpointing) return;
  acks.checkpointing = true;
  acks.bytesSinceAck = 0;
  acks.lastAck = Date.now();
  claim.checkpoint().then(
    (durable) => {
      acks.checkpointing = false;
      if (link.now() === state) link.send({ type: 'ACK', offset: durable });
    },
    (err: unknown) => {
      acks.checkpointing = false;
      link.fail(err);
    },
  );
}

/** RANGE_END (§9.13): the range complete and durable → RANGE_DONE, Ready. */
export async function endRange(state: Ranging, frame: Extract<Frame, { type: 'RANGE_END' }>, link: CommandLink<RangeState>): Promise<void> {
  link.channel.longRecords = false;
  link.enter({ kind: 'Settling', claim: state.claim, started: state.started });
  const durable = await state.claim.finish(frame.end);
  if (link.closed()) return;
  link.send({ type: 'RANGE_DONE', end: durable }, { kind: 'Ready' });
  const seconds = (Date.now() - state.started) / 1000;
  link.log.info({ event: 'range', outcome: 'done', client: link.principal(), name: state.claim.name, start: state.claim.start, end: state.claim.end, resumed_from: state.claim.offset, seconds }, 'range done');
}

/** Teardown in a range state: the claim keeps what is durable for a resume of its range. */
export async function closeRange(state: RangeState, reason: string, link: Link): Promise<void> {
  if (state.kind === 'Claiming') return;
  const { claim } = state;
  await claim.release();
  link.log.info({ event: 'range', outcome: 'interrupted', client: link.principal(), name: claim.name, start: claim.start, end: claim.end, durable: claim.durable, reason }, 'range did not finish');
}
