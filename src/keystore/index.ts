// Key files, client identities and known hosts on disk (spec §5, §7.4): the one layer that reads
// and writes them, so src/crypto stays free of files. recv and send import it; it imports crypto.
export {
  generateIdentity,
  generateServerKey,
  loadIdentity,
  loadOrCreateServerKey,
  loadServerKey,
  saveIdentity,
  stxHome,
  createPrivateFile,
} from './keys.js';
export { checkServerKey, hostPortKey, isKnownHost, knownFingerprints, recordServerKey } from './known-hosts.js';
export { MAX_TICKETS_PER_SERVER, TicketStore, type StoredTicket } from './tickets.js';
