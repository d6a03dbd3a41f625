import { ApiError } from "./errors";

/**
 * One holder per named slot at a time (SPEC §18: one export and one import per account), in the
 * control database (db/leases.ts). take is one upsert that wins only when the slot is free or
 * lapsed; a holder renews as it makes progress and releases at the end, and one that stops making
 * progress loses the slot `ttlMs` after its last renewal. A refused take is `429 rate_limit_exceeded`
 * with Retry-After (when the lease lapses at the latest). The API is the hardening branch's
 * (takeLease / renewLease / releaseLease), so either implementation serves both.
 */

export interface Lease {
  name: string;
  holder: string;
  ttlMs: number;
}

export async function takeLease(
  db: D1Database,
  name: string,
  options: { ttlMs: number; now?: number; busyMessage?: string },
): Promise<Lease> {
  const now = options.now ?? Date.now();
  const holder = crypto.randomUUID();
  const row = await db
    .prepare(
      `INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES (?1, ?2, ?3, ?4)
       ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
         expires_at = excluded.expires_at WHERE leases.expires_at <= ?3
       RETURNING holder, expires_at`,
    )
    .bind(name, holder, now, now + options.ttlMs)
    .first<{ holder: string }>();
  if (row?.holder === holder) return { name, holder, ttlMs: options.ttlMs };
  const held = await db
    .prepare("SELECT expires_at FROM leases WHERE name = ?1")
    .bind(name)
    .first<{ expires_at: number }>();
  const retryAfter = Math.max(1, Math.ceil(((held?.expires_at ?? now + options.ttlMs) - now) / 1000));
  throw new ApiError("rate_limit_exceeded", options.busyMessage ?? "this slot is busy; retry later", {
    headers: { "Retry-After": String(retryAfter) },
  });
}

/** Extends the lease after progress; false when it was lost (lapsed and taken by another holder). */
export async function renewLease(db: D1Database, lease: Lease, now = Date.now()): Promise<boolean> {
  const { meta } = await db
    .prepare("UPDATE leases SET expires_at = ?3 WHERE name = ?1 AND holder = ?2")
    .bind(lease.name, lease.holder, now + lease.ttlMs)
    .run();
  return meta.changes > 0;
}

export async function releaseLease(db: D1Database, lease: Lease): Promise<void> {
  await db.prepare("DELETE FROM leases WHERE name = ?1 AND holder = ?2").bind(lease.name, lease.holder).run();
}
