// Targets: everything one side receives on a connection, as bytes (§3, §6, §8, §11): the peer's
// preamble, its plaintext handshake frames, then its records (FINISHED first) from
// spec/vectors/handshake*.json, followed by more records sealed here with the same key. A
// driver plays the side's shell: FrameChannel + Machine, switching to records where §6 says,
// answering as a peer would. Mutated at byte level and pushed in any chunking; compared with
// the reference model (RefWire + RefMachine), records checked for authenticity.
import fc from 'fast-check';
import { FrameChannel } from '../../../src/crypto/channel.js';
import { RecordOpener } from '../../../src/crypto/record.js';
import {
  clientMachine,
  encodeBody,
  MAX_PLAINTEXT_FRAME_LENGTH_BYTES,
  MAX_RECORD_LENGTH_BYTES,
  MIN_RECORD_LENGTH_BYTES,
  parsePreamble,
  PREAMBLE_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  selectVersion,
  serverMachine,
  type FrameName,
} from '../../../src/proto/index.js';
import { controlBodyArb } from '../bodies.js';
import { chunk, chunkingArb, showChunking, type Chunking } from '../chunks.js';
import { bodiesOf, frameArb } from '../frames.js';
import { applyMutations, lengthUnits, mutationsArb, showMutations, type Mutation } from '../mutate.js';
import { compareOutcome, typedCode, type Outcome, type RefItem } from '../oracle.js';
import { RefMachine, type Side } from '../reference-machine.js';
import { referencePreamble, RefOpener, RefWire } from '../reference-wire.js';
import { copySealed, sealBodies, sealedUnder, type SealedSet } from '../sealed.js';
import { handshakeSeeds, type HandshakeSeed } from '../seeds.js';
import { checkFrame, checkPending, checkUnit, once, type Target } from '../target.js';
import { checkAuthentic } from './record-channel.js';

export interface WireInput {
  readonly vector: number;
  /** Bodies sealed after the vector's records, from the next seq on. */
  readonly extra: readonly Buffer[];
  readonly mutations: readonly Mutation[];
  readonly chunking: Chunking;
}

/** How the driver answers a received frame, as a peer's shell would (§6, §9): sends, and whether records start. */
function reaction(side: Side, frame: string): { send: FrameName[]; open: boolean } {
  if (side === 'server') {
    switch (frame) {
      case 'CLIENT_HELLO': return { send: ['SERVER_HELLO'], open: false };
      case 'KEY_EXCHANGE': return { send: [], open: true };
      case 'CLIENT_FINISHED': return { send: ['SERVER_FINISHED'], open: false };
      case 'OPEN': return { send: ['OPEN_OK'], open: false };
      case 'DATA': return { send: ['ACK'], open: false };
      case 'END': return { send: ['DONE'], open: false };
      case 'PING': return { send: ['PONG'], open: false };
      default: return { send: [], open: false };
    }
  }
  switch (frame) {
    case 'SERVER_HELLO': return { send: ['KEY_EXCHANGE', 'CLIENT_FINISHED'], open: true };
    case 'SERVER_FINISHED': return { send: ['OPEN'], open: false };
    case 'OPEN_OK': return { send: ['DATA', 'END'], open: false };
    case 'PING': return { send: ['PONG'], open: false };
    default: return { send: [], open: false };
  }
}

interface Built {
  readonly bytes: Buffer;
  readonly key: Buffer;
  readonly iv: Buffer;
  readonly sealed: SealedSet;
  readonly complete: true;
}

/** The bytes `side` receives in handshake vector `h`, before any extra records. */
function baseStream(side: Side, h: HandshakeSeed): Buffer {
  const w = h.wire;
  const plain = side === 'server' ? [w.client_preamble, w.client_hello, w.key_exchange] : [w.server_preamble, w.server_hello];
  const dir = side === 'server' ? h.c2s : h.s2c;
  return Buffer.concat([...plain, ...dir.records.map((r) => r.record)]);
}

const allBases = once((): Buffer[] => handshakeSeeds().flatMap((h) => [baseStream('server', h), baseStream('client', h)]));

function build(side: Side, input: WireInput): Built {
  const seeds = handshakeSeeds();
  const h = seeds[input.vector % seeds.length];
  if (h === undefined) throw new Error('no handshake vectors');
  const dir = side === 'server' ? h.c2s : h.s2c;
  const sealed = copySealed(sealedUnder(dir.key, dir.iv));
  const extra = sealBodies(dir.key, dir.iv, { seq: dir.records.length }, input.extra, sealed);
  const base = Buffer.concat([baseStream(side, h), ...extra]);
  const bytes = applyMutations(base, input.mutations, { others: allBases(), units: (b) => lengthUnits(b, PREAMBLE_BYTES) });
  return { bytes, key: dir.key, iv: dir.iv, sealed, complete: true };
}

