// Sealing and opening files in the age format (age-encryption.org/v1, c2sp.org/age), X25519
// recipients only, so that the `age` tool and the age-encryption npm package read what stx seals
// and stx reads what they encrypt. The pieces: age-format.ts (header, MAC, primitives),
// age-keys.ts (identities, recipients, the X25519 stanza), age-stream.ts (the STREAM payload,
// sealed at any offset, opened in order), age-errors.ts (typed failures).
//
// To seal: createAgeSealer(recipients, size) once per file; keep its file key, nonce and header
// to resume; AgeSealer.bytesAt/read give the age file's bytes at any offset. To open: openAge.
import { randomBytes } from 'node:crypto';
import { AgeIntegrityError, AgeKeyError } from './age-errors.js';
import { AGE_FILE_KEY_BYTES, encodeHeader, headerEnd, headerMacMatches, parseHeader } from './age-format.js';
import { parseAgeRecipient, unwrapX25519, wrapX25519, type AgeIdentity } from './age-keys.js';
import { AGE_PAYLOAD_NONCE_BYTES, AgePayloadOpener, AgeSealer, AgeStreamSealer } from './age-stream.js';

export { AgeIntegrityError, AgeKeyError, type AgeIntegrityStage, type AgeKeyProblem } from './age-errors.js';
export { AGE_MAX_HEADER_BYTES } from './age-format.js';
export {
  formatAgeRecipient,
  generateAgeIdentity,
  parseAgeIdentity,
  parseAgeKeyFile,
  parseAgeRecipient,
  type AgeIdentity,
  type GeneratedAgeIdentity,
} from './age-keys.js';
export {
  AGE_CHUNK_BYTES,
  AGE_PAYLOAD_NONCE_BYTES,
  AGE_SEALED_CHUNK_BYTES,
  ageChunkCount,
  agePayloadSize,
  AgeSealer,
  AgeStreamSealer,
  type PlaintextRange,
} from './age-stream.js';

/** A fresh 16-byte file key; one per file, never reused. */
export function newFileKey(): Buffer {
  return randomBytes(AGE_FILE_KEY_BYTES);
}

/** A fresh 16-byte payload nonce; one per file. */
export function newPayloadNonce(): Buffer {
  return randomBytes(AGE_PAYLOAD_NONCE_BYTES);
}

/**
 * The header of an age file for `recipients` (`age1…`, at least one): version line, one X25519
 * stanza each (fresh ephemeral keys), MAC line. A malformed recipient is AgeKeyError('key').
 */
export function sealHeader(fileKey: Buffer, recipients: readonly string[]): Buffer {
  if (fileKey.length !== AGE_FILE_KEY_BYTES) throw new RangeError(`an age file key is ${AGE_FILE_KEY_BYTES} bytes`);
  if (recipients.length === 0) throw new AgeKeyError('key', 'sealing needs at least one age recipient');
  return encodeHeader(
    fileKey,
    recipients.map((r) => wrapX25519(fileKey, parseAgeRecipient(r))),
  );
}

/**
 * A sealer for a new age file of `plaintextSize` bytes, with a fresh file key and nonce. To
 * resume later, keep `fileKey`, `sealer.header` and `sealer.nonce` (secret: the file key opens
 * the file) and rebuild with `new AgeSealer(header, fileKey, nonce, plaintextSize)`.
 */
export function createAgeSealer(recipients: readonly string[], plaintextSize: number): { readonly sealer: AgeSealer; readonly fileKey: Buffer } {
  const fileKey = newFileKey();
  const header = sealHeader(fileKey, recipients);
  return { sealer: new AgeSealer(header, fileKey, newPayloadNonce(), plaintextSize), fileKey };
}

/**
 * A sealer for an age file of unknown length (a stream): `prefix` (header and payload nonce) comes
 * first, then what `sealer` returns. Nothing needs keeping: a stream is not resumed across runs.
 */
export function createAgeStreamSealer(recipients: readonly string[]): { readonly prefix: Buffer; readonly sealer: AgeStreamSealer } {
  const fileKey = newFileKey();
  try {
    const nonce = newPayloadNonce();
    return { prefix: Buffer.concat([sealHeader(fileKey, recipients), nonce]), sealer: new AgeStreamSealer(fileKey, nonce) };
  } finally {
    fileKey.fill(0);
  }
}

