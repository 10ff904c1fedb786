// Generates spec/vectors/handshake.json and spec/vectors/records.json (spec/PROTOCOL.md §12).
//
//   npx tsc -p tsconfig.json && node dist/test/tools/gen-crypto-vectors.js
//
// Every input is fixed: randoms, X25519 and Ed25519 private keys, rsa_secret and record keys are
// SHA-256 of a label. The RSA key and the OAEP ciphertext cannot be derived that way (RSA key
// generation and OAEP are randomized), so the first run draws them and later runs keep the ones
// already stored in handshake.json: rerunning reproduces the files byte for byte. The vectors are
// checked by test/vectors-crypto.test.ts (our code) and test/crypto-forge.test.ts (node-forge).
import { createHash, createPrivateKey, generateKeyPairSync, hkdfSync, type KeyObject } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { decodeBody, encodeBody, encodeDataHead } from '../../src/proto/codec.js';
import { FRAME_TYPES } from '../../src/proto/frames.js';
import { MAX_RECORDS_PER_KEY, MAX_TICKET_LIFETIME_S } from '../../src/proto/limits.js';
import { fingerprint, oaepDecrypt, oaepEncrypt, okpPrivateFromRaw, okpPublicRaw, TICKET_VERSION, TicketKey, RecordOpener, RecordSealer, serverKeySpki, x25519KeyPair, x25519SharedSecret, type SessionKeys } from '../../src/crypto/index.js';
import { repoPath } from './crypto-files.js';
import { asClientFinished, asServerFinished, runHandshake, runResumption } from './handshake-pair.js';

const HANDSHAKE_FILE = repoPath('spec', 'vectors', 'handshake.json');
const RECORDS_FILE = repoPath('spec', 'vectors', 'records.json');
const RESUMPTION_FILE = repoPath('spec', 'vectors', 'resumption.json');

const hex = (b: Buffer): string => b.toString('hex');

type KeysHex = Record<'c2s_key' | 'c2s_iv' | 's2c_key' | 's2c_iv' | 'c_finished_key' | 's_finished_key' | 'resumption_psk', string>;

/** The keys of §7.2 as a vector lists them, in the table's order. */
function keysHex(k: SessionKeys): KeysHex {
  return {
    c2s_key: hex(k.c2sKey),
    c2s_iv: hex(k.c2sIv),
    s2c_key: hex(k.s2cKey),
    s2c_iv: hex(k.s2cIv),
    c_finished_key: hex(k.cFinishedKey),
    s_finished_key: hex(k.sFinishedKey),
    resumption_psk: hex(k.resumption),
  };
}
const fixed = (label: string): Buffer => createHash('sha256').update(`stx/1 test vector: ${label}`).digest();

/** RSA key and OAEP ciphertexts kept from a previous run, by handshake name. */
function previous(): { pem: string | null; secrets: Map<string, string> } {
  if (!existsSync(HANDSHAKE_FILE)) return { pem: null, secrets: new Map() };
  const doc: unknown = JSON.parse(readFileSync(HANDSHAKE_FILE, 'utf8'));
  const secrets = new Map<string, string>();
  let pem: string | null = null;
  const list: unknown = typeof doc === 'object' && doc !== null && 'vectors' in doc ? doc.vectors : [];
  if (Array.isArray(list)) {
    const entries: readonly unknown[] = list;
    for (const h of entries) {
      if (typeof h !== 'object' || h === null || !('name' in h) || !('inputs' in h)) continue;
      const inputs = h.inputs;
      if (typeof h.name !== 'string' || typeof inputs !== 'object' || inputs === null) continue;
      if ('server_rsa_private_pem' in inputs && typeof inputs.server_rsa_private_pem === 'string') pem = inputs.server_rsa_private_pem;
      if ('encrypted_secret' in inputs && typeof inputs.encrypted_secret === 'string') secrets.set(h.name, inputs.encrypted_secret);
    }
  }
  return { pem, secrets };
}

interface HandshakeCase {
  readonly name: string;
  readonly authenticated: boolean;
}

