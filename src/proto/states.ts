// Both sides' state machines (spec/PROTOCOL.md §11) as data, and the one check that applies
// them. test/spec-tables.test.ts proves these tables equal the spec's.
import { ProtocolError } from './errors.js';
import type { FrameName } from './frames.js';
import { MAX_MAKES_AHEAD } from './limits.js';

export type ServerState =
  | 'AwaitClientHello'
  | 'AwaitKeyExchange'
  | 'AwaitClientFinished'
  | 'Confirming'
  | 'Ready'
  | 'Opening'
  | 'Receiving'
  | 'Verifying'
  | 'Making'
  | 'Listing'
  | 'Locating'
  | 'Serving'
  | 'Putting'
  | 'Claiming'
  | 'Ranging'
  | 'Settling'
  | 'Packing'
  | 'Closed';

export type ClientState =
  | 'AwaitServerHello'
  | 'AwaitServerFinished'
  | 'AwaitTicket'
  | 'Ready'
  | 'AwaitOpenOk'
  | 'Sending'
  | 'AwaitDone'
  | 'AwaitMade'
  | 'Listing'
  | 'AwaitGetOk'
  | 'Fetching'
  | 'Putting'
  | 'AwaitRangeOk'
  | 'SendingRange'
  | 'AwaitRangeDone'
  | 'AwaitRangeDoneThenOk'
  | 'Packing'
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
  ['Ready', 'MKDIR', 'Making'],
  ['Ready', 'SYMLINK', 'Making'],
  ['Ready', 'LIST', 'Listing'],
  ['Ready', 'GET', 'Locating'],
  ['Listing', 'PING', 'Listing'],
  ['Listing', 'PONG', 'Listing'],
  ['Locating', 'PING', 'Locating'],
  ['Locating', 'PONG', 'Locating'],
  ['Serving', 'PING', 'Serving'],
  ['Serving', 'PONG', 'Serving'],
  ['Ready', 'PUT', 'Putting'],
  ['Putting', 'DATA', 'Putting'],
  ['Putting', 'END', 'Ready'],
  ['Putting', 'PING', 'Putting'],
  ['Putting', 'PONG', 'Putting'],
  ['Ready', 'RANGE', 'Claiming'],
  ['Ranging', 'DATA', 'Ranging'],
  ['Ranging', 'RANGE_END', 'Settling'],
  ['Ranging', 'PING', 'Ranging'],
  ['Ranging', 'PONG', 'Ranging'],
  ['Ready', 'PUT_INLINE', 'Ready'],
  ['Receiving', 'END_DETACHED', 'Ready'],
  // PUT_PACK (§9.11 step 8): the DATA that completes the pack's bytes leads back to Ready.
  ['Ready', 'PUT_PACK', 'Packing'],
  ['Packing', 'DATA', 'Packing'],
  ['Packing', 'PING', 'Packing'],
  ['Packing', 'PONG', 'Packing'],
];