/** The side's shell over real parts: FrameChannel, RecordOpener, decodeBody, Machine. */
function drive(side: Side, b: Built, chunks: readonly Buffer[]): Outcome {
  const channel = new FrameChannel();
  const m = side === 'server' ? serverMachine() : clientMachine();
  let preamble = false;
  let opening = false;
  let records = 0;
  const max = (): number => (opening ? MAX_RECORD_LENGTH_BYTES : preamble ? MAX_PLAINTEXT_FRAME_LENGTH_BYTES : PREAMBLE_BYTES - 4);
  const outcome: Outcome = { frames: [], code: null };
  outcome.code = typedCode(() => {
    if (side === 'client') m.send('CLIENT_HELLO');
    for (const c of chunks) {
      channel.push(c);
      checkPending(channel.pending, max(), c.length);
      if (!preamble) {
        const p = channel.readPreamble();
        if (p === null) continue;
        const version = parsePreamble(p);
        if (side === 'server') selectVersion(version);
        else if (version !== PROTOCOL_VERSION) throw new ProtocolError('VERSION_UNSUPPORTED', `server selected version ${version}`);
        preamble = true;
      }
      for (let r = channel.next(); r !== null; r = channel.next()) {
        if (opening) {
          checkUnit(r.raw, MIN_RECORD_LENGTH_BYTES, MAX_RECORD_LENGTH_BYTES);
          checkAuthentic(b, records++, r.raw);
        } else {
          checkUnit(r.raw, 1, MAX_PLAINTEXT_FRAME_LENGTH_BYTES);
        }
        checkFrame(r.frame);
        outcome.frames.push(r.frame);
        m.receive(r.frame.type);
        const re = reaction(side, r.frame.type);
        for (const f of re.send) m.send(f);
        if (re.open) {
          channel.startOpening(new RecordOpener(b.key, b.iv, { firstRecordError: { code: 'HANDSHAKE_FAILED', message: 'FINISHED failed to open' } }));
          opening = true;
        }
      }
      checkPending(channel.pending, max(), 0);
    }
    channel.end();
  });
  return outcome;
}

/** The same connection through the reference parts. */
function model(side: Side, b: Built): RefItem[] {
  const wire = new RefWire(b.bytes);
  const ref = new RefMachine(side);
  if (side === 'client') ref.send('CLIENT_HELLO');
  const p = wire.preamble();
  if (p === null) return [];
  if (!Buffer.isBuffer(p)) return [p];
  const bad = referencePreamble(side, p);
  if (bad !== null) return [{ kind: 'error', code: bad }];
  const items: RefItem[] = [];
  let opener: RefOpener | null = null;
  for (let i = 0; i < 100_000; i++) {
    const item: RefItem | null = opener === null ? wire.plaintext() : wire.record(opener);
    if (item === null) return items;
    items.push(item);
    if (item.kind === 'error' || item.verdict.kind === 'reject') return items;
    const type = String(item.verdict.frame.get('type'));
    const received = ref.receive(type);
    if (received !== null) return [...items, { kind: 'error', code: received }];
    const re = reaction(side, type);
    for (const f of re.send) {
      const sent = ref.send(f);
      if (sent !== null) return [...items, { kind: 'error', code: sent }];
    }
    if (re.open) opener = new RefOpener(b.key, b.iv, { firstRecordError: 'HANDSHAKE_FAILED' });
  }
  throw new Error('reference connection longer than 100000 frames');
}

/** Frames each side typically receives once the handshake is done. */
const TYPICAL: Record<Side, readonly FrameName[]> = {
  server: ['OPEN', 'DATA', 'END', 'PING', 'PONG', 'ERROR'],
  client: ['OPEN_OK', 'ACK', 'DONE', 'PING', 'PONG', 'GOAWAY', 'ERROR'],
};

function wireTarget(side: Side): Target<WireInput> {
  return {
    name: `${side}-wire`,
    about: `all ${side === 'server' ? 'c2s' : 's2c'} bytes of a connection (preamble, handshake, records) → the ${side}'s FrameChannel + Machine, vs the reference`,
    seeds() {
      const later = side === 'server'
        ? [encodeBody({ type: 'PING', seq: 1 }), encodeBody({ type: 'END', sha256: Buffer.alloc(32) }), encodeBody({ type: 'OPEN', name: 'b', size: 0, mtime: 0, mode: 0o644 })]
        : [encodeBody({ type: 'DONE', size: 11, sha256: Buffer.alloc(32) }), encodeBody({ type: 'PING', seq: 2 })];
      return handshakeSeeds().flatMap((_, vector) => [
        { vector, extra: [], mutations: [], chunking: { cuts: [], bytewise: false } },
        { vector, extra: later, mutations: [], chunking: { cuts: [], bytewise: true } },
      ]);
    },
    arbitrary(seeds) {
      const body = fc.oneof({ weight: 6, arbitrary: bodiesOf(TYPICAL[side]) }, { weight: 1, arbitrary: frameArb.map(encodeBody) }, { weight: 1, arbitrary: controlBodyArb });
      return fc.record({
        vector: fc.nat(),
        extra: fc.oneof(fc.constantFrom(...seeds.map((s) => s.extra)), fc.array(body, { maxLength: 6 })),
        mutations: fc.oneof(fc.constant([]), mutationsArb()),
        chunking: chunkingArb,
      });
    },
    run(input) {
      const b = build(side, input);
      compareOutcome(drive(side, b, chunk(b.bytes, input.chunking)), model(side, b));
    },
    show(input) {
      const b = build(side, input);
      return `vector #${input.vector % handshakeSeeds().length} + ${input.extra.length} extra records; mutations [${showMutations(input.mutations)}]; ${showChunking(input.chunking)}; stream ${b.bytes.toString('hex').slice(0, 300)} (${b.bytes.length} bytes)`;
    },
  };
}

export const serverWire = wireTarget('server');
export const clientWire = wireTarget('client');