function handshakeVector(c: HandshakeCase, serverKey: KeyObject, serverPem: string, storedSecret: string | undefined) {
  const inputs = {
    clientRandom: fixed(`${c.name} client random`),
    serverRandom: fixed(`${c.name} server random`),
    clientX25519: fixed(`${c.name} client x25519`),
    serverX25519: fixed(`${c.name} server x25519`),
    rsaSecret: fixed(`${c.name} rsa_secret`),
    ed25519Seed: c.authenticated ? fixed(`${c.name} client ed25519`) : null,
  };
  // `as`: set inside the handshake's callbacks, which TypeScript's narrowing does not see.
  let encryptedSecret = null as Buffer | null;
  const r = runHandshake({
    client: {
      random: inputs.clientRandom,
      x25519Private: inputs.clientX25519,
      rsaSecret: inputs.rsaSecret,
      ...(inputs.ed25519Seed === null ? {} : { identity: okpPrivateFromRaw('ed25519', inputs.ed25519Seed) }),
      oaepEncrypt: (key, secret, label) => {
        // Keep the stored ciphertext while it still decrypts to this secret under this label.
        if (storedSecret !== undefined) {
          const stored = Buffer.from(storedSecret, 'hex');
          try {
            if (oaepDecrypt(serverKey, stored, label).equals(secret)) return (encryptedSecret = stored);
          } catch {
            // stale: the inputs changed, draw a new one below
          }
        }
        return (encryptedSecret = oaepEncrypt(key, secret, label));
      },
    },
    server: { serverKey, random: inputs.serverRandom, x25519Private: inputs.serverX25519 },
  });
  if (encryptedSecret === null) throw new Error('KEY_EXCHANGE was not built');
  const k = r.clientKeyCopy;
  const cf = r.clientFinishedBody;
  const clientX = x25519KeyPair(inputs.clientX25519);
  const serverX = x25519KeyPair(inputs.serverX25519);
  const dh = x25519SharedSecret(clientX.privateKey, serverX.publicKey);
  const { identity, clientFingerprint } = r.accepted;

  // The first records after FINISHED in each direction: OPEN, DATA (C→S) and OPEN_OK, ACK (S→C).
  const content = Buffer.from('hello, stx\n', 'utf8');
  const bodies = [
    { direction: 'c2s', comment: 'OPEN name=hello.txt', body: encodeBody({ type: 'OPEN', name: 'hello.txt', size: content.length, mtime: 1_700_000_000_000, mode: 0o644 }) },
    { direction: 'c2s', comment: 'DATA offset=0', body: Buffer.concat([encodeDataHead(0), content]) },
    { direction: 's2c', comment: 'OPEN_OK offset=0', body: encodeBody({ type: 'OPEN_OK', offset: 0 }) },
    { direction: 's2c', comment: `ACK offset=${content.length}`, body: encodeBody({ type: 'ACK', offset: content.length }) },
  ] as const;
  const records = bodies.map((b) => {
    const sealer = b.direction === 'c2s' ? r.clientKeys.sealer : r.serverKeys.sealer;
    const seq = sealer.seq;
    return { direction: b.direction, seq, comment: b.comment, body: hex(b.body), record: hex(Buffer.concat(sealer.seal(b.body))) };
  });

  const clientFinished = asClientFinished(decodeBody(cf));
  const serverFinished = asServerFinished(decodeBody(r.accepted.serverFinished));
  return {
    name: c.name,
    inputs: {
      server_rsa_private_pem: serverPem,
      client_random: hex(inputs.clientRandom),
      server_random: hex(inputs.serverRandom),
      client_x25519_private: hex(inputs.clientX25519),
      server_x25519_private: hex(inputs.serverX25519),
      rsa_secret: hex(inputs.rsaSecret),
      client_ed25519_private: inputs.ed25519Seed === null ? null : hex(inputs.ed25519Seed),
      encrypted_secret: hex(encryptedSecret),
    },
    wire: {
      client_preamble: hex(r.wire.client_preamble),
      client_hello: hex(r.wire.client_hello),
      server_preamble: hex(r.wire.server_preamble),
      server_hello: hex(r.wire.server_hello),
      key_exchange: hex(r.wire.key_exchange),
      client_finished_body: hex(cf),
      client_finished_record: hex(r.wire.client_finished_record),
      server_finished_body: hex(r.accepted.serverFinished),
      server_finished_record: hex(r.wire.server_finished_record),
    },
    values: {
      client_x25519_public: hex(clientX.publicKey),
      server_x25519_public: hex(serverX.publicKey),
      server_key: hex(serverKeySpki(serverKey)),
      server_fingerprint: fingerprint(serverKeySpki(serverKey)),
      client_identity: identity === null ? null : hex(identity),
      client_fingerprint: clientFingerprint,
      h_sh: hex(createHash('sha256').update(Buffer.concat([r.wire.client_preamble, r.wire.client_hello, r.wire.server_preamble, r.wire.server_hello])).digest()),
      h_ke: hex(r.clientKeys.transcriptHash),
      dh: hex(dh),
      ...keysHex(k),
      client_verify: hex(clientFinished.verify),
      server_verify: hex(serverFinished.verify),
      client_signature: clientFinished.signature === undefined ? null : hex(clientFinished.signature),
    },
    records,
  };
}

