// The upload command (spec/PROTOCOL.md §9.1, §9.7, §9.8): OPEN → OPEN_OK, DATA into the store with
// the disk's backpressure, ACK at each checkpoint, END → verify → DONE, PROGRESS while an answer
// takes time; and the tree's other entries, MKDIR and SYMLINK → MADE. Its states (Opening,
// Receiving, Verifying, Making) carry what is valid in each.
import { CommandError, ResourceError, StxError, UploadError } from '../../proto/errors.js';
import type { Frame } from '../../proto/frames.js';
import { MAX_MAKES_AHEAD } from '../../proto/limits.js';
import type { BodyLease } from '../../transfer/body-pool.js';
import { ACK_INTERVAL_BYTES, ACK_INTERVAL_MS, PROGRESS_INTERVAL_MS } from '../config.js';
import type { OpenUpload } from '../store.js';
import { IdenticalFile } from '../store/identical.js';
import type { Command, CommandLink, Tagged } from './command.js';
import { failedAnswer, holdData, releaseData, runPut, type Answer, type HeldData } from './put.js';
import { startPack, packData, dropPack, type IncomingPack } from './pack.js';
import { claimRange, closeRange, endRange, isRangeState, rangeData, type RangeState } from './range.js';

/** A PUT being received (§9.11): its DATA so far, each chunk held until its job wrote it. */
interface Incoming extends HeldData {
  readonly frame: Extract<Frame, { type: 'PUT' }>;
}

/** PROGRESS every PROGRESS_INTERVAL_MS while an answer is on its way (§9.7), until stop(). */
class Progress {
  done = 0;
  total = 0;
  readonly #timer: NodeJS.Timeout;

  constructor(tell: (done: number, total: number) => void) {
    this.#timer = setInterval(() => tell(this.done, this.total), PROGRESS_INTERVAL_MS);
  }

