import { and, eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { type ErasureRow, erasures } from "../db/jobs";
import type { Env } from "../env";
import { ApiError } from "../lib/errors";
import { toHex } from "../lib/ids";
import { describeError, log } from "../lib/log";
import { eraseEventsOnShard } from "../store";
import { erasureHash } from "../suppressions/erasure-hash";
import { replaceWithHashed } from "../suppressions/store";
import { listEndpoints } from "../webhooks/store";
import { NOTHING_REMOVED, type Removed } from "./schema";

/**
 * Erasure (SPEC §20). The request writes the record (control DB, never the address: only its HMAC)
 * and a job object in R2 (`jobs/erasures/{id}`, the only place the address waits), then runs the job
 * at once in the background (waitUntil). The scheduled work runs every job still in R2 on its next
 * run, so an erasure a dying Worker left completes within one scheduled cycle. Every step is
 * idempotent, so running a job twice (background and cron at once) only removes what is left; the
 * job object is deleted once the record says completed.
 */

const JOB_PREFIX = "jobs/erasures/";
/** The R2 prefixes where the dead-letter path parks queue messages (src/queue/parked.ts). */
const PARKED_PREFIXES = ["parked/", "stuck/"];

interface ErasureJob {
  account_id: string;
  email: string;
}

export async function createErasure(
  env: Env,
  accountId: string,
  email: string,
  now: number,
): Promise<ErasureRow> {
  const emailHash = await erasureHash(env, email);
  const row: ErasureRow = {
    id: `era_${toHex(crypto.getRandomValues(new Uint8Array(16)))}`,
    accountId,
    status: "running",
    emailHash,
    removed: JSON.stringify(NOTHING_REMOVED),
    createdAt: now,
    completedAt: null,
  };
  // The job first: a record without a job could never complete.
  await env.PARKED.put(
    `${JOB_PREFIX}${row.id}`,
    JSON.stringify({ account_id: accountId, email } satisfies ErasureJob),
  );
  await drizzle(env.DB).insert(erasures).values(row);
  return row;
}

export async function getErasure(env: Env, accountId: string, id: string): Promise<ErasureRow> {
  const row = await drizzle(env.DB)
    .select()
    .from(erasures)
    .where(and(eq(erasures.id, id), eq(erasures.accountId, accountId)))
    .get();
  if (!row) throw new ApiError("not_found", `no erasure ${id}`);
  return row;
}

/** Runs one erasure job to completion; throws when D1, R2 or the queue fails (the job stays for the cron). */
export async function runErasure(env: Env, id: string, now = Date.now()): Promise<Removed | null> {
  const object = await env.PARKED.get(`${JOB_PREFIX}${id}`);
  if (!object) return null;
  const job = (await object.json()) as ErasureJob;
  const emailHash = await erasureHash(env, job.email);
  const endpoints = (await listEndpoints(env, job.account_id)).map((e) => e.id);
  // The account's shards (§17: every shard it has or had); one database until placements exist.
  const shards = [env.DB];
  const removed: Removed = { ...NOTHING_REMOVED };
  for (const db of shards) {
    const r = await eraseEventsOnShard(db, job.account_id, job.email, endpoints);
    removed.events += r.events;
    removed.deliveries += r.deliveries;
    removed.registrations += r.registrations;
  }
  removed.parked = await eraseParked(env, job.account_id, job.email);
  removed.suppressions = await replaceWithHashed(env, env.DB, job.account_id, job.email, emailHash, now);
  await drizzle(env.DB)
    .update(erasures)
    .set({ status: "completed", removed: JSON.stringify(removed), completedAt: Date.now() })
    .where(and(eq(erasures.id, id), eq(erasures.status, "running")));
  await env.PARKED.delete(`${JOB_PREFIX}${id}`);
  return removed;
}

/** Background run for the request: failures are logged, and the scheduled work finishes the job. */
export async function runErasureLogged(env: Env, id: string): Promise<void> {
  try {
    await runErasure(env, id);
  } catch (err) {
    log("warn", "erasure interrupted; the scheduled work will finish it", {
      erasure_id: id,
      ...describeError(err),
    });
  }
}

/** The scheduled work: every erasure job still waiting (bounded per run). */
export async function runPendingErasures(env: Env, max = 20): Promise<{ completed: number }> {
  const listed = await env.PARKED.list({ prefix: JOB_PREFIX, limit: max });
  let completed = 0;
  for (const { key } of listed.objects) {
    if ((await runErasure(env, key.slice(JOB_PREFIX.length))) !== null) completed += 1;
  }
  return { completed };
}

/** Parked (dead-lettered) queue messages whose event names the address: deleted. Returns how many. */
async function eraseParked(env: Env, accountId: string, email: string): Promise<number> {
  let removed = 0;
  for (const prefix of PARKED_PREFIXES) {
    let cursor: string | undefined;
    do {
      const listed = await env.PARKED.list({ prefix, ...(cursor ? { cursor } : {}) });
      const doomed: string[] = [];
      await Promise.all(
        listed.objects.map(async ({ key }) => {
          const object = await env.PARKED.get(key);
          if (!object) return;
          const text = await object.text();
          // A cheap test first: most parked messages do not mention the address at all.
          if (!text.includes(email)) return;
          try {
            const record = JSON.parse(text) as {
              body?: { type?: string; event?: { account_id?: string; recipient?: string } };
            };
            const event = record.body?.type === "event" ? record.body.event : undefined;
            if (event?.account_id === accountId && event.recipient?.toLowerCase() === email) doomed.push(key);
          } catch {}
        }),
      );
      if (doomed.length > 0) await env.PARKED.delete(doomed);
      removed += doomed.length;
      cursor = listed.truncated ? listed.cursor : undefined;
    } while (cursor);
  }
  return removed;
}