const ISSUED_AT = 1_800_000_000;

/**
 * A resumed handshake (§7.5, revision 1.13): the ticket of the `authenticated client` handshake
 * (its resumption_psk), sealed by the server at ISSUED_AT with a fixed nonce, taken an hour later;
 * the client asks for a new ticket, which the server seals with another fixed nonce.
 */
function resumptionVector(serverKey: KeyObject, serverPem: string, psk: Buffer): object {
  const name = 'resumed authenticated client';
  const seed = fixed('authenticated client client ed25519');
  const identity = okpPrivateFromRaw('ed25519', seed);
  const now = ISSUED_AT + 3600;
  const inputs = {
    clientRandom: fixed(`${name} client random`),
    serverRandom: fixed(`${name} server random`),
    clientX25519: fixed(`${name} client x25519`),
    serverX25519: fixed(`${name} server x25519`),
    ticketNonce: fixed(`${name} ticket nonce`).subarray(0, 12),
    newTicketNonce: fixed(`${name} new ticket nonce`).subarray(0, 12),
  };
  const spkiHash = createHash('sha256').update(serverKeySpki(serverKey)).digest();
  const ticketKeyBytes = Buffer.from(hkdfSync('sha256', serverKey.export({ type: 'pkcs8', format: 'der' }), spkiHash, Buffer.concat([Buffer.from('stx/1 ticket key', 'ascii'), Buffer.of(TICKET_VERSION)]), 32));
  const ticket = new TicketKey(serverKey, MAX_TICKET_LIFETIME_S).seal({ issuedAt: ISSUED_AT, identity: okpPublicRaw('ed25519', identity), psk }, inputs.ticketNonce);
  const serverFingerprint = fingerprint(serverKeySpki(serverKey));
  const r = runResumption({
    client: { random: inputs.clientRandom, x25519Private: inputs.clientX25519, identity, askTicket: true, ticket: { ticket, psk, serverFingerprint } },
    server: { serverKey, random: inputs.serverRandom, x25519Private: inputs.serverX25519, now: () => now, ticketNonce: inputs.newTicketNonce },
  });
  if (!('psk' in r) || r.newTicketRecord === null || r.accepted.newTicket === null) throw new Error('the vector ticket was not taken');
  const k = r.clientKeyCopy;
  const clientX = x25519KeyPair(inputs.clientX25519);
  const serverX = x25519KeyPair(inputs.serverX25519);
  const hSh = createHash('sha256').update(Buffer.concat([r.wire.client_preamble, r.wire.client_hello, r.wire.server_preamble, r.wire.server_hello])).digest();
  return {
    name,
    inputs: {
      server_rsa_private_pem: serverPem,
      issuing_handshake: 'authenticated client',
      psk: hex(psk),
      issued_at: ISSUED_AT,
      now,
      ticket_nonce: hex(inputs.ticketNonce),
      client_random: hex(inputs.clientRandom),
      server_random: hex(inputs.serverRandom),
      client_x25519_private: hex(inputs.clientX25519),
      server_x25519_private: hex(inputs.serverX25519),
      client_ed25519_private: hex(seed),
      new_ticket_nonce: hex(inputs.newTicketNonce),
    },
    wire: {
      client_preamble: hex(r.wire.client_preamble),
      client_hello: hex(r.wire.client_hello),
      server_preamble: hex(r.wire.server_preamble),
      server_hello: hex(r.wire.server_hello),
      client_finished_body: hex(r.clientFinishedBody),
      client_finished_record: hex(r.wire.client_finished_record),
      server_finished_body: hex(r.accepted.serverFinished),
      server_finished_record: hex(r.wire.server_finished_record),
      new_ticket_body: hex(r.accepted.newTicket),
      new_ticket_record: hex(r.newTicketRecord),
    },
    values: {
      ticket_key: hex(ticketKeyBytes),
      ticket: hex(ticket),
      server_fingerprint: serverFingerprint,
      client_fingerprint: r.accepted.clientFingerprint,
      client_x25519_public: hex(clientX.publicKey),
      server_x25519_public: hex(serverX.publicKey),
      dh: hex(x25519SharedSecret(clientX.privateKey, serverX.publicKey)),
      h_ke: hex(hSh),
      ...keysHex(k),
    },
  };
}