/** Frames the server may send, per state (§11.1); ERROR is allowed everywhere, GOAWAY in SERVER_GOAWAY_STATES. */
export const SERVER_SEND: readonly Transition<ServerState>[] = [
  ['AwaitKeyExchange', 'SERVER_HELLO', 'AwaitKeyExchange'],
  ['Confirming', 'SERVER_FINISHED', 'Ready'],
  // Right after SERVER_FINISHED, to a client that asked (§7.5, revision 1.13); never later.
  ['Ready', 'NEW_TICKET', 'Ready'],
  ['Opening', 'PROGRESS', 'Opening'],
  ['Opening', 'OPEN_OK', 'Receiving'],
  ['Opening', 'DONE', 'Ready'],
  ['Receiving', 'ACK', 'Receiving'],
  ['Verifying', 'ACK', 'Verifying'],
  ['Verifying', 'PROGRESS', 'Verifying'],
  ['Verifying', 'DONE', 'Ready'],
  ['Making', 'MADE', 'Ready'],
  ['Listing', 'LIST_ENTRY', 'Listing'],
  ['Listing', 'LIST_DIR', 'Listing'],
  ['Listing', 'LIST_END', 'Ready'],
  ['Locating', 'GET_OK', 'Serving'],
  ['Serving', 'DATA', 'Serving'],
  ['Serving', 'GET_END', 'Ready'],
  ['Ready', 'PUT_DONE', 'Ready'],
  ['Opening', 'PUT_DONE', 'Opening'],
  ['Receiving', 'PUT_DONE', 'Receiving'],
  ['Verifying', 'PUT_DONE', 'Verifying'],
  ['Making', 'PUT_DONE', 'Making'],
  ['Listing', 'PUT_DONE', 'Listing'],
  ['Locating', 'PUT_DONE', 'Locating'],
  ['Serving', 'PUT_DONE', 'Serving'],
  ['Putting', 'PUT_DONE', 'Putting'],
  ['Ready', 'PUT_FAILED', 'Ready'],
  ['Opening', 'PUT_FAILED', 'Opening'],
  ['Receiving', 'PUT_FAILED', 'Receiving'],
  ['Verifying', 'PUT_FAILED', 'Verifying'],
  ['Making', 'PUT_FAILED', 'Making'],
  ['Listing', 'PUT_FAILED', 'Listing'],
  ['Locating', 'PUT_FAILED', 'Locating'],
  ['Serving', 'PUT_FAILED', 'Serving'],
  ['Putting', 'PUT_FAILED', 'Putting'],
  ['Claiming', 'RANGE_OK', 'Ranging'],
  ['Ranging', 'ACK', 'Ranging'],
  ['Settling', 'ACK', 'Settling'],
  ['Settling', 'RANGE_DONE', 'Ready'],
  ['Claiming', 'PUT_DONE', 'Claiming'],
  ['Ranging', 'PUT_DONE', 'Ranging'],
  ['Settling', 'PUT_DONE', 'Settling'],
  ['Claiming', 'PUT_FAILED', 'Claiming'],
  ['Ranging', 'PUT_FAILED', 'Ranging'],
  ['Settling', 'PUT_FAILED', 'Settling'],
  ['Ready', 'PUTS_DONE', 'Ready'],
  ['Opening', 'PUTS_DONE', 'Opening'],
  ['Receiving', 'PUTS_DONE', 'Receiving'],
  ['Verifying', 'PUTS_DONE', 'Verifying'],
  ['Making', 'PUTS_DONE', 'Making'],
  ['Listing', 'PUTS_DONE', 'Listing'],
  ['Locating', 'PUTS_DONE', 'Locating'],
  ['Serving', 'PUTS_DONE', 'Serving'],
  ['Putting', 'PUTS_DONE', 'Putting'],
  ['Claiming', 'PUTS_DONE', 'Claiming'],
  ['Ranging', 'PUTS_DONE', 'Ranging'],
  ['Settling', 'PUTS_DONE', 'Settling'],
  ['Packing', 'PUT_DONE', 'Packing'],
  ['Packing', 'PUT_FAILED', 'Packing'],
  ['Packing', 'PUTS_DONE', 'Packing'],
];

