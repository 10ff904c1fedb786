// What the conformance runner (spec/PROTOCOL.md §14) needs around the hostile raw client
// (test/hostile/raw-client.ts): a handshake that pins the server key, and what happened on a
// connection as one short string ("ERROR UNEXPECTED_FRAME", "PONG seq=7", "CLOSED"…) that a
// case compares with its expectation and the report prints.
import { createHash } from 'node:crypto';
import { fingerprint } from '../../src/crypto/fingerprint.js';
import { decodeBody } from '../../src/proto/codec.js';
import { codeFromWire } from '../../src/proto/errors.js';
import type { Frame } from '../../src/proto/frames.js';
import { LENGTH_PREFIX_BYTES } from '../../src/proto/limits.js';
import { HandshakeRefused, RawClient, type HandshakeHooks, type Incoming, type Outcome } from '../hostile/raw-client.js';

export interface RunContext {
  readonly host: string;
  readonly port: number;
  /** Pinned server fingerprint; the first handshake sets it when none was given. */
  fingerprint: string | undefined;
  /** Prefix of every remote name, unique per run (uploads of two runs never meet). */
  readonly prefix: string;
  /** How long to wait for an answer that is due at once. */
  readonly waitMs: number;
  /** How long to wait for the server's own timers (§9.6 cases). */
  readonly timerWaitMs: number;
}

/** Thrown when the server presents another key than the pinned one. */
export class KeyChanged extends Error {}

/** Checks SERVER_HELLO's key against the pin (or pins it) as the bytes pass through (§5). */
export function pinning(ctx: RunContext, hooks: HandshakeHooks = {}): HandshakeHooks {
  return {
    ...hooks,
    serverHello: (bytes: Buffer) => {
      const hello = decodeBody(bytes.subarray(LENGTH_PREFIX_BYTES));
      if (hello.type !== 'SERVER_HELLO') throw new Error(`SERVER_HELLO expected, got ${hello.type}`);
      const fp = fingerprint(hello.server_key);
      ctx.fingerprint ??= fp;
      if (fp !== ctx.fingerprint) throw new KeyChanged(`server key ${fp} is not the pinned ${ctx.fingerprint}`);
      return hooks.serverHello?.(bytes) ?? bytes;
    },
  };
}

/** A complete anonymous handshake (§6); throws with what the server did otherwise. */
export async function ready(c: RawClient, ctx: RunContext): Promise<void> {
  const s = await c.handshake(pinning(ctx), ctx.waitMs);
  if (s === null) throw new Error('handshake stopped early');
}

/** The handshake up to `stopAfter`, pinned. */
export async function partial(c: RawClient, ctx: RunContext, stopAfter: NonNullable<HandshakeHooks['stopAfter']>, hooks: HandshakeHooks = {}): Promise<void> {
  await c.handshake(pinning(ctx, { ...hooks, stopAfter }), ctx.waitMs);
}

export function describeFrame(f: Frame): string {
  if (f.type === 'PUT_FAILED') return `PUT_FAILED ${describeCode(f.code)}`;
  if (f.type === 'PUTS_DONE') return `PUTS_DONE n=${f.sha256s.length / 32}`;
  return f.type === 'PING' || f.type === 'PONG' ? `${f.type} seq=${f.seq}` : f.type;
}

/** How an exchange ended: "ERROR <code>" (" (not closed)" if the server did not close after it), "GOAWAY <code>", "LOCAL <code>", "CLOSED", "TIMEOUT". */
export function describeOutcome(o: Outcome): string {
  switch (o.via) {
    case 'ERROR':
      return `ERROR ${o.code}${o.closed ? '' : ' (not closed)'}`;
    case 'GOAWAY':
      return `GOAWAY ${o.code}`;
    case 'local':
      return `LOCAL ${o.code}`;
    case 'close':
      return 'CLOSED';
    case 'timeout':
      return 'TIMEOUT';
  }
}

/** The end of the exchange (frames before it are skipped), as describeOutcome says. */
export async function ending(c: RawClient, ctx: RunContext, waitMs = ctx.waitMs): Promise<string> {
  return describeOutcome(await c.outcome(waitMs));
}

/** Most PROGRESS frames a case lets pass while it waits for an answer (§9.7: one per second). */
const MAX_PROGRESS = 120;

/**
 * The next frame other than PROGRESS (§9.7: it may come between OPEN and OPEN_OK and between END
 * and DONE), or, when the exchange ends instead, how it ended as nextEvent() says it.
 */
export async function nextFrame(c: RawClient, ctx: RunContext): Promise<Frame | string> {
  let got: Incoming = await c.next(ctx.waitMs);
  for (let i = 0; i < MAX_PROGRESS && got.kind === 'frame' && got.frame.type === 'PROGRESS'; i++) got = await c.next(ctx.waitMs);
  switch (got.kind) {
    case 'frame':
      if (got.frame.type === 'ERROR' || got.frame.type === 'GOAWAY') {
        const closed = await c.waitClosed(ctx.waitMs);
        return `${got.frame.type} ${describeCode(got.frame.code)}${closed || got.frame.type === 'GOAWAY' ? '' : ' (not closed)'}`;
      }
      return got.frame;
    case 'local':
      return `LOCAL ${got.code}`;
    case 'closed':
      return 'CLOSED';
    case 'timeout':
      return 'TIMEOUT';
  }
}

/** The next thing that happens, PROGRESS skipped: a frame (describeFrame) or the end of the exchange. */
export async function nextEvent(c: RawClient, ctx: RunContext): Promise<string> {
  const got = await nextFrame(c, ctx);
  return typeof got === 'string' ? got : describeFrame(got);
}

function describeCode(wire: number): string {
  return codeFromWire(wire) ?? `#${wire}`;
}

/** OPEN → the OPEN_OK offset, PROGRESS skipped; anything else throws with what came (§9.1). */
export async function open(c: RawClient, ctx: RunContext, name: string, size: number): Promise<number> {
  await c.send({ type: 'OPEN', name, size, mtime: 1_700_000_000_000, mode: 0o644 });
  const got = await nextFrame(c, ctx);
  if (typeof got === 'string' || got.type !== 'OPEN_OK') throw new Error(`OPEN ${name}: ${typeof got === 'string' ? got : got.type}`);
  return got.offset;
}

/** Frames until one of `type`, skipping ACK, PONG and PROGRESS; anything else throws. */
export async function until(c: RawClient, ctx: RunContext, type: Frame['type']): Promise<Frame> {
  for (let i = 0; i < 10_000; i++) {
    const got = await c.next(ctx.waitMs);
    if (got.kind === 'frame' && got.frame.type === type) return got.frame;
    if (got.kind === 'frame' && (got.frame.type === 'ACK' || got.frame.type === 'PONG' || got.frame.type === 'PROGRESS')) continue;
    throw new Error(`expected ${type}, got ${got.kind === 'frame' ? got.frame.type : got.kind}`);
  }
  throw new Error(`no ${type} in 10000 frames`);
}

export function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest();
}

export { HandshakeRefused, RawClient };
