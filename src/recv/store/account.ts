// Whom the server charges for what a client makes it hold or do (§9.5): partial uploads' disk
// (partial-quota.ts) and read-backs (read-back.ts). A client with a key is its fingerprint,
// wherever it connects from; an anonymous client is its source address, and an IPv6 one its /64
// (one host is commonly given a whole /64, so its addresses are one account).

import net from 'node:net';

const ANONYMOUS = 'anonymous';

/** The /64 of an IPv6 address ("2001:db8:1:2::/64"), or the address itself for IPv4. */
function network(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1] !== undefined) return mapped[1];
  if (net.isIPv6(address)) {
    const blocks = address.split('%')[0]?.split('::') ?? [];
    const head = (blocks[0] ?? '').split(':').filter((b) => b !== '');
    const tail = blocks.length > 1 ? (blocks[1] ?? '').split(':').filter((b) => b !== '') : [];
    const full = [...head, ...Array.from({ length: Math.max(0, 8 - head.length - tail.length) }, () => '0'), ...tail];
    return `${full.slice(0, 4).map((b) => b.toLowerCase().replace(/^0+(?=.)/, '')).join(':')}::/64`;
  }
  return address;
}

/** The account of `principal` ("anonymous" or a fingerprint) connecting from `source`. */
export function accountOf(principal: string, source: string | undefined): string {
  if (principal !== ANONYMOUS) return principal;
  return `${ANONYMOUS}@${source === undefined || source === '' ? 'unknown' : network(source)}`;
}
