// Resumption (spec/PROTOCOL.md §7.5, revision 1.13) in memory: a ticket from a full handshake
// resumes without KEY_EXCHANGE; every ticket the server should not take is declined (a full
// handshake follows, never an error); the client refuses a resumption it did not offer.
import assert from 'node:assert/strict';
import type { KeyObject } from 'node:crypto';
import { randomBytes } from 'node:crypto';
import { before, describe, test } from 'node:test';
import { ClientHandshake, fingerprint, identityFingerprint, serverKeySpki, TicketKey, type ClientTicket } from '../src/crypto/index.js';
import { decodeBody } from '../src/proto/codec.js';
import { MAX_TICKET_LIFETIME_S } from '../src/proto/limits.js';
import { generateIdentity, generateServerKey } from '../src/keystore/index.js';
import { asClientHello, asServerHello, decodeFrame, runHandshake, runResumption, type PairOptions } from './tools/handshake-pair.js';
import { hasCode } from './support/expect.js';

let serverKey: KeyObject;
let otherServerKey: KeyObject;
let identity: KeyObject;
before(async () => {
  [serverKey, otherServerKey] = await Promise.all([generateServerKey(), generateServerKey(2048)]);
  identity = generateIdentity();
});

const NOW = 1_800_000_000;

/** A full handshake that asks for a ticket; the ticket as the client keeps it. */
function issue(opts: { identity?: KeyObject; key?: KeyObject; now?: number } = {}): ClientTicket {
  const key = opts.key ?? serverKey;
  const r = runHandshake({
    client: { askTicket: true, ...(opts.identity === undefined ? {} : { identity: opts.identity }) },
    server: { serverKey: key, now: () => opts.now ?? NOW },
  });
  assert.ok(r.accepted.newTicket !== null, 'a client that asks gets a NEW_TICKET');
  const t = decodeBody(r.accepted.newTicket);
  assert.ok(t.type === 'NEW_TICKET');
  assert.equal(t.lifetime, MAX_TICKET_LIFETIME_S);
  return { ticket: t.ticket, psk: r.clientKeyCopy.resumption, serverFingerprint: fingerprint(serverKeySpki(key)) };
}

function resume(ticket: ClientTicket, server: Partial<PairOptions['server']> = {}, client: { identity?: KeyObject } = {}): ReturnType<typeof runResumption> {
  return runResumption({ client: { ticket, askTicket: true, ...client }, server: { serverKey, now: () => NOW + 60, ...server } });
}

