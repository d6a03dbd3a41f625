import type { Env } from "../env";
import { describeError, log } from "../lib/log";
import { type QueueMessage, queueMessageSchema } from "../pipeline/messages";
import { pushChangesLogged } from "../suppressions/changes";
import { syncMirror } from "../suppressions/mirror";
import type { StoredEvent } from "../webhooks/fanout";
import { fanOutRetried, writeBatch } from "./consumer";

/**
 * Parked messages: what the EVENTS_QUEUE consumer could not write through its whole retry budget
 * (D1 down for minutes or hours). The dead-letter consumer keeps each one in the R2 bucket PARKED,
 * and `scheduled()` writes them into D1 once it answers again, through the consumer's own
 * idempotent writeBatch (with the webhook fan-out), then deletes them (SPEC §12: nothing accepted is lost or written twice).
 *
 * Key: `parked/<enqueue time, 15 digits of epoch ms>-<queue message id>`. R2 lists keys in
 * lexicographic order, so the first key listed is the oldest message, and a dead letter delivered
 * twice (Queues is at-least-once) lands on the same key: parking is idempotent.
 */

export const PARKED_PREFIX = "parked/";
/** Messages D1 refused on their own while it wrote others: kept for an operator, never retried. */
export const STUCK_PREFIX = "stuck/";

/** What one parked object holds: the queue message as it arrived, plus where it came from. */
export interface ParkedRecord {
  message_id: string;
  queue: string;
  attempts: number;
  enqueued_at: string;
  parked_at: string;
  body: unknown;
}

export function parkedKey(enqueuedAt: Date, messageId: string): string {
  return `${PARKED_PREFIX}${String(enqueuedAt.getTime()).padStart(15, "0")}-${messageId}`;
}

export interface ReplayResult {
  replayed: number;
  /** Parked objects that can never be written (unreadable, invalid): logged whole and deleted. */
  dropped: number;
  /** Messages D1 refused on their own while it wrote others: moved to `stuck/`. */
  stuck: number;
  /** true when D1 failed again: the rest waits for the next run. */
  d1_failed: boolean;
  /**
   * true when D1 took messages but WEBHOOKS_QUEUE refused their fan-out: they stay parked, and the
   * next run (whose write is then a no-op) fans their stored events out again.
   */
  fanout_failed: boolean;
}

/** Messages per D1 transaction: the consumer's own batch size (wrangler.toml max_batch_size). */
const REPLAY_BATCH = 100;

/**
 * Writes parked messages into D1, oldest first, in batches of the consumer's size, deleting each
 * batch from R2 once its transaction committed. A crash between the two leaves the batch parked;
 * the next run writes it again, which writes nothing new. Bounded by `maxMessages` and `deadline`
 * (epoch ms) so one cron run stays well inside its time limit.
 */
export async function replayParkedMessages(
  env: Env,
  options: { maxMessages?: number; deadline?: number } = {},
): Promise<ReplayResult> {
  const maxMessages = options.maxMessages ?? 5_000;
  const deadline = options.deadline ?? Date.now() + 20_000;
  const result: ReplayResult = { replayed: 0, dropped: 0, stuck: 0, d1_failed: false, fanout_failed: false };

  while (result.replayed + result.dropped + result.stuck < maxMessages && Date.now() < deadline) {
    const listed = await env.PARKED.list({ prefix: PARKED_PREFIX, limit: REPLAY_BATCH });
    if (listed.objects.length === 0) break;

    const bodies: QueueMessage[] = [];
    const keys: string[] = [];
    const invalid: string[] = [];
    await Promise.all(
      listed.objects.map(async ({ key }) => {
        const object = await env.PARKED.get(key);
        if (!object) return; // deleted meanwhile by an overlapping run
        const text = await object.text();
        let record: ParkedRecord | null = null;
        try {
          record = JSON.parse(text) as ParkedRecord;
        } catch {}
        const parsed = queueMessageSchema.safeParse(record?.body);
        if (parsed.success) {
          bodies.push(parsed.data);
          keys.push(key);
        } else {
          log("error", "parked message can never be written; dropped", { key, record: text.slice(0, 4096) });
          invalid.push(key);
        }
      }),
    );
    if (invalid.length > 0) {
      await env.PARKED.delete(invalid);
      result.dropped += invalid.length;
    }
    if (bodies.length === 0) continue;

    let touched: Awaited<ReturnType<typeof writeBatch>>;
    const inserted: StoredEvent[] = [];
    try {
      touched = await writeBatch(env, bodies, inserted);
    } catch (err) {
      // D1 is still down, or one message is one it can never take, which would hold back every
      // batch behind it: find out by writing them one at a time.
      if (!(await replayOneByOne(env, keys, bodies, result))) {
        result.d1_failed = true;
        log("warn", "D1 still failing; parked messages wait for the next run", describeError(err));
        break;
      }
      continue;
    }
    await syncMirrorLogged(env, touched);
    if (!(await fanOutOrKeep(env, bodies, inserted, result))) break;
    await env.PARKED.delete(keys);
    result.replayed += keys.length;
  }
  return result;
}

