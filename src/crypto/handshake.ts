// The stx/1 handshake (spec/PROTOCOL.md §6, §7): both sides, pure state, no I/O.
//
// Client                                  Server
//   preamble(), clientHello()      -->      onClientPreamble() → server preamble
//                                           onClientHello()    → SERVER_HELLO
//   onServerPreamble()             <--
//   onServerHello() → fingerprint; check it (§5, checkServerKey)
//   finish() → KEY_EXCHANGE, CLIENT_FINISHED body, sealer/opener
//                                  -->      onKeyExchange()    → sealer/opener
//                                           opener.open(record) → decode → onClientFinished()
//   opener.open(record) → decode   <--      sealer.seal(serverFinished)
//   verifyServerFinished()
export {
  ClientHandshake,
  type ClientHandshakeOptions,
  type ClientKeys,
  type ServerKeyInfo,
  type ClientTicket,
} from './client-handshake.js';
export { TicketKey, ticketKeyFor, TICKET_VERSION, type TicketContents } from './ticket.js';
export { ServerHandshake, type ClientAccepted, type ServerHandshakeOptions, type ServerKeys } from './server-handshake.js';