/** Frames the client may receive, per state (§11.2). */
export const CLIENT_RECEIVE: readonly Transition<ClientState>[] = [
  ['AwaitServerHello', 'SERVER_HELLO', 'AwaitServerFinished'],
  ['AwaitServerFinished', 'SERVER_FINISHED', 'Ready'],
  ['AwaitServerFinished', 'GOAWAY', 'Closed'],
  // A client that asked for a ticket (§7.5, revision 1.13) is here after SERVER_FINISHED (resumedAfter()).
  ['AwaitTicket', 'NEW_TICKET', 'Ready'],
  ['AwaitTicket', 'GOAWAY', 'Closed'],
  ['Ready', 'PING', 'Ready'],
  ['Ready', 'PONG', 'Ready'],
  ['Ready', 'GOAWAY', 'Closed'],
  ['AwaitOpenOk', 'PROGRESS', 'AwaitOpenOk'],
  ['AwaitOpenOk', 'OPEN_OK', 'Sending'],
  ['AwaitOpenOk', 'DONE', 'Ready'],
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
  ['AwaitMade', 'MADE', 'Ready'],
  ['AwaitMade', 'PING', 'AwaitMade'],
  ['AwaitMade', 'PONG', 'AwaitMade'],
  ['AwaitMade', 'GOAWAY', 'Closed'],
  ['Listing', 'LIST_ENTRY', 'Listing'],
  ['Listing', 'LIST_DIR', 'Listing'],
  ['Listing', 'LIST_END', 'Ready'],
  ['Listing', 'PING', 'Listing'],
  ['Listing', 'PONG', 'Listing'],
  ['Listing', 'GOAWAY', 'Closed'],
  ['AwaitGetOk', 'GET_OK', 'Fetching'],
  ['AwaitGetOk', 'PING', 'AwaitGetOk'],
  ['AwaitGetOk', 'PONG', 'AwaitGetOk'],
  ['AwaitGetOk', 'GOAWAY', 'Closed'],
  ['Fetching', 'DATA', 'Fetching'],
  ['Fetching', 'GET_END', 'Ready'],
  ['Fetching', 'PING', 'Fetching'],
  ['Fetching', 'PONG', 'Fetching'],
  ['Fetching', 'GOAWAY', 'Closed'],
  ['Putting', 'PING', 'Putting'],
  ['Putting', 'PONG', 'Putting'],
  ['Putting', 'GOAWAY', 'Closed'],
  ['Ready', 'PUT_DONE', 'Ready'],
  ['AwaitOpenOk', 'PUT_DONE', 'AwaitOpenOk'],
  ['Sending', 'PUT_DONE', 'Sending'],
  ['AwaitDone', 'PUT_DONE', 'AwaitDone'],
  ['AwaitMade', 'PUT_DONE', 'AwaitMade'],
  ['Listing', 'PUT_DONE', 'Listing'],
  ['AwaitGetOk', 'PUT_DONE', 'AwaitGetOk'],
  ['Fetching', 'PUT_DONE', 'Fetching'],
  ['Putting', 'PUT_DONE', 'Putting'],
  ['Ready', 'PUT_FAILED', 'Ready'],
  ['AwaitOpenOk', 'PUT_FAILED', 'AwaitOpenOk'],
  ['Sending', 'PUT_FAILED', 'Sending'],
  ['AwaitDone', 'PUT_FAILED', 'AwaitDone'],
  ['AwaitMade', 'PUT_FAILED', 'AwaitMade'],
  ['Listing', 'PUT_FAILED', 'Listing'],
  ['AwaitGetOk', 'PUT_FAILED', 'AwaitGetOk'],
  ['Fetching', 'PUT_FAILED', 'Fetching'],
  ['Putting', 'PUT_FAILED', 'Putting'],
  ['AwaitRangeOk', 'RANGE_OK', 'SendingRange'],
  ['AwaitRangeOk', 'PING', 'AwaitRangeOk'],
  ['AwaitRangeOk', 'PONG', 'AwaitRangeOk'],
  ['AwaitRangeOk', 'GOAWAY', 'Closed'],
  ['SendingRange', 'ACK', 'SendingRange'],
  ['SendingRange', 'PING', 'SendingRange'],
  ['SendingRange', 'PONG', 'SendingRange'],
  ['SendingRange', 'GOAWAY', 'Closed'],
  ['AwaitRangeDone', 'ACK', 'AwaitRangeDone'],
  ['AwaitRangeDone', 'RANGE_DONE', 'Ready'],
  ['AwaitRangeDone', 'PING', 'AwaitRangeDone'],
  ['AwaitRangeDone', 'PONG', 'AwaitRangeDone'],
  ['AwaitRangeDone', 'GOAWAY', 'Closed'],
  ['AwaitRangeOk', 'PUT_DONE', 'AwaitRangeOk'],
  ['SendingRange', 'PUT_DONE', 'SendingRange'],
  ['AwaitRangeDone', 'PUT_DONE', 'AwaitRangeDone'],
  ['AwaitRangeOk', 'PUT_FAILED', 'AwaitRangeOk'],
  ['SendingRange', 'PUT_FAILED', 'SendingRange'],
  ['AwaitRangeDone', 'PUT_FAILED', 'AwaitRangeDone'],
  ['Ready', 'PUTS_DONE', 'Ready'],
  ['AwaitOpenOk', 'PUTS_DONE', 'AwaitOpenOk'],
  ['Sending', 'PUTS_DONE', 'Sending'],
  ['AwaitDone', 'PUTS_DONE', 'AwaitDone'],
  ['AwaitMade', 'PUTS_DONE', 'AwaitMade'],
  ['Listing', 'PUTS_DONE', 'Listing'],
  ['AwaitGetOk', 'PUTS_DONE', 'AwaitGetOk'],
  ['Fetching', 'PUTS_DONE', 'Fetching'],
  ['Putting', 'PUTS_DONE', 'Putting'],
  ['AwaitRangeOk', 'PUTS_DONE', 'AwaitRangeOk'],
  ['SendingRange', 'PUTS_DONE', 'SendingRange'],
  ['AwaitRangeDone', 'PUTS_DONE', 'AwaitRangeDone'],
  // ACKs of a detached upload sent before the server read its END_DETACHED (§9.1 "Detached END").
  ['Ready', 'ACK', 'Ready'],
  ['AwaitOpenOk', 'ACK', 'AwaitOpenOk'],
  ['AwaitMade', 'ACK', 'AwaitMade'],
  ['Listing', 'ACK', 'Listing'],
  ['AwaitGetOk', 'ACK', 'AwaitGetOk'],
  ['Putting', 'ACK', 'Putting'],
  ['AwaitRangeOk', 'ACK', 'AwaitRangeOk'],
  ['Packing', 'PING', 'Packing'],
  ['Packing', 'PONG', 'Packing'],
  ['Packing', 'GOAWAY', 'Closed'],
  ['Packing', 'PUT_DONE', 'Packing'],
  ['Packing', 'PUT_FAILED', 'Packing'],
  ['Packing', 'PUTS_DONE', 'Packing'],
  ['Packing', 'ACK', 'Packing'],
  // The next RANGE sent right after RANGE_END (§9.13 step 2, revision 1.10): the last range's answers, then the next's.
  ['AwaitRangeDoneThenOk', 'ACK', 'AwaitRangeDoneThenOk'],
  ['AwaitRangeDoneThenOk', 'RANGE_DONE', 'AwaitRangeOk'],
  ['AwaitRangeDoneThenOk', 'PING', 'AwaitRangeDoneThenOk'],
  ['AwaitRangeDoneThenOk', 'PONG', 'AwaitRangeDoneThenOk'],
  ['AwaitRangeDoneThenOk', 'GOAWAY', 'Closed'],
  ['AwaitRangeDoneThenOk', 'PUT_DONE', 'AwaitRangeDoneThenOk'],
  ['AwaitRangeDoneThenOk', 'PUT_FAILED', 'AwaitRangeDoneThenOk'],
  ['AwaitRangeDoneThenOk', 'PUTS_DONE', 'AwaitRangeDoneThenOk'],
];

