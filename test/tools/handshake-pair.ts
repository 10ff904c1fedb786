// Drives a ClientHandshake and a ServerHandshake against each other in memory, through the real
// codec and record layer, with a hook to alter any message in transit. Used by the handshake
// tests, the vector conformance test and the vector generator.
import { decodeBody } from '../../src/proto/codec.js';
import type { ClientFinished, ClientHello, Frame, KeyExchange, ServerFinished, ServerHello } from '../../src/proto/frames.js';
import { ClientHandshake, ServerHandshake, type ClientAccepted, type ClientHandshakeOptions, type ClientKeys, type ServerHandshakeOptions, type ServerKeyInfo, type ServerKeys, type SessionKeys } from '../../src/crypto/index.js';

export type WireName =
  | 'client_preamble'
  | 'client_hello'
  | 'server_preamble'
  | 'server_hello'
  | 'key_exchange'
  | 'client_finished_record'
  | 'server_finished_record';

export interface PairOptions {
  readonly client?: ClientHandshakeOptions;
  readonly server: ServerHandshakeOptions;
  /** Called with every message in transit; returns what the receiver gets. */
  readonly wire?: (name: WireName, bytes: Buffer) => Buffer;
  /** Replaces the CLIENT_FINISHED body the client is about to seal. */
  readonly clientFinished?: (body: Buffer, client: ClientKeys) => Buffer;
  /** Replaces the SERVER_FINISHED body the server is about to seal. */
  readonly serverFinished?: (body: Buffer, server: ServerKeys) => Buffer;
  /** The client's trust check (§5); throwing stops the handshake before KEY_EXCHANGE. */
  readonly trust?: (info: ServerKeyInfo) => void;
}

export interface PairResult {
  readonly client: ClientHandshake;
  readonly server: ServerHandshake;
  /** Every message as sent. */
  readonly wire: Record<WireName, Buffer>;
  readonly serverKeyInfo: ServerKeyInfo;
  readonly clientKeys: ClientKeys;
  readonly serverKeys: ServerKeys;
  /** Copies of the keys taken before the handshake erased them. */
  readonly clientKeyCopy: SessionKeys;
  readonly serverKeyCopy: SessionKeys;
  readonly clientFinishedBody: Buffer;
  readonly accepted: ClientAccepted;
}

/** Decodes a whole plaintext frame (length ‖ body). */
export function decodeFrame(bytes: Buffer): Frame {
  return decodeBody(bytes.subarray(4));
}

function expectType<T extends Frame>(frame: Frame, isT: (f: Frame) => f is T, name: string): T {
  if (!isT(frame)) throw new Error(`expected ${name}, got ${frame.type}`);
  return frame;
}
export const asClientHello = (f: Frame): ClientHello =>
  expectType(f, (x): x is ClientHello => x.type === 'CLIENT_HELLO', 'CLIENT_HELLO');
export const asServerHello = (f: Frame): ServerHello =>
  expectType(f, (x): x is ServerHello => x.type === 'SERVER_HELLO', 'SERVER_HELLO');
export const asKeyExchange = (f: Frame): KeyExchange =>
  expectType(f, (x): x is KeyExchange => x.type === 'KEY_EXCHANGE', 'KEY_EXCHANGE');
export const asClientFinished = (f: Frame): ClientFinished =>
  expectType(f, (x): x is ClientFinished => x.type === 'CLIENT_FINISHED', 'CLIENT_FINISHED');
export const asServerFinished = (f: Frame): ServerFinished =>
  expectType(f, (x): x is ServerFinished => x.type === 'SERVER_FINISHED', 'SERVER_FINISHED');

export function copyKeys(k: SessionKeys): SessionKeys {
  return {
    c2sKey: Buffer.from(k.c2sKey),
    c2sIv: Buffer.from(k.c2sIv),
    s2cKey: Buffer.from(k.s2cKey),
    s2cIv: Buffer.from(k.s2cIv),
    cFinishedKey: Buffer.from(k.cFinishedKey),
    sFinishedKey: Buffer.from(k.sFinishedKey),
    resumption: Buffer.from(k.resumption),
  };
}

