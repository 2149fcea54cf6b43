import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key that counts a source address against a per-source budget. An IPv4 address (also when
 * written as IPv4-mapped IPv6) is one source. An IPv6 host is usually given a whole /64 (RFC 8273
 * hands one to each host; SLAAC lets it pick any address in it), so counting full IPv6 addresses
 * would give one attacker 2^64 fresh budgets and the table 2^64 keys: count the /64.
 */
export function sourceKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (isIPv4(address) || !isIPv6(address)) return address;
  const zoneless = address.split('%')[0]!;
  const [head = '', tail] = zoneless.split('::');
  const groups = head === '' ? [] : head.split(':');
  if (tail !== undefined) {
    const after = tail === '' ? [] : tail.split(':');
    // An embedded IPv4 tail (`::1.2.3.4`) fills the last two groups, past the /64: drop it.
    const missing = 8 - groups.length - after.length - (after.at(-1)?.includes('.') === true ? 1 : 0);
    for (let i = 0; i < missing; i += 1) groups.push('0');
    groups.push(...after);
  }
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g, 16).toString(16)).join(':')}::/64`;
}
