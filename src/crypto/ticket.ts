// Resumption tickets (spec/PROTOCOL.md §7.5, revision 1.13): what the server seals for a client
// to hand back, opaque to the client. The ticket key is derived from the server's private key, so
// tickets outlive a restart and several servers sharing the key take each other's. Opening never
// throws: a ticket that is not ours, altered, expired or from the future is declined (null), and
// the handshake goes on in full.
import { createHash, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { TAG_BYTES } from '../proto/limits.js';
import { AEAD_NONCE_BYTES as NONCE_BYTES, gcmOpen, gcmSeal } from './aead.js';
import { RESUMPTION_PSK_BYTES as PSK_BYTES } from './key-schedule.js';
import { serverKeySpki } from './oaep.js';

/** The first byte of every ticket: which ticket key and layout (§7.5). */
export const TICKET_VERSION = 1;
const IDENTITY_BYTES = 32;
/** A ticket issued up to this far in the future (clocks of servers sharing a key) is still taken. */
const CLOCK_SKEW_S = 60;
const KIND_ANONYMOUS = 0;
const KIND_ED25519 = 1;

/** What a ticket carries. */
export interface TicketContents {
  /** Seconds since the Unix epoch when it was issued. */
  readonly issuedAt: number;
  /** The client's raw Ed25519 key, proven in the issuing session, or null (anonymous). */
  readonly identity: Buffer | null;
  /** K("resumption", 32) of the issuing session (§7.2). */
  readonly psk: Buffer;
}

/** The server's ticket key (§7.5): HKDF(salt = H(server_key), ikm = PKCS#8 DER of the private key, "stx/1 ticket key" ‖ version, 32). */
export class TicketKey {
  private readonly key: Buffer;
  private readonly aad: Buffer;

  constructor(
    serverKey: KeyObject,
    /** Seconds a ticket is good for from its issue, at most MAX_TICKET_LIFETIME_S (§7.5). */
    readonly lifetimeS: number,
  ) {
    const spkiHash = createHash('sha256').update(serverKeySpki(serverKey)).digest();
    const der = serverKey.export({ type: 'pkcs8', format: 'der' });
    this.key = Buffer.from(hkdfSync('sha256', der, spkiHash, Buffer.concat([Buffer.from('stx/1 ticket key', 'ascii'), Buffer.of(TICKET_VERSION)]), 32));
    der.fill(0);
    // A ticket names the server key it was made under: one made under another key never opens.
    this.aad = Buffer.concat([Buffer.of(TICKET_VERSION), spkiHash]);
  }

  /** version ‖ nonce ‖ AES-256-GCM(issued_at:u64 ‖ kind:u8 ‖ [identity:32] ‖ psk:32) ‖ tag. */
  seal(contents: TicketContents, nonce: Buffer = randomBytes(NONCE_BYTES)): Buffer {
    if (contents.psk.length !== PSK_BYTES) throw new RangeError(`psk must be ${PSK_BYTES} bytes`);
    const head = Buffer.alloc(9);
    head.writeBigUInt64BE(BigInt(Math.floor(contents.issuedAt)), 0);
    head[8] = contents.identity === null ? KIND_ANONYMOUS : KIND_ED25519;
    const parts = contents.identity === null ? [head, contents.psk] : [head, contents.identity, contents.psk];
    const sealed = gcmSeal(this.key, nonce, this.aad, parts);
    return Buffer.concat([Buffer.of(TICKET_VERSION), nonce, ...sealed.ciphertext, sealed.tag]);
  }

  /** The ticket's contents if it is ours, whole, and good at `nowS`; else null (declined, never an error). */
  open(ticket: Buffer, nowS: number): TicketContents | null {
    if (ticket.length < 1 + NONCE_BYTES + 9 + PSK_BYTES + TAG_BYTES || ticket[0] !== TICKET_VERSION) return null;
    let plain: Buffer;
    try {
      plain = gcmOpen(this.key, ticket.subarray(1, 1 + NONCE_BYTES), this.aad, ticket.subarray(1 + NONCE_BYTES, ticket.length - TAG_BYTES), ticket.subarray(ticket.length - TAG_BYTES));
    } catch {
      return null;
    }
    const kind = plain[8];
    const expected = 9 + (kind === KIND_ED25519 ? IDENTITY_BYTES : 0) + PSK_BYTES;
    if ((kind !== KIND_ANONYMOUS && kind !== KIND_ED25519) || plain.length !== expected) return null;
    const issuedAt = Number(plain.readBigUInt64BE(0));
    if (issuedAt > nowS + CLOCK_SKEW_S || nowS - issuedAt > this.lifetimeS) return null;
    return {
      issuedAt,
      identity: kind === KIND_ED25519 ? Buffer.from(plain.subarray(9, 9 + IDENTITY_BYTES)) : null,
      psk: Buffer.from(plain.subarray(plain.length - PSK_BYTES)),
    };
  }
}

const KEYS = new WeakMap<KeyObject, TicketKey>();

/** The ticket key of `serverKey` with the longest lifetime allowed, derived once per key object. */
export function ticketKeyFor(serverKey: KeyObject, lifetimeS: number): TicketKey {
  let key = KEYS.get(serverKey);
  if (key === undefined || key.lifetimeS !== lifetimeS) KEYS.set(serverKey, (key = new TicketKey(serverKey, lifetimeS)));
  return key;
}