function recordVectors(): object {
  const key = fixed('records key');
  const iv = fixed('records iv').subarray(0, 12);
  const ivOnes = Buffer.alloc(12, 0xff);
  const seal = (k: Buffer, v: Buffer, seq: number, body: Buffer): Buffer => Buffer.concat(new RecordSealer(k, v, { seq }).seal(body));
  const ping = encodeBody({ type: 'PING', seq: 7 });
  const data = Buffer.concat([encodeDataHead(4096), Buffer.from(fixed('records data').toString('hex').repeat(16), 'ascii')]);
  const cases = [
    { comment: 'smallest record: a 1-byte body (0x21 alone; the record layer seals any body, the codec would reject this one)', key, iv, seq: 0, body: Buffer.from([FRAME_TYPES.PING]) },
    { comment: 'PING seq=7 at seq 0', key, iv, seq: 0, body: ping },
    { comment: 'the same PING at seq 1: a different nonce', key, iv, seq: 1, body: ping },
    { comment: 'seq 2^32-1, the last record a key may seal; iv of all ones', key, iv: ivOnes, seq: MAX_RECORDS_PER_KEY - 1, body: ping },
    { comment: 'seq 0x01020304: nonce = iv XOR 00000000 00000000 01020304', key, iv, seq: 0x01020304, body: ping },
    { comment: 'DATA offset=4096 with 1024 bytes', key, iv, seq: 5, body: data },
  ];
  const sealCases = cases.map((c) => ({ comment: c.comment, key: hex(c.key), iv: hex(c.iv), seq: c.seq, body: hex(c.body), record: hex(seal(c.key, c.iv, c.seq, c.body)) }));

  const good = seal(key, iv, 3, ping);
  const flip = (b: Buffer, at: number, mask = 0x01): Buffer => {
    const out = Buffer.from(b);
    out[at] = (out[at] ?? 0) ^ mask;
    return out;
  };
  // A changed length re-frames the record as a reader would: one byte fewer, or one more.
  const relength = (b: Buffer): Buffer => {
    const out = flip(b, 3);
    const length = out.readUInt32BE(0);
    return length < b.length - 4 ? out.subarray(0, 4 + length) : Buffer.concat([out, Buffer.alloc(1)]);
  };
  const otherKey = fixed('records other key');
  const tooShort = Buffer.concat([Buffer.from('00000010', 'hex'), Buffer.alloc(16)]);
  const openFail = [
    { comment: 'a ciphertext bit flipped', seq: 3, record: flip(good, 4 + 2), error: 'DECRYPT_FAILED' },
    { comment: 'a tag bit flipped', seq: 3, record: flip(good, good.length - 1, 0x80), error: 'DECRYPT_FAILED' },
    { comment: 'the length header altered (AAD) and the record re-framed to match', seq: 3, record: relength(good), error: 'DECRYPT_FAILED' },
    { comment: 'opened at the wrong seq (a dropped record before it)', seq: 4, record: good, error: 'DECRYPT_FAILED' },
    { comment: 'opened at the wrong seq (a replay)', seq: 2, record: good, error: 'DECRYPT_FAILED' },
    { comment: 'opened with another key (the other direction)', seq: 3, record: good, error: 'DECRYPT_FAILED', key: otherKey },
    { comment: 'record 2^32 exceeds MAX_RECORDS_PER_KEY', seq: MAX_RECORDS_PER_KEY, record: good, error: 'KEY_LIMIT' },
    { comment: 'length 16 is below MIN_RECORD_LENGTH', seq: 0, record: tooShort, error: 'MALFORMED_FRAME' },
  ].map((c) => ({ comment: c.comment, key: hex(c.key ?? key), iv: hex(iv), seq: c.seq, record: hex(c.record), error: c.error }));
  // Sanity: the good record opens where it should.
  new RecordOpener(key, iv, { start: { seq: 3 } }).open(good);
  return {
    description:
      'stx/1 record layer (spec/PROTOCOL.md §8), hex byte strings. A vector with "body": sealing body with key/iv at seq gives record, ' +
      'and opening record at seq gives body. A vector with "error": opening record with key/iv at seq fails with that error code. ' +
      'Generated by test/tools/gen-crypto-vectors.ts.',
    vectors: [...sealCases, ...openFail],
  };
}