/** Frames the client may send, per state (§11.2); ERROR is allowed everywhere, PING and PONG where it may receive PING. */
export const CLIENT_SEND: readonly Transition<ClientState>[] = [
  ['AwaitServerHello', 'CLIENT_HELLO', 'AwaitServerHello'],
  ['AwaitServerFinished', 'KEY_EXCHANGE', 'AwaitServerFinished'],
  ['AwaitServerFinished', 'CLIENT_FINISHED', 'AwaitServerFinished'],
  ['Ready', 'OPEN', 'AwaitOpenOk'],
  ['Sending', 'DATA', 'Sending'],
  ['Sending', 'END', 'AwaitDone'],
  ['Ready', 'MKDIR', 'AwaitMade'],
  ['Ready', 'SYMLINK', 'AwaitMade'],
  ['Ready', 'LIST', 'Listing'],
  ['Ready', 'GET', 'AwaitGetOk'],
  ['Ready', 'PUT', 'Putting'],
  ['Putting', 'DATA', 'Putting'],
  ['Putting', 'END', 'Ready'],
  ['Ready', 'RANGE', 'AwaitRangeOk'],
  ['SendingRange', 'DATA', 'SendingRange'],
  ['SendingRange', 'RANGE_END', 'AwaitRangeDone'],
  ['Ready', 'PUT_INLINE', 'Ready'],
  ['Sending', 'END_DETACHED', 'Ready'],
  ['Ready', 'PUT_PACK', 'Packing'],
  ['Packing', 'DATA', 'Packing'],
  ['AwaitRangeDone', 'RANGE', 'AwaitRangeDoneThenOk'],
  // Pipelined (§9.8, revision 1.11): AwaitMade counts what is outstanding, madeAfter().
  ['AwaitMade', 'MKDIR', 'AwaitMade'],
  ['AwaitMade', 'SYMLINK', 'AwaitMade'],
  // DATA right behind RANGE, before RANGE_OK (§9.13 step 2, revision 1.12), from the range's start.
  ['AwaitRangeOk', 'DATA', 'AwaitRangeOk'],
  ['AwaitRangeDoneThenOk', 'DATA', 'AwaitRangeDoneThenOk'],
];

