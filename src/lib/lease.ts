import { ApiError } from "./errors";
import { toHex } from "./ids";

/**
 * Leases on the control database's `leases` table (SPEC §18: one export and one import per account
 * at a time, one replay per endpoint). A lease is taken with a time to live; its holder renews it
 * as it makes progress (`LeaseKeeper`), and releases it when done; a holder that vanished (the
 * client went away, the isolate was evicted) loses it `ttlMs` after its last renewal, so a slot is
 * never held forever. Taking is one statement: an upsert that only replaces an expired row.
 *
 *   const lease = await takeLease(env.DB, `export:events:${accountId}`, { ttlMs: 5 * 60_000 });
 *   // → a Lease, or throws 429 rate_limit_exceeded with Retry-After (seconds until the slot frees)
 *   const keeper = new LeaseKeeper(env.DB, lease);   // keeper.progress() as work advances
 *   await keeper.release();                          // when done, failed or cancelled
 *
 * `leasedStream(stream, keeper)` wraps a ReadableStream so that each chunk renews the lease and
 * the end, an error or a cancel releases it.
 */

export interface Lease {
  name: string;
  holder: string;
  ttlMs: number;
  expiresAt: number;
}

export interface TakeOptions {
  /** How long the lease lasts without progress. */
  ttlMs: number;
  now?: number;
  /** The 429's message; default names the lease's kind. */
  busyMessage?: string;
}

/** Takes `name`, or throws 429 rate_limit_exceeded with Retry-After until the current holder's lease ends. */
export async function takeLease(db: D1Database, name: string, options: TakeOptions): Promise<Lease> {
  const lease = await tryTakeLease(db, name, options);
  if ("retryAfterSeconds" in lease) {
    throw new ApiError(
      "rate_limit_exceeded",
      options.busyMessage ?? "another request of this kind is running for this account; retry when it ends",
      { headers: { "Retry-After": String(lease.retryAfterSeconds) } },
    );
  }
  return lease;
}

/** Takes `name`, or says how long until it frees (never throws a 429). */
export async function tryTakeLease(
  db: D1Database,
  name: string,
  { ttlMs, now = Date.now() }: TakeOptions,
): Promise<Lease | { retryAfterSeconds: number }> {
  const holder = toHex(crypto.getRandomValues(new Uint8Array(12)));
  const expiresAt = now + ttlMs;
  const [, current] = await db.batch<{ holder: string; expires_at: number }>([
    db
      .prepare(
        `INSERT INTO leases (name, holder, acquired_at, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
           expires_at = excluded.expires_at
         WHERE leases.expires_at <= ?3`,
      )
      .bind(name, holder, now, expiresAt),
    db.prepare("SELECT holder, expires_at FROM leases WHERE name = ?1").bind(name),
  ]);
  const row = current?.results[0];
  if (row?.holder === holder) return { name, holder, ttlMs, expiresAt };
  return { retryAfterSeconds: Math.max(1, Math.ceil(((row?.expires_at ?? now) - now) / 1000)) };
}

/** Extends a lease held by `lease.holder`; false when it was lost (expired and taken by another). */
export async function renewLease(db: D1Database, lease: Lease, now = Date.now()): Promise<boolean> {
  const row = await db
    .prepare("UPDATE leases SET expires_at = ?3 WHERE name = ?1 AND holder = ?2 RETURNING expires_at")
    .bind(lease.name, lease.holder, now + lease.ttlMs)
    .first();
  if (row !== null) lease.expiresAt = now + lease.ttlMs;
  return row !== null;
}

export async function releaseLease(db: D1Database, lease: Lease): Promise<void> {
  await db.prepare("DELETE FROM leases WHERE name = ?1 AND holder = ?2").bind(lease.name, lease.holder).run();
}

/** Renews at most every `everyMs` (default 30 s) however often progress is reported; releases once. */
export class LeaseKeeper {
  private lastRenewal: number;
  private released = false;
  private renewing: Promise<unknown> | null = null;

  constructor(
    private readonly db: D1Database,
    readonly lease: Lease,
    private readonly everyMs = 30_000,
    private readonly clock: () => number = Date.now,
  ) {
    this.lastRenewal = clock();
  }

  /** Work advanced: renew the lease when the last renewal is older than `everyMs`. Never throws. */
  async progress(): Promise<void> {
    const now = this.clock();
    if (this.released || this.renewing !== null || now - this.lastRenewal < this.everyMs) return;
    this.lastRenewal = now;
    this.renewing = renewLease(this.db, this.lease, now)
      .catch(() => false)
      .finally(() => {
        this.renewing = null;
      });
    await this.renewing;
  }

  /** Frees the slot (once; a failure only leaves it to expire). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await releaseLease(this.db, this.lease).catch(() => undefined);
  }
}

/**
 * The stream, passing every chunk through, renewing the lease as chunks go out and releasing it
 * when the stream ends, errors or is cancelled by the client. `waitUntil` keeps the release alive
 * after the response (pass the request's ExecutionContext).
 */
export function leasedStream<T>(
  stream: ReadableStream<T>,
  keeper: LeaseKeeper,
  waitUntil: (p: Promise<unknown>) => void,
): ReadableStream<T> {
  const reader = stream.getReader();
  return new ReadableStream<T>(
    {
      async pull(controller) {
        let result: ReadableStreamReadResult<T>;
        try {
          result = await reader.read();
        } catch (err) {
          await keeper.release();
          controller.error(err);
          return;
        }
        if (result.done) {
          // Released before the end reaches the client, so a client that starts its next export
          // as soon as this one ends never meets its own lease.
          await keeper.release();
          controller.close();
          return;
        }
        controller.enqueue(result.value);
        waitUntil(keeper.progress());
      },
      async cancel(reason) {
        waitUntil(keeper.release());
        await reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
