// Reference state machines, read from the tables of spec/PROTOCOL.md §11 with the rules of its
// prose applied here independently of src/proto/states.ts (whose tables a conformance test
// already compares with the spec's; the rules around them are what this model checks).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { ErrorCode } from '../../src/proto/index.js';
import { SPEC_DIR } from '../support/paths.js';

export type Side = 'server' | 'client';
type Rows = ReadonlyMap<string, ReadonlyMap<string, string>>;

function table(spec: string, marker: string): Rows {
  const start = spec.indexOf(`<!-- table:${marker} -->`);
  const end = spec.indexOf(`<!-- /table:${marker} -->`);
  if (start < 0 || end < start) throw new Error(`spec has no table ${marker}`);
  const rows = new Map<string, Map<string, string>>();
  const lines = spec.slice(start, end).split('\n').filter((l) => l.startsWith('|'));
  for (const line of lines.slice(2)) {
    const [state, frame, next] = line.split('|').slice(1, -1).map((c) => c.trim());
    if (state === undefined || frame === undefined || next === undefined) throw new Error(`bad row in ${marker}: ${line}`);
    let row = rows.get(state);
    if (row === undefined) rows.set(state, (row = new Map<string, string>()));
    row.set(frame, next);
  }
  return rows;
}

const SPEC_TEXT = readFileSync(path.join(SPEC_DIR, 'PROTOCOL.md'), 'utf8');
const TABLES: Record<Side, { rx: Rows; tx: Rows; initial: string }> = {
  server: { rx: table(SPEC_TEXT, 'server-receive'), tx: table(SPEC_TEXT, 'server-send'), initial: 'AwaitClientHello' },
  client: { rx: table(SPEC_TEXT, 'client-receive'), tx: table(SPEC_TEXT, 'client-send'), initial: 'AwaitServerHello' },
};

/**
 * States in which the server holds keys and sends records (§6, §8): GOAWAY is a record-only
 * frame (§4), so §11's "the server also GOAWAY in any record state" means these.
 */
const SERVER_RECORD_STATES: ReadonlySet<string> = new Set(['AwaitClientFinished', 'Ready', 'Opening', 'Receiving', 'Verifying', 'Making', 'Listing', 'Locating', 'Serving', 'Putting', 'Claiming', 'Ranging', 'Settling', 'Packing']);

/** §2's `MAX_MAKES_AHEAD`: MKDIR and SYMLINK a client may have unanswered (§9.8, §11.2). */
const MAX_MAKES_AHEAD = Number(/^\| `MAX_MAKES_AHEAD` \| (\d+) \|/m.exec(SPEC_TEXT)?.[1] ?? NaN);

/** The frames a side's tables let it receive or send in `state` (what a walk can choose from). */
export function refMoves(side: Side, state: string): { recv: string[]; send: string[] } {
  if (state === 'Closed') return { recv: [], send: [] };
  const t = TABLES[side];
  const rx = [...(t.rx.get(state)?.keys() ?? []), 'ERROR'];
  const tx = [...(t.tx.get(state)?.keys() ?? []), 'ERROR'];
  for (const f of ['PING', 'PONG']) if (t.rx.get(state)?.has(f) === true) tx.push(f);
  if (side === 'server' && SERVER_RECORD_STATES.has(state)) tx.push('GOAWAY');
  return { recv: rx, send: tx };
}

export class RefMachine {
  state: string;
  /** The client's MKDIR and SYMLINK not yet answered by MADE (§11.2: `AwaitMade` counts them). */
  private makes = 0;
  /**
   * §11, §7.5 (revision 1.13): the handshake's resumption, where a field picks the row: the client
   * asked for a ticket (SERVER_FINISHED leads it to AwaitTicket), the server took one (its
   * SERVER_HELLO leads to AwaitClientFinished).
   */
  constructor(
    readonly side: Side,
    private readonly resumption: { readonly tickets: boolean; readonly resumed: boolean } = { tickets: false, resumed: false },
  ) {
    this.state = TABLES[side].initial;
  }

  /** §11: no row is UNEXPECTED_FRAME; ERROR received in any state closes; nothing after Closed. */
  receive(frame: string): ErrorCode | null {
    if (this.state === 'Closed') return 'UNEXPECTED_FRAME';
    if (frame === 'ERROR') return this.move('Closed');
    const next = TABLES[this.side].rx.get(this.state)?.get(frame);
    if (next === undefined) return 'UNEXPECTED_FRAME';
    if (this.side === 'client' && this.resumption.tickets && frame === 'SERVER_FINISHED') return this.move('AwaitTicket');
    // §11.2: MADE leads to Ready only when it answers the last MKDIR or SYMLINK unanswered.
    if (this.side === 'client' && this.state === 'AwaitMade' && frame === 'MADE') {
      this.makes--;
      return this.makes > 0 ? null : this.move(next);
    }
    return this.move(next);
  }

  /**
   * §11: a send needs a row, except ERROR (any state) and, for the server, GOAWAY in a record
   * state, which close; PING and PONG wherever a row lists them, without a change of state.
   */
  send(frame: string): ErrorCode | null {
    if (this.state === 'Closed') return 'UNEXPECTED_FRAME';
    if (frame === 'ERROR') return this.move('Closed');
    if (frame === 'GOAWAY' && this.side === 'server' && SERVER_RECORD_STATES.has(this.state)) return this.move('Closed');
    if ((frame === 'PING' || frame === 'PONG') && TABLES[this.side].rx.get(this.state)?.has(frame) === true) return null;
    const next = TABLES[this.side].tx.get(this.state)?.get(frame);
    if (next === undefined) return 'UNEXPECTED_FRAME';
    if (this.side === 'server' && this.resumption.resumed && frame === 'SERVER_HELLO') return this.move('AwaitClientFinished');
    // §11.2: at most MAX_MAKES_AHEAD MKDIR and SYMLINK unanswered.
    if (this.side === 'client' && next === 'AwaitMade') {
      if (this.makes >= MAX_MAKES_AHEAD) return 'UNEXPECTED_FRAME';
      this.makes++;
    }
    return this.move(next);
  }

  private move(next: string): null {
    if (next !== 'AwaitMade') this.makes = 0;
    this.state = next;
    return null;
  }
}
