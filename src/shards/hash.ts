/**
 * The hashes of SPEC §17, synchronous and stable across runtimes and releases: an account's shard
 * and an email's stripe must never change under a stored row. cyrb53 (public domain): two 32-bit
 * multiply-xorshift lanes mixed into 53 bits, so it fits a JavaScript number exactly.
 */
export function hash53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * Rendezvous (highest random weight) hashing: the shard of `shards` whose score for the account is
 * highest. Adding a shard moves only the accounts that now rank it first (about 1/(n+1) of them);
 * removing one moves only its own. Ties (1 in 2^53) go to the lower index.
 */
export function rendezvousShard(accountId: string, shards: readonly number[]): number {
  let best = shards[0] ?? 0;
  let bestScore = -1;
  for (const shard of shards) {
    const score = hash53(`${accountId}\u0000shard-${shard}`);
    if (score > bestScore || (score === bestScore && shard < best)) {
      best = shard;
      bestScore = score;
    }
  }
  return best;
}

/** The stripe of an email in a placement of `k` shards: `hash(email_id) mod k`. */
export const stripeOf = (emailId: string, k: number): number => (k <= 1 ? 0 : hash53(emailId) % k);
