import type { KnownProvider } from "./providers";

/**
 * Writes what the consumer learned of recipient domains (db/mailbox-domains.ts) in its batch: one
 * upsert that writes only a new domain or one whose provider changed.
 */
export function learnProvidersStatement(
  db: D1Database,
  learned: { domain: string; provider: KnownProvider }[],
  now: number,
): D1PreparedStatement | null {
  const byDomain = new Map<string, KnownProvider>();
  for (const l of learned) byDomain.set(l.domain, l.provider);
  if (byDomain.size === 0) return null;
  return db
    .prepare(
      `INSERT INTO mailbox_domains (domain, provider, learned_at)
       SELECT value->>0, value->>1, ?2 FROM json_each(?1) WHERE true
       ON CONFLICT (domain) DO UPDATE SET provider = excluded.provider, learned_at = excluded.learned_at
       WHERE mailbox_domains.provider <> excluded.provider`,
    )
    .bind(JSON.stringify([...byDomain]), now);
}