function main(): void {
  const prev = previous();
  const pem = prev.pem ?? generateKeyPairSync('rsa', { modulusLength: 3072 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const serverKey = createPrivateKey(pem);
  const cases: HandshakeCase[] = [
    { name: 'authenticated client', authenticated: true },
    { name: 'anonymous client', authenticated: false },
  ];
  const handshakes = {
    description:
      'stx/1 handshakes (spec/PROTOCOL.md §6–§8) with fixed keys and randomness. All byte strings are hex. wire.* are the exact ' +
      'bytes on the wire (frames include their length prefix; *_body are frame bodies; *_record are sealed records). ' +
      'records are the next records of each direction after FINISHED. OAEP is randomized: encrypted_secret is stored, ' +
      'not derivable. Generated by test/tools/gen-crypto-vectors.ts.',
    vectors: cases.map((c) => handshakeVector(c, serverKey, pem, prev.secrets.get(c.name))),
  };
  writeFileSync(HANDSHAKE_FILE, JSON.stringify(handshakes, null, 2) + '\n');
  // The ticket resumed carries the psk of the authenticated handshake above, as stored.
  const issuing = handshakes.vectors.find((v) => v.name === 'authenticated client');
  if (issuing === undefined) throw new Error('no authenticated handshake');
  const resumption = {
    description:
      'stx/1 resumed handshake (spec/PROTOCOL.md §7.5, revision 1.13) with fixed keys and randomness, hex byte strings. inputs.psk is ' +
      'the resumption_psk of handshake.json\'s issuing_handshake; the server sealed it in values.ticket at issued_at with ticket_nonce ' +
      'and takes it at now. No KEY_EXCHANGE: H_ke = H_sh, ikm = psk ‖ dh. The client asks for a new ticket (CLIENT_HELLO tickets = 1): ' +
      'wire.new_ticket_* is the NEW_TICKET the server seals with new_ticket_nonce right after SERVER_FINISHED. Generated by test/tools/gen-crypto-vectors.ts.',
    vectors: [resumptionVector(serverKey, pem, Buffer.from(issuing.values.resumption_psk, 'hex'))],
  };
  writeFileSync(RESUMPTION_FILE, JSON.stringify(resumption, null, 2) + '\n');
  writeFileSync(RECORDS_FILE, JSON.stringify(recordVectors(), null, 2) + '\n');
  console.log(`wrote ${HANDSHAKE_FILE}, ${RESUMPTION_FILE} and ${RECORDS_FILE}`);
}

main();
