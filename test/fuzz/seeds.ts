// Fuzz seeds from spec/vectors (§12): every file of each kind, so new vectors seed the fuzzer too.
// Each file is read once per process.
import { field, str, vectorFiles } from '../support/vectors.js';
import { once } from './target.js';

const hex = (v: unknown, key: string): Buffer => Buffer.from(str(v, key), 'hex');

function num(v: unknown, key: string): number {
  const x = field(v, key);
  if (typeof x !== 'number' || !Number.isSafeInteger(x)) throw new Error(`vector field ${key} is not an integer`);
  return x;
}

function all(prefix: string): unknown[] {
  return vectorFiles(prefix).flatMap((f) => f.vectors);
}

/** frames-valid*: whole plaintext frames (length ‖ body) and their bodies. */
export const validFrames = once((): { frame: Buffer; body: Buffer }[] => {
  return all('frames-valid').map((v) => ({ frame: hex(v, 'hex'), body: hex(v, 'body_hex') }));
});

/** frames-invalid*: plaintext streams and record bodies that must fail. */
const invalidVectors = once(() => all('frames-invalid'));
export function invalidInputs(phase: 'stream' | 'body'): Buffer[] {
  return invalidVectors().filter((v) => str(v, 'phase') === phase).map((v) => hex(v, 'hex'));
}

export interface StateSeed {
  readonly machine: 'server' | 'client';
  readonly steps: readonly { readonly dir: 'recv' | 'send'; readonly frame: string }[];
}

/** states*: frame-type sequences per machine. */
export const stateSequences = once((): StateSeed[] => {
  return all('states').map((v) => {
    const steps = field(v, 'steps');
    if (!Array.isArray(steps)) throw new Error('states vector without steps');
    return {
      machine: str(v, 'machine') === 'server' ? 'server' : 'client',
      steps: steps.map((s: unknown) => {
        if (!Array.isArray(s) || typeof s[1] !== 'string') throw new Error('bad state step');
        return { dir: s[0] === 'recv' ? 'recv' : 'send', frame: s[1] };
      }),
    };
  });
});

export interface RecordSeed {
  readonly key: Buffer;
  readonly iv: Buffer;
  readonly seq: number;
  readonly record: Buffer;
  /** The body it opens to, or null for a vector that must fail. */
  readonly body: Buffer | null;
}

/** records*: single records at a given seq, sealed or failing. */
export const recordSeeds = once((): RecordSeed[] => {
  return all('records').map((v) => ({
    key: hex(v, 'key'),
    iv: hex(v, 'iv'),
    seq: num(v, 'seq'),
    record: hex(v, 'record'),
    body: typeof field(v, 'body') === 'string' ? hex(v, 'body') : null,
  }));
});

export interface DirectionSeed {
  readonly key: Buffer;
  readonly iv: Buffer;
  /** The sealed records of this direction in order from seq 0: FINISHED, then the rest. */
  readonly records: { readonly record: Buffer; readonly body: Buffer }[];
}

export interface HandshakeSeed {
  readonly name: string;
  readonly wire: Readonly<Record<'client_preamble' | 'client_hello' | 'server_preamble' | 'server_hello' | 'key_exchange', Buffer>>;
  readonly c2s: DirectionSeed;
  readonly s2c: DirectionSeed;
}

/** handshake*: the wire bytes of each handshake and the records of both directions with their keys. */
export const handshakeSeeds = once((): HandshakeSeed[] => {
  return all('handshake').map((h) => {
    const wire = field(h, 'wire');
    const values = field(h, 'values');
    const records = field(h, 'records');
    if (!Array.isArray(records)) throw new Error('handshake vector without records');
    const direction = (dir: 'c2s' | 's2c', finished: 'client' | 'server'): DirectionSeed => {
      const later = records.filter((r: unknown) => str(r, 'direction') === dir).sort((a: unknown, b: unknown) => num(a, 'seq') - num(b, 'seq'));
      // FINISHED is record 0 of its direction (§6); the others must follow it without a gap.
      if (later.some((r: unknown, i: number) => num(r, 'seq') !== i + 1)) throw new Error(`${str(h, 'name')}: ${dir} records are not seq 1..n`);
      return {
        key: hex(values, `${dir}_key`),
        iv: hex(values, `${dir}_iv`),
        records: [
          { record: hex(wire, `${finished}_finished_record`), body: hex(wire, `${finished}_finished_body`) },
          ...later.map((r: unknown) => ({ record: hex(r, 'record'), body: hex(r, 'body') })),
        ],
      };
    };
    return {
      name: str(h, 'name'),
      wire: {
        client_preamble: hex(wire, 'client_preamble'),
        client_hello: hex(wire, 'client_hello'),
        server_preamble: hex(wire, 'server_preamble'),
        server_hello: hex(wire, 'server_hello'),
        key_exchange: hex(wire, 'key_exchange'),
      },
      c2s: direction('c2s', 'client'),
      s2c: direction('s2c', 'server'),
    };
  });
});