/**
 * The client's AwaitMade counts the MKDIR and SYMLINK sent and not yet answered (§11.2, revision
 * 1.11): one more is allowed while fewer than MAX_MAKES_AHEAD are; MADE answers the oldest, and
 * leads to Ready (its row) only when it answers the last one, else the state stays AwaitMade.
 * Given the count before `frame` and the state the tables name after it (`next`), returns the
 * count and the state after it; throws UNEXPECTED_FRAME for one MKDIR or SYMLINK too many.
 */
export function madeAfter(outstanding: number, frame: FrameName, verb: 'received' | 'sent', next: ClientState): { readonly outstanding: number; readonly next: ClientState } {
  if (verb === 'sent' && (frame === 'MKDIR' || frame === 'SYMLINK') && next === 'AwaitMade') {
    if (outstanding >= MAX_MAKES_AHEAD) throw new ProtocolError('UNEXPECTED_FRAME', `${frame} sent in state AwaitMade with ${outstanding} (MAX_MAKES_AHEAD) unanswered`);
    return { outstanding: outstanding + 1, next };
  }
  if (verb === 'received' && frame === 'MADE' && outstanding > 1) return { outstanding: outstanding - 1, next: 'AwaitMade' };
  return { outstanding: next === 'AwaitMade' ? outstanding : 0, next };
}

/** What a handshake agreed on that picks between two rows (§7.5, §11, revision 1.13). */
export interface Resumption {
  /** The client asked for a ticket (CLIENT_HELLO `tickets`). */
  readonly tickets: boolean;
  /** The server accepted the client's ticket (SERVER_HELLO `resumed`). */
  readonly resumed: boolean;
}

/** A handshake of revision 1.12: no ticket asked for, none accepted. */
export const NO_RESUMPTION: Resumption = { tickets: false, resumed: false };

/**
 * Resumption (§7.5, §11, revision 1.13), where a field, not the frame's type, picks the row: a
 * SERVER_HELLO with `resumed` leads the server to AwaitClientFinished, as no KEY_EXCHANGE follows
 * it; SERVER_FINISHED leads a client that asked for a ticket to AwaitTicket, where NEW_TICKET is the
 * one frame it takes. Given the state the tables name after `frame` (`next`), returns the state after it.
 */
export function resumedAfter<S extends string>(r: Resumption, state: S, frame: FrameName, verb: 'received' | 'sent', next: S): S {
  if (r.resumed && frame === 'SERVER_HELLO' && verb === 'sent' && state === 'AwaitKeyExchange') return 'AwaitClientFinished' as S;
  if (r.tickets && frame === 'SERVER_FINISHED' && verb === 'received' && state === 'AwaitServerFinished') return 'AwaitTicket' as S;
  return next;
}

/**
 * Where the server may send GOAWAY (§11: "in any record state"): GOAWAY is a record (§4), and
 * the server seals records once KEY_EXCHANGE gave it keys (§6). The client never sends it.
 */
const SERVER_GOAWAY_STATES: ReadonlySet<ServerState> = new Set<ServerState>([
  'AwaitClientFinished',
  'Ready',
  'Opening',
  'Receiving',
  'Verifying',
  'Making',
  'Listing',
  'Locating',
  'Serving',
  'Putting',
  'Claiming',
  'Ranging',
  'Settling',
  'Packing',
]);

export type Table<S extends string> = ReadonlyMap<S, ReadonlyMap<FrameName, S>>;

