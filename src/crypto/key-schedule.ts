// Key schedule of stx/1 (spec/PROTOCOL.md §7.2–§7.4): HKDF-SHA-256 keyed by the transcript
// hash, one label per purpose and direction, FINISHED MACs and the client signature message.
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

const HASH_BYTES = 32;
/** Bytes of rsa_secret (§7.1) and of an X25519 shared secret (§7.1). */
export const RSA_SECRET_BYTES = 32;
const DH_BYTES = 32;

export interface SessionKeys {
  readonly c2sKey: Buffer;
  readonly c2sIv: Buffer;
  readonly s2cKey: Buffer;
  readonly s2cIv: Buffer;
  readonly cFinishedKey: Buffer;
  readonly sFinishedKey: Buffer;
  /** The pre-shared key a ticket of this session carries (§7.5, revision 1.13). */
  readonly resumption: Buffer;
}

interface KeySpec {
  /** info = "stx/1 " ‖ label. */
  readonly label: string;
  readonly bytes: number;
}

/** The table of §7.2. */
const KEY_SCHEDULE: Readonly<Record<keyof SessionKeys, KeySpec>> = {
  c2sKey: { label: 'c2s key', bytes: 32 },
  c2sIv: { label: 'c2s iv', bytes: 12 },
  s2cKey: { label: 's2c key', bytes: 32 },
  s2cIv: { label: 's2c iv', bytes: 12 },
  cFinishedKey: { label: 'c finished', bytes: 32 },
  sFinishedKey: { label: 's finished', bytes: 32 },
  resumption: { label: 'resumption', bytes: 32 },
};

/** Bytes of the resumption psk a ticket carries (§7.2, §7.5). */
export const RESUMPTION_PSK_BYTES = KEY_SCHEDULE.resumption.bytes;

const INFO_PREFIX = 'stx/1 ';
const SIGNATURE_CONTEXT = Buffer.from('stx/1 client signature\0', 'ascii');

/** HKDF-SHA-256 (RFC 5869, Extract then Expand). */
export function hkdfSha256(salt: Buffer, ikm: Buffer, info: Buffer, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/**
 * §7.2: ikm = rsa_secret ‖ dh (a resumed handshake, §7.5: psk ‖ dh, with H_ke = H_sh); K(label, L) = HKDF(salt = H_ke, ikm, "stx/1 " ‖ label, L).
 * The caller erases rsaSecret and dh afterwards; the joined ikm is erased here.
 */
export function deriveKeys(rsaSecret: Buffer, dh: Buffer, transcriptHashKe: Buffer): SessionKeys {
  if (rsaSecret.length !== RSA_SECRET_BYTES) throw new RangeError(`rsa_secret must be ${RSA_SECRET_BYTES} bytes`);
  if (dh.length !== DH_BYTES) throw new RangeError(`dh must be ${DH_BYTES} bytes`);
  if (transcriptHashKe.length !== HASH_BYTES) throw new RangeError(`H_ke must be ${HASH_BYTES} bytes`);
  const ikm = Buffer.concat([rsaSecret, dh]);
  try {
    const k = (spec: KeySpec): Buffer =>
      hkdfSha256(transcriptHashKe, ikm, Buffer.from(INFO_PREFIX + spec.label, 'ascii'), spec.bytes);
    return {
      c2sKey: k(KEY_SCHEDULE.c2sKey),
      c2sIv: k(KEY_SCHEDULE.c2sIv),
      s2cKey: k(KEY_SCHEDULE.s2cKey),
      s2cIv: k(KEY_SCHEDULE.s2cIv),
      cFinishedKey: k(KEY_SCHEDULE.cFinishedKey),
      sFinishedKey: k(KEY_SCHEDULE.sFinishedKey),
      resumption: k(KEY_SCHEDULE.resumption),
    };
  } finally {
    ikm.fill(0);
  }
}

/** Overwrites every key with zeros (§7.2: erase once no longer needed). */
export function eraseKeys(keys: SessionKeys): void {
  keys.c2sKey.fill(0);
  keys.c2sIv.fill(0);
  keys.s2cKey.fill(0);
  keys.s2cIv.fill(0);
  keys.cFinishedKey.fill(0);
  keys.sFinishedKey.fill(0);
  keys.resumption.fill(0);
}

/** §7.3: verify = HMAC(finished_key, H_ke). */
export function finishedMac(finishedKey: Buffer, transcriptHashKe: Buffer): Buffer {
  return createHmac('sha256', finishedKey).update(transcriptHashKe).digest();
}

/** §7.3: constant-time check of a received verify value (a length mismatch is simply false). */
export function verifyFinished(finishedKey: Buffer, transcriptHashKe: Buffer, received: Buffer): boolean {
  const expected = finishedMac(finishedKey, transcriptHashKe);
  const ok = received.length === expected.length && timingSafeEqual(expected, received);
  expected.fill(0);
  return ok;
}

/** §7.4: the message the client signs, "stx/1 client signature" ‖ 0x00 ‖ H_ke. */
export function signatureMessage(transcriptHashKe: Buffer): Buffer {
  if (transcriptHashKe.length !== HASH_BYTES) throw new RangeError(`H_ke must be ${HASH_BYTES} bytes`);
  return Buffer.concat([SIGNATURE_CONTEXT, transcriptHashKe]);
}
