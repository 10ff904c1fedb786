// Both sides' state machines (spec/PROTOCOL.md §11) as data, and the one check that applies
// them. test/spec-tables.test.ts proves these tables equal the spec's.
import { ProtocolError } from './errors.js';
import type { FrameName } from './frames.js';

export type ServerState =
  | 'AwaitClientHello'
  | 'AwaitKeyExchange'
  | 'AwaitClientFinished'
  | 'Confirming'
  | 'Ready'
  | 'Opening'
  | 'Receiving'
  | 'Verifying'
  | 'Closed';

export type ClientState =
  | 'AwaitServerHello'
  | 'AwaitServerFinished'
  | 'Ready'
  | 'AwaitOpenOk'
  | 'Sending'
  | 'AwaitDone'
  | 'Closed';

export type Transition<S extends string> = readonly [state: S, frame: FrameName, next: S];

/** Frames the server may receive, per state (§11.1). */
export const SERVER_RECEIVE: readonly Transition<ServerState>[] = [
  ['AwaitClientHello', 'CLIENT_HELLO', 'AwaitKeyExchange'],
  ['AwaitKeyExchange', 'KEY_EXCHANGE', 'AwaitClientFinished'],
  ['AwaitClientFinished', 'CLIENT_FINISHED', 'Confirming'],
  ['Ready', 'OPEN', 'Opening'],
  ['Ready', 'PING', 'Ready'],
  ['Ready', 'PONG', 'Ready'],
  ['Opening', 'PING', 'Opening'],
  ['Opening', 'PONG', 'Opening'],
  ['Receiving', 'DATA', 'Receiving'],
  ['Receiving', 'END', 'Verifying'],
  ['Receiving', 'PING', 'Receiving'],
  ['Receiving', 'PONG', 'Receiving'],
  ['Verifying', 'PING', 'Verifying'],
  ['Verifying', 'PONG', 'Verifying'],
];

/** Frames the server may send, per state (§11.1); ERROR is allowed everywhere, GOAWAY in SERVER_GOAWAY_STATES. */
export const SERVER_SEND: readonly Transition<ServerState>[] = [
  ['AwaitKeyExchange', 'SERVER_HELLO', 'AwaitKeyExchange'],
  ['Confirming', 'SERVER_FINISHED', 'Ready'],
  ['Opening', 'PROGRESS', 'Opening'],
  ['Opening', 'OPEN_OK', 'Receiving'],
  ['Receiving', 'ACK', 'Receiving'],
  ['Verifying', 'ACK', 'Verifying'],
  ['Verifying', 'PROGRESS', 'Verifying'],
  ['Verifying', 'DONE', 'Ready'],
];

/** Frames the client may receive, per state (§11.2). */
export const CLIENT_RECEIVE: readonly Transition<ClientState>[] = [
  ['AwaitServerHello', 'SERVER_HELLO', 'AwaitServerFinished'],
  ['AwaitServerFinished', 'SERVER_FINISHED', 'Ready'],
  ['AwaitServerFinished', 'GOAWAY', 'Closed'],
  ['Ready', 'PING', 'Ready'],
  ['Ready', 'PONG', 'Ready'],
  ['Ready', 'GOAWAY', 'Closed'],
  ['AwaitOpenOk', 'PROGRESS', 'AwaitOpenOk'],
  ['AwaitOpenOk', 'OPEN_OK', 'Sending'],
  ['AwaitOpenOk', 'PING', 'AwaitOpenOk'],
  ['AwaitOpenOk', 'PONG', 'AwaitOpenOk'],
  ['AwaitOpenOk', 'GOAWAY', 'Closed'],
  ['Sending', 'ACK', 'Sending'],
  ['Sending', 'PING', 'Sending'],
  ['Sending', 'PONG', 'Sending'],
  ['Sending', 'GOAWAY', 'Closed'],
  ['AwaitDone', 'ACK', 'AwaitDone'],
  ['AwaitDone', 'PROGRESS', 'AwaitDone'],
  ['AwaitDone', 'DONE', 'Ready'],
  ['AwaitDone', 'PING', 'AwaitDone'],
  ['AwaitDone', 'PONG', 'AwaitDone'],
  ['AwaitDone', 'GOAWAY', 'Closed'],
];

