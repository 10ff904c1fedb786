// Public API of src/crypto: the stx/1 handshake, record layer, key schedule and key files
// (spec/PROTOCOL.md §5–§8).
export { gcmOpen, gcmSeal, type Sealed } from './aead.js';
export { AUTHORIZED_KEY_TYPE, authorizedKeyLine, parseAuthorizedKeys } from './authorized-keys.js';
export { fingerprint, identityFingerprint } from './fingerprint.js';
export {
  ClientHandshake,
  ServerHandshake,
  RANDOM_BYTES,
  type ClientAccepted,
  type ClientHandshakeOptions,
  type ClientKeys,
  type OaepEncryptFn,
  type ServerHandshakeOptions,
  type ServerKeyInfo,
  type ServerKeys,
} from './handshake.js';
export {
  deriveKeys,
  eraseKeys,
  finishedMac,
  hkdfSha256,
  KEY_SCHEDULE,
  signatureMessage,
  verifyFinished,
  type KeySpec,
  type SessionKeys,
} from './key-schedule.js';
export { oaepDecrypt, oaepEncrypt, parseServerKey, serverKeySpki } from './oaep.js';
export {
  RecordOpener,
  RecordSealer,
  recordNonce,
  sealedLength,
  RESERVED_CONTROL_BODY_BYTES,
  type RecordCounters,
  type RecordOpenerOptions,
} from './record.js';
export { okpPrivateFromRaw, okpPublicRaw } from './raw-keys.js';
export { ed25519Verify, signTranscript, verifyTranscriptSignature, type ClientSignature } from './signature.js';
export { x25519KeyPair, x25519SharedSecret, type X25519KeyPair } from './x25519.js';