export interface OpenedAge {
  /** Bytes of the header (the payload nonce follows it). */
  readonly headerLength: number;
  /**
   * The plaintext, one verified 64 KiB chunk at a time (none for an empty file). A chunk is
   * released only after its tag checked out; a bad chunk, a cut stream or bytes after the final
   * chunk throw AgeIntegrityError('payload') — after the chunks before it were released.
   */
  readonly plaintext: AsyncGenerator<Buffer, void, undefined>;
}

/** An iterator over either kind of source; a sync one (an array of buffers) is awaited as is. */
function iteratorOf(source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): AsyncIterator<Uint8Array, unknown> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  const it = source[Symbol.iterator]();
  return {
    next: () => Promise.resolve(it.next()),
    return: (value?: unknown) => Promise.resolve(it.return?.(value) ?? { done: true, value }),
  };
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Opens an age file arriving as `source` (a Readable, a web ReadableStream, an array of
 * buffers, any iterable of byte pieces): reads the header (at most AGE_MAX_HEADER_BYTES), unwraps the file key with the
 * first identity that opens a stanza, checks the header MAC, reads the payload nonce, and
 * returns the plaintext as a stream of verified chunks. Failures: AgeIntegrityError with stage
 * `header` or `hmac`, AgeKeyError('no-match') when no identity opens any stanza.
 */
export async function openAge(
  identities: AgeIdentity | readonly AgeIdentity[],
  source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
): Promise<OpenedAge> {
  const ids: readonly AgeIdentity[] = 'privateKey' in identities ? [identities] : identities;
  const input = iteratorOf(source);
  let buffered: Buffer = Buffer.alloc(0);
  const more = async (): Promise<boolean> => {
    const next = await input.next();
    if (next.done === true) return false;
    buffered = buffered.length === 0 ? asBuffer(next.value) : Buffer.concat([buffered, asBuffer(next.value)]);
    return true;
  };
  let ok = false;
  try {
    // Bounded: headerEnd throws once AGE_MAX_HEADER_BYTES are buffered without a header end.
    let length = headerEnd(buffered);
    while (length === null) {
      if (!(await more())) throw new AgeIntegrityError('header', 'the file ends inside its header');
      length = headerEnd(buffered);
    }
    const header = parseHeader(buffered.subarray(0, length));
    let fileKey: Buffer | null = null;
    for (const id of ids) {
      fileKey = unwrapX25519(header.stanzas, id);
      if (fileKey !== null) break;
    }
    if (fileKey === null) throw new AgeKeyError('no-match', 'none of the identities opens this age file');
    if (!headerMacMatches(fileKey, header)) throw new AgeIntegrityError('hmac', 'the header MAC does not match');
    const payloadAt = length + AGE_PAYLOAD_NONCE_BYTES;
    // Bounded by the 16 bytes wanted, unless the source yields empty pieces forever.
    while (buffered.length < payloadAt) {
      if (!(await more())) throw new AgeIntegrityError('header', 'the file ends inside the payload nonce');
    }
    const opener = new AgePayloadOpener(fileKey, buffered.subarray(length, payloadAt));
    fileKey.fill(0);
    ok = true;
    return { headerLength: length, plaintext: payloadChunks(opener, buffered.subarray(payloadAt), input) };
  } finally {
    if (!ok) await input.return?.();
  }
}

async function* payloadChunks(opener: AgePayloadOpener, first: Buffer, input: AsyncIterator<Uint8Array, unknown>): AsyncGenerator<Buffer, void, undefined> {
  let finished = false;
  try {
    opener.push(first);
    // One pass per piece of the source, which ends; take() empties what each piece completes.
    for (;;) {
      for (let chunk = opener.take(); chunk !== null; chunk = opener.take()) yield chunk;
      const next = await input.next();
      if (next.done === true) break;
      opener.push(asBuffer(next.value));
    }
    finished = true;
    const last = opener.end();
    if (last !== null && last.length > 0) yield last;
  } finally {
    if (!finished) await input.return?.();
  }
}

/** openAge over bytes already in memory, all the plaintext at once. */
export async function openAgeBytes(identities: AgeIdentity | readonly AgeIdentity[], bytes: Buffer): Promise<Buffer> {
  const opened = await openAge(identities, [bytes]);
  const parts: Buffer[] = [];
  for await (const chunk of opened.plaintext) parts.push(chunk);
  return Buffer.concat(parts);
}