/** Runs a whole handshake; throws the first error either side raises. */
export function runHandshake(options: PairOptions): PairResult {
  const client = new ClientHandshake(options.client);
  const server = new ServerHandshake(options.server);
  const sent: Partial<Record<WireName, Buffer>> = {};
  const transit = (name: WireName, bytes: Buffer): Buffer => {
    sent[name] = bytes;
    return options.wire === undefined ? bytes : options.wire(name, Buffer.from(bytes));
  };

  const serverPreamble = server.onClientPreamble(transit('client_preamble', client.preamble()));
  const helloRx = transit('client_hello', client.clientHello());
  const serverHello = server.onClientHello(helloRx, asClientHello(decodeFrame(helloRx)));
  client.onServerPreamble(transit('server_preamble', serverPreamble));
  const serverHelloRx = transit('server_hello', serverHello);
  const serverKeyInfo = client.onServerHello(serverHelloRx, asServerHello(decodeFrame(serverHelloRx)));
  options.trust?.(serverKeyInfo);

  const clientKeys = client.finish();
  const clientKeyCopy = copyKeys(clientKeys.keys);
  const clientFinishedBody =
    options.clientFinished === undefined ? clientKeys.clientFinished : options.clientFinished(clientKeys.clientFinished, clientKeys);
  const clientFinishedRecord = Buffer.concat(clientKeys.sealer.seal(clientFinishedBody));
  const keyExchangeRx = transit('key_exchange', clientKeys.keyExchange);
  const serverKeys = server.onKeyExchange(keyExchangeRx, asKeyExchange(decodeFrame(keyExchangeRx)));
  const serverKeyCopy = copyKeys(serverKeys.keys);

  const cfBody = serverKeys.opener.open(transit('client_finished_record', clientFinishedRecord));
  const accepted = server.onClientFinished(asClientFinished(decodeBody(cfBody)));
  const serverFinishedBody =
    options.serverFinished === undefined ? accepted.serverFinished : options.serverFinished(accepted.serverFinished, serverKeys);
  const serverFinishedRecord = Buffer.concat(serverKeys.sealer.seal(serverFinishedBody));
  const sfBody = clientKeys.opener.open(transit('server_finished_record', serverFinishedRecord));
  client.verifyServerFinished(asServerFinished(decodeBody(sfBody)));

  const wire: Record<WireName, Buffer> = {
    client_preamble: need(sent.client_preamble),
    client_hello: need(sent.client_hello),
    server_preamble: need(sent.server_preamble),
    server_hello: need(sent.server_hello),
    key_exchange: need(sent.key_exchange),
    client_finished_record: need(sent.client_finished_record),
    server_finished_record: need(sent.server_finished_record),
  };
  return {
    client,
    server,
    wire,
    serverKeyInfo,
    clientKeys,
    serverKeys,
    clientKeyCopy,
    serverKeyCopy,
    clientFinishedBody,
    accepted,
  };
}

function need(b: Buffer | undefined): Buffer {
  if (b === undefined) throw new Error('message missing');
  return b;
}

export interface ResumedPairResult {
  readonly client: ClientHandshake;
  readonly server: ServerHandshake;
  readonly wire: Record<'client_preamble' | 'client_hello' | 'server_preamble' | 'server_hello' | 'client_finished_record' | 'server_finished_record', Buffer>;
  readonly serverKeyInfo: ServerKeyInfo;
  /** Copies of the keys taken before the handshake erased them. */
  readonly clientKeyCopy: SessionKeys;
  readonly serverKeyCopy: SessionKeys;
  readonly clientFinishedBody: Buffer;
  readonly accepted: ClientAccepted;
  /** The psk the client keeps for the NEW_TICKET (null if it did not ask). */
  readonly psk: Buffer | null;
  /** The NEW_TICKET record, sealed right after SERVER_FINISHED (null if none). */
  readonly newTicketRecord: Buffer | null;
}

/**
 * Runs a handshake in which the client offers a ticket (§7.5): resumed if the server takes it
 * (no KEY_EXCHANGE), else the full handshake goes on. Throws the first error either side raises.
 */
export function runResumption(options: PairOptions): ResumedPairResult | PairResult {
  const client = new ClientHandshake(options.client);
  const server = new ServerHandshake(options.server);
  const serverPreamble = server.onClientPreamble(client.preamble());
  const hello = client.clientHello();
  const serverHello = server.onClientHello(hello, asClientHello(decodeFrame(hello)));
  const resumed = server.resumedKeys();
  if (resumed === null) return runHandshake(options);
  client.onServerPreamble(serverPreamble);
  const serverKeyInfo = client.onServerHello(serverHello, asServerHello(decodeFrame(serverHello)));
  options.trust?.(serverKeyInfo);
  const clientKeys = client.finishResumed();
  const clientKeyCopy = copyKeys(clientKeys.keys);
  const serverKeyCopy = copyKeys(resumed.keys);
  const clientFinishedRecord = Buffer.concat(clientKeys.sealer.seal(clientKeys.clientFinished));
  const accepted = server.onClientFinished(asClientFinished(decodeBody(resumed.opener.open(clientFinishedRecord))));
  const serverFinishedRecord = Buffer.concat(resumed.sealer.seal(accepted.serverFinished));
  const newTicketRecord = accepted.newTicket === null ? null : Buffer.concat(resumed.sealer.seal(accepted.newTicket));
  const psk = client.verifyServerFinished(asServerFinished(decodeBody(clientKeys.opener.open(serverFinishedRecord))));
  if (newTicketRecord !== null) decodeBody(clientKeys.opener.open(newTicketRecord));
  return {
    client,
    server,
    wire: {
      client_preamble: client.preamble(),
      client_hello: hello,
      server_preamble: serverPreamble,
      server_hello: serverHello,
      client_finished_record: clientFinishedRecord,
      server_finished_record: serverFinishedRecord,
    },
    serverKeyInfo,
    clientKeyCopy,
    serverKeyCopy,
    clientFinishedBody: clientKeys.clientFinished,
    accepted,
    psk,
    newTicketRecord,
  };
}
