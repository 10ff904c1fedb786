// Public API of src/crypto: the stx/1 handshake, record layer, key schedule and key files
// (spec/PROTOCOL.md §5–§8).
export { gcmOpen, gcmSeal } from './aead.js';
export { authorizedKeyLine, parseAuthorizedKeyLines, parseAuthorizedKeys, type AuthorizedKey, type KeyOption } from './authorized-keys.js';
export { fingerprint, identityFingerprint } from './fingerprint.js';
export {
  ClientHandshake,
  ServerHandshake,
  type ClientAccepted,
  type ClientHandshakeOptions,
  type ClientKeys,
  type ServerHandshakeOptions,
  type ServerKeyInfo,
  type ClientTicket,
  type ServerKeys,
  TicketKey,
  ticketKeyFor,
  TICKET_VERSION,
  type TicketContents,
} from './handshake.js';
export {
  deriveKeys,
  finishedMac,
  hkdfSha256,
  RESUMPTION_PSK_BYTES,
  type SessionKeys,
} from './key-schedule.js';
export { oaepDecrypt, oaepEncrypt, serverKeySpki } from './oaep.js';
export {
  RecordOpener,
  RecordSealer,
  recordNonce,
  RESERVED_CONTROL_BODY_BYTES,
  type RecordCounters,
} from './record.js';
export { okpGenerate, okpPrivateFromRaw, okpPublicRaw } from './raw-keys.js';
export { ed25519Verify, signTranscript } from './signature.js';
export { x25519KeyPair, x25519SharedSecret } from './x25519.js';