function index<S extends string>(rows: readonly Transition<S>[]): Table<S> {
  const table = new Map<S, Map<FrameName, S>>();
  for (const [state, frame, next] of rows) {
    let row = table.get(state);
    if (row === undefined) table.set(state, (row = new Map<FrameName, S>()));
    row.set(frame, next);
  }
  return table;
}

/** One side's rules: both tables, the closed state and where GOAWAY may be sent. */
export interface Rules<S extends string> {
  readonly receive: Table<S>;
  readonly send: Table<S>;
  readonly closed: S;
  readonly goAwayStates: ReadonlySet<S>;
}

function rules<S extends string>(receiveRows: readonly Transition<S>[], sendRows: readonly Transition<S>[], closed: S, goAwayStates: ReadonlySet<S> = new Set<S>()): Rules<S> {
  return { receive: index(receiveRows), send: index(sendRows), closed, goAwayStates };
}

export const SERVER_RULES: Rules<ServerState> = rules(SERVER_RECEIVE, SERVER_SEND, 'Closed', SERVER_GOAWAY_STATES);
export const CLIENT_RULES: Rules<ClientState> = rules(CLIENT_RECEIVE, CLIENT_SEND, 'Closed');

/**
 * The state after `frame` is `verb` ('received' or 'sent') in `state`, by the tables; throws
 * UNEXPECTED_FRAME naming the state and the frame where the tables allow none. Pure: a driver
 * keeps one state (its own union, tagged with these names) and asks this for the next name.
 * ERROR, sent or received, closes from any state; so does GOAWAY sent where the side may send
 * it (§11); PING and PONG may be sent wherever PING may be received.
 */
export function nextState<S extends string>(r: Rules<S>, state: S, frame: FrameName, verb: 'received' | 'sent'): S {
  if (state !== r.closed && (frame === 'ERROR' || (frame === 'GOAWAY' && verb === 'sent' && r.goAwayStates.has(state)))) {
    return r.closed;
  }
  if (verb === 'sent' && (frame === 'PING' || frame === 'PONG') && r.receive.get(state)?.has('PING') === true) return state;
  const next = (verb === 'received' ? r.receive : r.send).get(state)?.get(frame);
  if (next === undefined) throw new ProtocolError('UNEXPECTED_FRAME', `${frame} ${verb} in state ${state}`);
  return next;
}

/** nextState() with the state kept here: for tests, fuzzing and the vectors' replay. */
export class Machine<S extends string> {
  constructor(
    private readonly rules: Rules<S>,
    private current: S,
    protected readonly resumption: Resumption = NO_RESUMPTION,
  ) {}

  get state(): S {
    return this.current;
  }

  receive(frame: FrameName): S {
    return (this.current = resumedAfter(this.resumption, this.current, frame, 'received', nextState(this.rules, this.current, frame, 'received')));
  }

  send(frame: FrameName): S {
    return (this.current = resumedAfter(this.resumption, this.current, frame, 'sent', nextState(this.rules, this.current, frame, 'sent')));
  }

  close(): void {
    this.current = this.rules.closed;
  }

  protected moveTo(state: S): void {
    this.current = state;
  }
}

/** The server's Machine; `resumption` as its handshake has it (a vector's `tickets` and `resumed`). */
export function serverMachine(resumption: Resumption = NO_RESUMPTION): Machine<ServerState> {
  return new Machine(SERVER_RULES, 'AwaitClientHello', resumption);
}

/** The client's Machine: the tables, and AwaitMade's count (madeAfter()). */
class ClientMachine extends Machine<ClientState> {
  private outstanding = 0;

  override receive(frame: FrameName): ClientState {
    return this.counted(frame, 'received');
  }

  override send(frame: FrameName): ClientState {
    return this.counted(frame, 'sent');
  }

  private counted(frame: FrameName, verb: 'received' | 'sent'): ClientState {
    const next = resumedAfter(this.resumption, this.state, frame, verb, nextState(CLIENT_RULES, this.state, frame, verb));
    const after = madeAfter(this.outstanding, frame, verb, next);
    this.outstanding = after.outstanding;
    this.moveTo(after.next);
    return after.next;
  }
}

export function clientMachine(resumption: Resumption = NO_RESUMPTION): Machine<ClientState> {
  return new ClientMachine(CLIENT_RULES, 'AwaitServerHello', resumption);
}