  report(done: number, total: number): void {
    this.done = done;
    this.total = total;
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}

/** When the next ACK is due (§9.1 step 4); one checkpoint at a time. */
interface AckClock {
  bytesSinceAck: number;
  lastAck: number;
  checkpointing: boolean;
}

export type UploadState =
  | { readonly kind: 'Opening'; readonly abort: AbortController; readonly progress: Progress }
  | {
      readonly kind: 'Receiving';
      readonly upload: OpenUpload;
      /** When OPEN_OK went out, and from which offset: the log's rate. */
      readonly started: number;
      readonly from: number;
      readonly acks: AckClock;
      /** END_DETACHED came (§9.1): a same-identity newcomer now waits for the publish instead of taking over. */
      readonly detach: () => void;
      /** OPEN's name as the client sent it (what the PUT queue knows files by, put.ts). */
      readonly name: string;
    }
  | { readonly kind: 'Verifying'; readonly upload: OpenUpload; readonly started: number; readonly from: number; readonly progress: Progress }
  /** MKDIR or SYMLINK being carried out (§9.8); MADE goes out next. */
  | { readonly kind: 'Making' }
  /** A PUT's DATA arriving, until its END (§9.11); the answer comes from its job later. */
  | { readonly kind: 'Putting'; readonly put: Incoming }
  /** A PUT_PACK's DATA arriving, until all its bytes are in (§9.11 step 8, pack.ts). */
  | { readonly kind: 'Packing'; readonly pack: IncomingPack }
  /** A range of a ranged upload (§9.13, range.ts). */
  | RangeState;

type Link = CommandLink<UploadState>;
type Receiving = Extract<UploadState, { kind: 'Receiving' }>;

export const uploadCommand: Command<UploadState> = {
  owns(state: Tagged): state is UploadState {
    return state.kind === 'Opening' || state.kind === 'Receiving' || state.kind === 'Verifying' || state.kind === 'Making' || state.kind === 'Putting' || state.kind === 'Packing' || isRangeState(state);
  },

  start(frame: Frame, link: Link): Promise<void> | undefined {
    if (frame.type === 'PUT') {
      // Its DATA may be as long as any (§2): records of DATA size are admitted until END.
      link.channel.longRecords = true;
      link.enter({ kind: 'Putting', put: { frame, chunks: [], leases: [], received: 0, copied: 0 } });
      return undefined;
    }
    if (frame.type === 'PUT_PACK') {
      startPack(frame, link);
      return undefined;
    }
    if (frame.type === 'RANGE') {
      link.enter({ kind: 'Claiming' });
      return claimRange(frame, link);
    }
    if (frame.type === 'MKDIR') {
      link.enter({ kind: 'Making' });
      // The MKDIRs the client sent right behind it go with it (§9.8 "Pipelined", revision 1.14).
      return makeDirectories([frame, ...link.takeMkdirs(MAX_MAKES_AHEAD - 1)], link);
    }
    if (frame.type === 'SYMLINK') {
      link.enter({ kind: 'Making' });
      return makeLink(frame, link);
    }
    if (frame.type !== 'OPEN') return undefined;
    const abort = new AbortController();
    const progress = new Progress((done, total) => link.send({ type: 'PROGRESS', done, total }));
    link.enter({ kind: 'Opening', abort, progress });
    return open(frame, abort.signal, progress, link);
  },

  receive(state: UploadState, frame: Frame, link: Link): Promise<void> | undefined {
    if (state.kind === 'Putting') {
      // A short DATA frame's bytes live in the channel's buffer: copied, and counted as held.
      if (frame.type === 'DATA') putData(state.put, frame.offset, frame.data, undefined, link);
      if (frame.type === 'END') putEnd(state.put, frame.sha256, frame.size, link);
      return undefined;
    }
    if (state.kind === 'Packing') {
      if (frame.type === 'DATA') packData(state.pack, frame.offset, frame.data, undefined, link);
      return undefined;
    }
    if (state.kind === 'Ranging') {
      if (frame.type === 'DATA') rangeData(state, frame.offset, frame.data, undefined, link);
      return frame.type === 'RANGE_END' ? endRange(state, frame, link) : undefined;
    }
    if (state.kind !== 'Receiving') return undefined;
    if (frame.type === 'DATA') {
      receiveData(state, frame.offset, frame.data, undefined, link);
      return undefined;
    }
    if (frame.type === 'END_DETACHED') {
      detach(state, frame.sha256, frame.size, link);
      return undefined;
    }
    if (frame.type !== 'END') return undefined;
    const progress = new Progress((done, total) => link.send({ type: 'PROGRESS', done, total }));
    link.enter({ kind: 'Verifying', upload: state.upload, started: state.started, from: state.from, progress });
    link.channel.longRecords = false;
    return finish(state, frame.sha256, frame.size, progress, link);
  },

  receiveData(state: UploadState, offset: number, data: Buffer, lease: BodyLease, link: Link): void {
    if (state.kind === 'Putting') {
      putData(state.put, offset, data, lease, link);
      return;
    }
    if (state.kind === 'Packing') {
      packData(state.pack, offset, data, lease, link);
      return;
    }
    if (state.kind === 'Ranging') {
      rangeData(state, offset, data, lease, link);
      return;
    }
    if (state.kind !== 'Receiving') {
      lease.release();
      throw new ResourceError('INTERNAL', `DATA reached the upload in state ${state.kind}`); // the tables admit none
    }
    receiveData(state, offset, data, lease, link);
  },

  async settle(state: UploadState): Promise<void> {
    // Making settles by itself: the step is awaited before GOAWAY.
    if (state.kind === 'Receiving') await state.upload.checkpoint();
    if (state.kind === 'Ranging') await state.claim.checkpoint();
  },

  close(state: UploadState, reason: string, err: unknown, link: Link): Promise<void> {
    if (state.kind === 'Making') return Promise.resolve();
    if (isRangeState(state)) return closeRange(state, reason, link);
    if (state.kind === 'Putting') {
      // A PUT cut before its END was never taken: nothing of it is kept (§9.11).
      dropIncoming(state.put, link);
      return Promise.resolve();
    }
    if (state.kind === 'Packing') {
      // Likewise a pack cut before all its bytes: none of its files was taken.
      dropPack(state.pack, link);
      return Promise.resolve();
    }
    if (state.kind === 'Opening') {
      // An OPEN still being prepared stops; a re-read keeps what it read for the next one (§9.7).
      state.progress.stop();
      state.abort.abort();
      return Promise.resolve();
    }
    if (state.kind === 'Verifying') state.progress.stop();
    const upload = state.upload;
    const started = state.kind === 'Receiving' ? state.started : undefined;
    return upload.release().then((durable) =>
      link.log.info(
        {
          event: 'upload',
          outcome: err instanceof StxError && err.code === 'INTEGRITY_FAILED' ? 'integrity_failed' : 'interrupted',
          client: link.principal(),
          name: upload.name,
          size: upload.size,
          received: upload.received,
          durable,
          seconds: started === undefined ? null : (Date.now() - started) / 1000,
          reason,
        },
        'upload did not finish',
      ),
    );
  },
};

/** A key with no-upload (§7.4) may not OPEN, MKDIR or SYMLINK: permission is checked before the name (§10.1). */
function mayUpload(link: Link): void {
  if (!link.policy.upload) throw new CommandError('NOT_ALLOWED', 'this client may not upload (its key says no-upload)');
}

async function open(frame: Extract<Frame, { type: 'OPEN' }>, signal: AbortSignal, progress: Progress, link: Link): Promise<void> {
  mayUpload(link);
  const started = Date.now();
  // Detached uploads still being published as this OPEN starts (§9.11 step 4): the overlap, logged.
  const detachedPending = link.puts.detached;
  let detached = false;
  const upload = await link.store
    .open(
      { principal: link.principal(), source: link.remoteAddress, name: frame.name, size: frame.size, mtime: frame.mtime, mode: frame.mode, stream: frame.stream, sha256: frame.sha256 },
      link.policy,
      {
        // A reconnecting client with the same upload supersedes this (stale) connection (§9.4).
        // Once detached (END_DETACHED) the upload is being published apart from the connection: the
        // newcomer waits for that, as for a PUT's (§9.4).
        onTakeover: () => {
          if (!detached) link.fail(new UploadError('SUPERSEDED', 'another connection with the same client identity took this upload over'));
        },
        onProgress: (done, total) => progress.report(done, total),
        signal,
        memory: { held: (bytes) => link.held(bytes) },
      },
    )
    .finally(() => progress.stop());
  if (link.closed()) {
    await upload.release(); // never rejects
    return;
  }
  if (upload instanceof IdenticalFile) {
    // Already held with these bytes, mtime and mode (§9.1 "Identical files"): no data, no write.
    link.send({ type: 'DONE', size: upload.done.size, sha256: upload.done.sha256 }, { kind: 'Ready' });
    link.log.info({ event: 'upload', outcome: 'identical', client: link.principal(), name: upload.name, size: upload.size, bytes: 0 }, 'upload skipped: identical file held');
    return;
  }
  const now = Date.now();
  link.channel.longRecords = true;
  const acks: AckClock = { bytesSinceAck: 0, lastAck: now, checkpointing: false };
  const detach = (): void => {
    detached = true;
  };
  link.send({ type: 'OPEN_OK', offset: upload.offset }, { kind: 'Receiving', upload, started: now, from: upload.offset, acks, detach, name: frame.name });
  link.log.info(
    { event: 'open', name: frame.name, size: upload.stream ? null : frame.size, stream: upload.stream, offset: upload.offset, reread: upload.reread, detached_pending: detachedPending, ms: Date.now() - started },
    'upload opened',
  );
}

/** One DATA frame; `lease`, when given, is held for `data` and goes with it to the store. */
function receiveData(state: Receiving, offset: number, data: Buffer, lease: BodyLease | undefined, link: Link): void {
  const upload = state.upload;
  let pause: boolean;
  try {
    // The store calls back once it no longer needs `data`: written and hashed (or dropped after a failure).
    pause = upload.write(offset, data, lease);
  } catch (err) {
    lease?.release(); // a write that throws did not take `data`
    throw err;
  }
  if (pause) pauseForDisk(upload, link);
  // Opening the record left node:crypto's output buffers behind (§8).
  link.dropped(data.length);
  const acks = state.acks;
  acks.bytesSinceAck += data.length;
  if (acks.bytesSinceAck >= ACK_INTERVAL_BYTES || Date.now() - acks.lastAck >= ACK_INTERVAL_MS) checkpoint(state, link);
}

/** Pauses reading until the write queue (and the shared budget, and the hashing) drain. */
function pauseForDisk(upload: OpenUpload, link: Link): void {
  if (link.holds('disk')) return;
  link.hold('disk');
  void upload.drained().then(() => link.release('disk'));
}

/** Makes the written prefix durable and ACKs it (§9.1 step 4); one at a time. */
function checkpoint(state: Receiving, link: Link): void {
  const { upload, acks } = state;
  if (acks.checkpointing) return;
  acks.checkpointing = true;
  acks.bytesSinceAck = 0;
  acks.lastAck = Date.now();
  upload.checkpoint().then(
    (durable) => {
      acks.checkpointing = false;
      const now = link.now();
      if (now.kind === 'Receiving' && now === state) link.send({ type: 'ACK', offset: durable });
    },
    (err: unknown) => {
      acks.checkpointing = false;
      link.fail(err);
    },
  );
}

async function finish(state: Receiving, sha256: Buffer, endSize: number | undefined, progress: Progress, link: Link): Promise<void> {
  const result = await state.upload.finish(sha256, (done, total) => progress.report(done, total), endSize).finally(() => progress.stop());
  if (link.closed()) return;
  link.send({ type: 'DONE', size: result.size, sha256: result.sha256 }, { kind: 'Ready' });
  const seconds = (Date.now() - state.started) / 1000;
  const bytes = result.size - state.from;
  link.log.info(
    {
      event: 'upload',
      outcome: result.unchanged ? 'unchanged' : 'done',
      client: link.principal(),
      name: result.name,
      size: result.size,
      bytes,
      resumed_from: state.from,
      seconds,
      bytes_per_second: seconds > 0 ? Math.round(bytes / seconds) : null,
      sha256: result.sha256.toString('hex'),
    },
    'upload done',
  );
}

/**
 * END_DETACHED (§9.1 "Detached END", revision 1.7): the connection is Ready at once, and the
 * upload is verified and published as a job of the PUT queue, whose answer (PUT_DONE, or
 * PUT_FAILED with INTEGRITY_FAILED and the like) takes its place in the order of the PUTs. An
 * END before all bytes is BAD_OFFSET and closes, as END's.
 */
function detach(state: Receiving, sha256: Buffer, endSize: number | undefined, link: Link): void {
  const upload = state.upload;
  const received = upload.received;
  const early = upload.stream ? endSize !== received : received !== upload.size || (endSize !== undefined && endSize !== upload.size);
  if (early) throw new UploadError('BAD_OFFSET', `END_DETACHED after ${received} of ${upload.stream ? 'the stream' : upload.size} bytes${endSize === undefined ? '' : ` (it says ${endSize})`}`);
  state.detach();
  link.channel.longRecords = false;
  link.enter({ kind: 'Ready' });
  const job = upload.finish(sha256, undefined, endSize).then(
    (result): Answer => {
      const seconds = (Date.now() - state.started) / 1000;
      const bytes = result.size - state.from;
      link.log.info(
        { event: 'upload', outcome: result.unchanged ? 'unchanged' : 'done', detached: true, client: link.principal(), name: result.name, size: result.size, bytes, resumed_from: state.from, seconds, sha256: result.sha256.toString('hex') },
        'upload done',
      );
      return { type: 'PUT_DONE', size: result.size, sha256: result.sha256 };
    },
    (err: unknown) => {
      link.log.info(
        { event: 'upload', outcome: err instanceof StxError && err.code === 'INTEGRITY_FAILED' ? 'integrity_failed' : 'failed', detached: true, client: link.principal(), name: upload.name, code: err instanceof StxError ? err.code : 'INTERNAL', reason: err instanceof Error ? err.message : String(err) },
        'upload did not finish',
      );
      // Whatever failed, the upload lets go of its file and lock (a no-op after finish's own).
      return upload.release().then(() => failedAnswer(err));
    },
  );
  link.puts.add(job, 0, state.name, true);
}

/**
 * A run of MKDIRs (§9.8 "Pipelined", revision 1.14): carried out together, their directories'
 * syncs shared, then a MADE for each in order, each as if received in Ready after the one before
 * (§11.1); the first refused fails the connection after the MADEs of those before it.
 */
async function makeDirectories(run: readonly Extract<Frame, { type: 'MKDIR' }>[], link: Link): Promise<void> {
  mayUpload(link);
  const { made, failure } = await link.store.makeDirectories(run, link.policy);
  for (const [i, shown] of made.entries()) {
    if (link.closed()) return;
    // The next MKDIR of the run, received in Ready (§11.1): Making again.
    if (i > 0) link.enter({ kind: 'Making' });
    link.send({ type: 'MADE' }, { kind: 'Ready' });
    link.log.info({ event: 'mkdir', client: link.principal(), name: shown }, 'directory made');
  }
  if (failure === null) return;
  if (made.length > 0) link.enter({ kind: 'Making' });
  throw failure;
}

/** SYMLINK (§9.8): done at once, MADE, back to Ready; a refusal fails the connection. */
async function makeLink(frame: Extract<Frame, { type: 'SYMLINK' }>, link: Link): Promise<void> {
  mayUpload(link);
  const shown = await link.store.makeLink(frame.name, frame.target, frame.mtime, link.policy);
  if (link.closed()) return;
  link.send({ type: 'MADE' }, { kind: 'Ready' });
  link.log.info({ event: 'symlink', client: link.principal(), name: shown }, 'link made');
}

/** One DATA of a PUT (§9.11): from 0, each where the last ended, never beyond `size`. */
function putData(put: Incoming, offset: number, data: Buffer, lease: BodyLease | undefined, link: Link): void {
  holdData(put, put.frame.size, 'PUT', offset, data, lease, link);
}

/** END of a PUT: its job starts and the connection is Ready again at once; the answer follows (§9.11). */
function putEnd(put: Incoming, sha256: Buffer, endSize: number | undefined, link: Link): void {
  link.channel.longRecords = false;
  const size = put.frame.size;
  if (put.received !== size || (endSize !== undefined && endSize !== size)) {
    dropIncoming(put, link);
    throw new UploadError('BAD_OFFSET', `PUT END after ${put.received} of ${size} bytes${endSize === undefined ? '' : ` (END says ${endSize})`}`);
  }
  link.enter({ kind: 'Ready' });
  runPut(link, put.frame, put.chunks, sha256, () => dropIncoming(put, link));
}

/** Gives back what a PUT held: its chunks' leases, and the count of copied bytes. */
function dropIncoming(put: Incoming, link: Link): void {
  releaseData(put, link);
}
