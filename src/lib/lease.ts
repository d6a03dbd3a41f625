import { ApiError } from "./errors";

/**
 * One holder per (account, kind) at a time (SPEC §18: one export and one import per account), in the
 * control database (db/leases.ts). Acquire is one upsert that takes the row only when it is free or
 * lapsed; a holder renews at every step of progress and releases at the end. A holder that stops
 * making progress (a cancelled stream, a Worker that died) loses the lease LEASE_MS after its last
 * renewal. A refused acquire is `429 rate_limit_exceeded` with Retry-After: when the lease lapses at
 * the latest. Kinds in use: `suppressions.import`, `suppressions.export`.
 */

export const LEASE_MS = 5 * 60_000;

export interface Lease {
  accountId: string;
  kind: string;
  holder: string;
}

export async function acquireLease(
  db: D1Database,
  accountId: string,
  kind: string,
  holder: string,
  now = Date.now(),
): Promise<Lease> {
  const row = await db
    .prepare(
      `INSERT INTO leases (account_id, kind, holder, expires_at) VALUES (?1, ?2, ?3, ?4)
       ON CONFLICT (account_id, kind) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
         WHERE leases.expires_at <= ?5 OR leases.holder = excluded.holder
       RETURNING holder`,
    )
    .bind(accountId, kind, holder, now + LEASE_MS, now)
    .first<{ holder: string }>();
  if (row?.holder === holder) return { accountId, kind, holder };
  const held = await db
    .prepare("SELECT expires_at FROM leases WHERE account_id = ?1 AND kind = ?2")
    .bind(accountId, kind)
    .first<{ expires_at: number }>();
  const retryAfter = Math.max(1, Math.ceil(((held?.expires_at ?? now + LEASE_MS) - now) / 1000));
  throw new ApiError(
    "rate_limit_exceeded",
    `another ${kind.replace(".", " ")} of this account is running; retry later`,
    {
      headers: { "Retry-After": String(retryAfter) },
    },
  );
}

/** Extends the lease after progress; false when it was lost (lapsed and taken by another holder). */
export async function renewLease(db: D1Database, lease: Lease, now = Date.now()): Promise<boolean> {
  const { meta } = await db
    .prepare("UPDATE leases SET expires_at = ?4 WHERE account_id = ?1 AND kind = ?2 AND holder = ?3")
    .bind(lease.accountId, lease.kind, lease.holder, now + LEASE_MS)
    .run();
  return meta.changes > 0;
}

export async function releaseLease(db: D1Database, lease: Lease): Promise<void> {
  await db
    .prepare("DELETE FROM leases WHERE account_id = ?1 AND kind = ?2 AND holder = ?3")
    .bind(lease.accountId, lease.kind, lease.holder)
    .run();
}
