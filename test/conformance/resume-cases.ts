// Conformance cases of §7.5 (revision 1.13): a client that asks gets NEW_TICKET as the first record
// after SERVER_FINISHED; the ticket resumes on another connection (SERVER_HELLO `resumed`, no
// KEY_EXCHANGE); a ticket the server cannot open is declined (a full handshake, no error); a
// resumed CLIENT_FINISHED that does not verify is HANDSHAKE_FAILED.
import { randomBytes } from 'node:crypto';
import type { ClientTicket } from '../../src/crypto/client-handshake.js';
import { encodeBody } from '../../src/proto/codec.js';
import { MAX_TICKET_LIFETIME_S } from '../../src/proto/limits.js';
import { HandshakeRefused } from '../hostile/raw-client.js';
import { describeOutcome, ending, nextEvent, partial, pinning, RawClient, type RunContext } from './client.js';
import type { ConformanceCase } from './cases.js';

/** A ticket from a full handshake on a connection of its own. */
async function fetchTicket(ctx: RunContext): Promise<ClientTicket | string> {
  const first = await RawClient.connect(ctx.port, ctx.host, ctx.waitMs);
  try {
    const s = await first.handshake(pinning(ctx, { client: { askTicket: true } }), ctx.waitMs);
    return s?.ticket ?? 'no NEW_TICKET';
  } catch (err) {
    if (err instanceof HandshakeRefused) return describeOutcome(err.outcome);
    throw err;
  } finally {
    first.destroy();
  }
}

export function resumeCases(): ConformanceCase[] {
  return [
    {
      section: '§7.5',
      name: 'a client that asks gets NEW_TICKET (lifetime at most 7 days) as the first record after SERVER_FINISHED',
      expect: ['NEW_TICKET'],
      run: async (c, ctx) => {
        const s = await c.handshake(pinning(ctx, { client: { askTicket: true } }), ctx.waitMs);
        if (s?.ticket === null || s?.ticketLifetime === null || s === null) return 'no NEW_TICKET';
        return s.ticketLifetime <= MAX_TICKET_LIFETIME_S ? 'NEW_TICKET' : `NEW_TICKET lifetime ${s.ticketLifetime}`;
      },
    },
    {
      section: '§7.5',
      name: 'the ticket resumes on another connection: SERVER_HELLO resumed, no KEY_EXCHANGE, SERVER_FINISHED verifies',
      expect: ['resumed PONG seq=3'],
      run: async (c, ctx) => {
        const ticket = await fetchTicket(ctx);
        if (typeof ticket === 'string') return ticket;
        const s = await c.handshake(pinning(ctx, { client: { ticket } }), ctx.waitMs);
        await c.send({ type: 'PING', seq: 3 });
        return `${s?.resumed === true ? 'resumed' : 'full'} ${await nextEvent(c, ctx)}`;
      },
    },
    {
      section: '§7.5',
      name: 'a ticket the server cannot open is declined: the full handshake goes on, no error',
      expect: ['full PONG seq=4'],
      run: async (c, ctx) => {
        const ticket = await fetchTicket(ctx);
        if (typeof ticket === 'string') return ticket;
        const s = await c.handshake(pinning(ctx, { client: { ticket: { ...ticket, ticket: randomBytes(ticket.ticket.length) } } }), ctx.waitMs);
        await c.send({ type: 'PING', seq: 4 });
        return `${s?.resumed === true ? 'resumed' : 'full'} ${await nextEvent(c, ctx)}`;
      },
    },
    {
      section: '§7.5',
      name: 'a resumed CLIENT_FINISHED with a wrong verify',
      expect: ['ERROR HANDSHAKE_FAILED'],
      run: async (c, ctx) => {
        const ticket = await fetchTicket(ctx);
        if (typeof ticket === 'string') return ticket;
        await partial(c, ctx, 'client_finished', { client: { ticket }, clientFinishedBody: () => encodeBody({ type: 'CLIENT_FINISHED', verify: Buffer.alloc(32, 7) }) });
        return ending(c, ctx);
      },
    },
  ];
}