/** Frames the client may send, per state (§11.2); ERROR is allowed everywhere, PING and PONG where it may receive PING. */
export const CLIENT_SEND: readonly Transition<ClientState>[] = [
  ['AwaitServerHello', 'CLIENT_HELLO', 'AwaitServerHello'],
  ['AwaitServerFinished', 'KEY_EXCHANGE', 'AwaitServerFinished'],
  ['AwaitServerFinished', 'CLIENT_FINISHED', 'AwaitServerFinished'],
  ['Ready', 'OPEN', 'AwaitOpenOk'],
  ['Sending', 'DATA', 'Sending'],
  ['Sending', 'END', 'AwaitDone'],
];

/**
 * Where the server may send GOAWAY (§11: "in any record state"): GOAWAY is a record (§4), and
 * the server seals records once KEY_EXCHANGE gave it keys (§6). The client never sends it.
 */
export const SERVER_GOAWAY_STATES: ReadonlySet<ServerState> = new Set<ServerState>([
  'AwaitClientFinished',
  'Ready',
  'Opening',
  'Receiving',
  'Verifying',
]);

type Table<S extends string> = ReadonlyMap<S, ReadonlyMap<FrameName, S>>;

function index<S extends string>(rows: readonly Transition<S>[]): Table<S> {
  const table = new Map<S, Map<FrameName, S>>();
  for (const [state, frame, next] of rows) {
    let row = table.get(state);
    if (row === undefined) table.set(state, (row = new Map<FrameName, S>()));
    row.set(frame, next);
  }
  return table;
}

/**
 * One side's machine: `receive` and `send` move it by the tables or throw UNEXPECTED_FRAME
 * naming the state and the frame. The shell keeps the data each state needs.
 */
export class Machine<S extends string> {
  private readonly rx: Table<S>;
  private readonly tx: Table<S>;
  constructor(
    private current: S,
    receiveRows: readonly Transition<S>[],
    sendRows: readonly Transition<S>[],
    private readonly closed: S,
    private readonly goAwayStates: ReadonlySet<S> = new Set<S>(),
  ) {
    this.rx = index(receiveRows);
    this.tx = index(sendRows);
  }

  get state(): S {
    return this.current;
  }

  receive(frame: FrameName): S {
    return this.step(this.rx, frame, 'received');
  }

  send(frame: FrameName): S {
    return this.step(this.tx, frame, 'sent');
  }

  close(): void {
    this.current = this.closed;
  }

  /** ERROR, sent or received, closes from any state; so does GOAWAY sent where this side may send it (§11). */
  private closes(frame: FrameName, verb: string): boolean {
    if (this.current === this.closed) return false;
    return frame === 'ERROR' || (frame === 'GOAWAY' && verb === 'sent' && this.goAwayStates.has(this.current));
  }

  private step(table: Table<S>, frame: FrameName, verb: string): S {
    if (this.closes(frame, verb)) {
      this.current = this.closed;
      return this.current;
    }
    if (verb === 'sent' && (frame === 'PING' || frame === 'PONG') && this.rx.get(this.current)?.has('PING') === true) {
      return this.current;
    }
    const next = table.get(this.current)?.get(frame);
    if (next === undefined) {
      throw new ProtocolError('UNEXPECTED_FRAME', `${frame} ${verb} in state ${this.current}`);
    }
    this.current = next;
    return next;
  }
}

export function serverMachine(): Machine<ServerState> {
  return new Machine<ServerState>('AwaitClientHello', SERVER_RECEIVE, SERVER_SEND, 'Closed', SERVER_GOAWAY_STATES);
}

export function clientMachine(): Machine<ClientState> {
  return new Machine<ClientState>('AwaitServerHello', CLIENT_RECEIVE, CLIENT_SEND, 'Closed');
}