describe('resumption (§7.5)', () => {
  test('a client that does not ask gets no ticket; one that asks gets one after a full handshake', () => {
    const r = runHandshake({ server: { serverKey } });
    assert.equal(r.accepted.newTicket, null);
    assert.ok(issue().ticket.length <= 512);
  });

  test('an anonymous ticket resumes: no KEY_EXCHANGE, the same keys both sides, a new ticket', () => {
    const r = resume(issue());
    assert.ok('psk' in r, 'resumed');
    assert.equal(r.accepted.resumed, true);
    assert.equal(r.accepted.clientFingerprint, null);
    assert.deepEqual(r.clientKeyCopy, r.serverKeyCopy);
    assert.equal(asServerHello(decodeFrame(r.wire.server_hello)).resumed, 1);
    assert.ok(r.newTicketRecord !== null && r.psk !== null, 'a resumed session issues a ticket too');
  });

  test("a keyed client's ticket resumes as that key, with no identity in CLIENT_FINISHED", () => {
    const r = resume(issue({ identity }), { authorizedKeys: new Set([identityFingerprint(identity)]) }, { identity });
    assert.ok('psk' in r);
    assert.equal(r.accepted.clientFingerprint, identityFingerprint(identity));
    const cf = decodeBody(r.clientFinishedBody);
    assert.ok(cf.type === 'CLIENT_FINISHED' && cf.identity === undefined && cf.signature === undefined);
  });

  test('declined, full handshake instead: a tampered, garbage, expired, future or other-key ticket', () => {
    const good = issue();
    const flipped = Buffer.from(good.ticket);
    flipped[20] = (flipped[20] ?? 0) ^ 1;
    const cases: [string, ClientTicket, Partial<PairOptions['server']>][] = [
      ['a flipped bit', { ...good, ticket: flipped }, {}],
      ['random bytes', { ...good, ticket: randomBytes(good.ticket.length) }, {}],
      ['one byte', { ...good, ticket: Buffer.of(1) }, {}],
      ['another version byte', { ...good, ticket: Buffer.concat([Buffer.of(2), good.ticket.subarray(1)]) }, {}],
      ['expired', good, { now: () => NOW + MAX_TICKET_LIFETIME_S + 1 }],
      ['from the future', good, { now: () => NOW - 3600 }],
      ['under another server key', good, { serverKey: otherServerKey }],
    ];
    for (const [name, ticket, server] of cases) {
      const r = resume(ticket, server);
      assert.ok(!('psk' in r), `${name}: declined`);
      assert.equal(r.accepted.resumed, false, name);
      assert.equal(asServerHello(decodeFrame(r.wire.server_hello)).resumed, undefined, name);
    }
  });

  test("a key no longer authorized: the ticket is declined, and the full handshake refuses it (AUTH_REFUSED)", () => {
    const ticket = issue({ identity });
    const hello = new ClientHandshake({ ticket, identity }).clientHello();
    assert.ok(asClientHello(decodeFrame(hello)).ticket !== undefined);
    assert.throws(() => resume(ticket, { authorizedKeys: new Set(['SHA256:someoneelse']) }, { identity }), hasCode('AUTH_REFUSED'));
    // Listed, but the server's current rules (from=, §7.4) would not let it in: declined, full handshake.
    const r = resume(ticket, { admitsResumed: () => false }, { identity });
    assert.ok(!('psk' in r));
    assert.equal(r.accepted.clientFingerprint, identityFingerprint(identity));
    // An anonymous ticket where anonymous clients may no longer connect.
    assert.throws(() => resume(issue(), { authorizedKeys: new Set([identityFingerprint(identity)]) }), hasCode('AUTH_REFUSED'));
  });

  test('a client that holds the wrong psk fails the resumed handshake (HANDSHAKE_FAILED)', () => {
    const ticket = issue();
    assert.throws(() => resume({ ...ticket, psk: randomBytes(32) }), hasCode('HANDSHAKE_FAILED'));
  });

  test('the client refuses a resumption of a ticket it did not offer, or under another key', () => {
    const ticket = issue();
    // The server resumes under its key, but the client holds the ticket as another server's.
    assert.throws(() => resume({ ...ticket, serverFingerprint: fingerprint(serverKeySpki(otherServerKey)) }), hasCode('HANDSHAKE_FAILED'));
    // A SERVER_HELLO with `resumed` to a client that offered no ticket.
    const server = resume(ticket);
    assert.ok('psk' in server);
    const client = new ClientHandshake();
    client.onServerPreamble(server.wire.server_preamble);
    assert.throws(() => client.onServerHello(server.wire.server_hello, asServerHello(decodeFrame(server.wire.server_hello))), hasCode('HANDSHAKE_FAILED'));
  });

  test('TicketKey: the same server key opens what it sealed, across instances; anything else is null', () => {
    const a = new TicketKey(serverKey, 3600);
    const b = new TicketKey(serverKey, 3600);
    const psk = randomBytes(32);
    const sealed = a.seal({ issuedAt: NOW, identity: null, psk });
    assert.deepEqual(b.open(sealed, NOW + 10)?.psk, psk);
    assert.equal(b.open(sealed, NOW + 3601), null);
    assert.equal(new TicketKey(otherServerKey, 3600).open(sealed, NOW), null);
    assert.equal(b.open(sealed.subarray(0, sealed.length - 1), NOW), null);
    assert.equal(b.open(Buffer.alloc(0), NOW), null);
  });
});
