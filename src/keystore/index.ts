// Key files, client identities and known hosts on disk (spec §5, §7.4): the one layer that reads
// and writes them, so src/crypto stays free of files. recv and send import it; it imports crypto.
export {
  generateIdentity,
  generateServerKey,
  loadIdentity,
  loadOrCreateServerKey,
  loadServerKey,
  saveIdentity,
  SERVER_KEY_BITS,
  stxHome,
} from './keys.js';
export { checkServerKey, hostPortKey, parseKnownHosts, recordServerKey, type CheckServerKeyOptions, type KnownHostEntry, type KnownHostStatus } from './known-hosts.js';