/** Fans written messages out to webhooks; on failure they stay parked for the next run (logged). */
async function fanOutOrKeep(
  env: Env,
  bodies: QueueMessage[],
  inserted: StoredEvent[],
  result: ReplayResult,
): Promise<boolean> {
  try {
    await fanOutRetried(env, bodies, inserted);
    return true;
  } catch (err) {
    result.fanout_failed = true;
    log("warn", "webhook fan-out of replayed messages failed; they stay parked", describeError(err));
    return false;
  }
}

/** Single writes that fail before any succeeds: D1 is down, not a message at fault. */
const FAILURES_MEANING_DOWN = 3;

/**
 * Writes a failed batch message by message. Returns false when D1 looks down (the first few all
 * failed). Otherwise each message D1 refuses on its own is moved to `stuck/`: kept, counted by
 * the backlog route, no longer in the way of the rest.
 */
async function replayOneByOne(
  env: Env,
  keys: string[],
  bodies: QueueMessage[],
  result: ReplayResult,
): Promise<boolean> {
  let succeeded = 0;
  const failed: string[] = [];
  for (const [i, body] of bodies.entries()) {
    const key = keys[i] ?? "";
    const inserted: StoredEvent[] = [];
    let touched: Awaited<ReturnType<typeof writeBatch>>;
    try {
      touched = await writeBatch(env, [body], inserted);
    } catch (err) {
      failed.push(key);
      if (succeeded === 0 && failed.length >= FAILURES_MEANING_DOWN) return false;
      log("warn", "parked message refused by D1 on its own", { key, ...describeError(err) });
      continue;
    }
    succeeded += 1;
    await syncMirrorLogged(env, touched);
    // Written: only a failed fan-out keeps it parked (for the next run), never in stuck/.
    if (!(await fanOutOrKeep(env, [body], inserted, result))) continue;
    await env.PARKED.delete(key);
    result.replayed += 1;
  }
  if (succeeded === 0) return false;
  for (const key of failed) {
    const object = await env.PARKED.get(key);
    if (object)
      await env.PARKED.put(`${STUCK_PREFIX}${key.slice(PARKED_PREFIX.length)}`, await object.text());
    await env.PARKED.delete(key);
    log("error", "parked message moved to stuck/: D1 refuses it while it takes others", { key });
  }
  result.stuck += failed.length;
  return true;
}

export interface ParkedStatus {
  /** Parked messages counted, up to `MAX_COUNTED`. */
  count: number;
  /** false when there are more than were counted. */
  count_exact: boolean;
  /** When the oldest parked message was first sent to the queue, or null when none wait. */
  oldest_enqueued_at: string | null;
  /** Messages in `stuck/` (D1 refused them alone): an operator's to inspect; counted up to 1,000. */
  stuck: number;
}

/** Listing is paged by 1,000 keys; the count stops after this many, so the answer stays cheap. */
const MAX_COUNTED = 10_000;

/** How many messages wait in R2 and how old the oldest is, for the admin route and the cron's log line. */
export async function parkedStatus(env: Env): Promise<ParkedStatus> {
  const stuck = (await env.PARKED.list({ prefix: STUCK_PREFIX, limit: 1_000 })).objects.length;
  let count = 0;
  let oldest: string | null = null;
  let cursor: string | undefined;
  for (;;) {
    const listed = await env.PARKED.list({ prefix: PARKED_PREFIX, limit: 1_000, cursor });
    if (oldest === null && listed.objects[0]) oldest = enqueuedAtOfKey(listed.objects[0].key);
    count += listed.objects.length;
    if (!listed.truncated || count >= MAX_COUNTED) {
      return { count, count_exact: !listed.truncated, oldest_enqueued_at: oldest, stuck };
    }
    cursor = listed.cursor;
  }
}

function enqueuedAtOfKey(key: string): string | null {
  const ms = Number(key.slice(PARKED_PREFIX.length, PARKED_PREFIX.length + 15));
  return Number.isFinite(ms) ? new Date(ms).toISOString() : null;
}

export async function syncMirrorLogged(
  env: Env,
  touched: Awaited<ReturnType<typeof writeBatch>>,
): Promise<void> {
  if (touched.length === 0) return;
  try {
    await syncMirror(env, touched);
  } catch (err) {
    log("warn", "suppression mirror not updated; the reconcile will repair it", describeError(err));
  }
  await pushChangesLogged(env, env.DB);
}
