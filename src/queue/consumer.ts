import type * as z from "zod";
import { DIMENSIONS, isList } from "../db/event-record";
import { topicColumn } from "../db/suppressions";
import type { Env } from "../env";
import { domainOf } from "../events/record";
import { toStoredFields } from "../events/serialize";
import { describeError, log } from "../lib/log";
import { learnProvidersStatement } from "../mailbox/learned";
import {
  type EventMessage,
  type QueueMessage,
  queueMessageSchema,
  type RegisterMessage,
} from "../pipeline/messages";
import {
  backfillStatements,
  burstConflictGroup,
  chunkByJsonSize,
  eventInsertStatements,
  registrationStatements,
  removedClicksRollup,
  removedEventsRollup,
  suppressionFromEventsStatement,
} from "../store";
import { isSimulatorAddress } from "../suppressions/address";
import { createdChangeId, pushChangesLogged, recordCreated } from "../suppressions/changes";
import { type AddressRef, markPending, syncMirror } from "../suppressions/mirror";
import { softBounceStatements } from "../suppressions/soft-bounce";
import { findClickBursts } from "../tracking/burst-store";
import { fanOutNewEvents, type StoredEvent } from "../webhooks/fanout";

/**
 * The EVENTS_QUEUE consumer: every event, registration and automatic suppression is written here,
 * through the statements of the event store (src/store/event-writes.ts).
 *
 * One D1 batch (one transaction) per queue batch. Events are `ON CONFLICT DO NOTHING` on their deterministic key,
 * registrations and suppressions are upserts, so a redelivered batch writes nothing twice.
 *
 * Enrichment happens inside the same transaction, in both orders: an event insert joins the
 * message's registration, and a registration back-fills the dimensions of events already stored.
 * D1 runs transactions one at a time, so whichever comes second sees the first.
 */

export function retryDelaySeconds(attempts: number): number {
  return Math.min(300, 5 * 2 ** Math.max(0, attempts - 1));
}

/**
 * The batch's messages that parse as queue messages. Any other can never be written: retrying it
 * would only delay the rest, so it is acknowledged after `dropped` keeps a record of it.
 */
export function validMessages(
  batch: MessageBatch<unknown>,
  dropped: (message: Message<unknown>, error: z.ZodError) => void,
): { message: Message<unknown>; body: QueueMessage }[] {
  const valid: { message: Message<unknown>; body: QueueMessage }[] = [];
  for (const message of batch.messages) {
    const parsed = queueMessageSchema.safeParse(message.body);
    if (parsed.success) valid.push({ message, body: parsed.data });
    else {
      dropped(message, parsed.error);
      message.ack();
    }
  }
  return valid;
}

export async function handleEventsBatch(batch: MessageBatch<unknown>, env: Env): Promise<void> {
  let valid = validMessages(batch, (message, error) =>
    log("error", "invalid queue message dropped", {
      queue: batch.queue,
      message_id: message.id,
      issues: error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`),
    }),
  );
  if (valid.length === 0) return;

  const bodies = valid.map((v) => v.body);
  let touched: AddressRef[];
  const inserted: StoredEvent[] = [];
  try {
    const written = await writeBatchApartFromConflicts(env, bodies, inserted);
    touched = written.touched;
    if (written.conflicted.size > 0) {
      // Only the conflicting groups' clicks wait; the rest of the batch is written (SPEC §18).
      log("warn", "burst detection conflict; retrying that recipient's clicks only", {
        queue: batch.queue,
        retried: written.conflicted.size,
        written: valid.length - written.conflicted.size,
      });
      for (const v of valid) {
        if (written.conflicted.has(v.body))
          v.message.retry({ delaySeconds: retryDelaySeconds(v.message.attempts) });
      }
      valid = valid.filter((v) => !written.conflicted.has(v.body));
    }
  } catch (err) {
    log("error", "D1 write failed; retrying the batch", {
      queue: batch.queue,
      size: valid.length,
      ...describeError(err),
    });
    for (const { message } of valid) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    return;
  }
  // Webhooks (SPEC §14): first arrivals only, before the ack; a failed send retries the batch,
  // whose retry fans its events out again (webhooks/fanout.ts explains why that delivers nothing twice).
  try {
    await fanOutNewEvents(
      env,
      valid.map(({ message, body }) => ({ attempts: message.attempts, body })),
      inserted,
    );
  } catch (err) {
    log("error", "webhook fan-out failed; retrying the batch", { queue: batch.queue, ...describeError(err) });
    for (const { message } of valid) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    return;
  }
  for (const { message } of valid) message.ack();
  // D1 holds the change and its journal row now; a KV failure leaves the row for the reconcile.
  if (touched.length > 0) {
    try {
      await syncMirror(env, touched);
    } catch (err) {
      log("warn", "suppression mirror not updated; the reconcile will repair it", {
        queue: batch.queue,
        ...describeError(err),
      });
    }
    // The batch's suppression.created changes (recorded in its transaction): pushed now, or by the
    // scheduled work if this fails.
    await pushChangesLogged(env, env.DB);
  }
}

/**
 * Writes messages that failed before (dead letters, parked messages) and hands their new events to
 * the webhook fan-out, as the consumer does. They count as retried: an earlier attempt may have
 * committed and failed only at the fan-out, so their stored events are fanned out again and the
 * delivery side drops any (endpoint, event) pair already delivered (webhooks/fanout.ts).
 */
export async function writeRetried(env: Env, bodies: QueueMessage[]): Promise<AddressRef[]> {
  const inserted: StoredEvent[] = [];
  const touched = await writeBatch(env, bodies, inserted);
  await fanOutRetried(env, bodies, inserted);
  return touched;
}

/** The webhook half of writeRetried, for callers that must tell a D1 failure from a fan-out failure. */
export async function fanOutRetried(
  env: Env,
  bodies: QueueMessage[],
  inserted: StoredEvent[],
): Promise<void> {
  await fanOutNewEvents(
    env,
    bodies.map((body) => ({ attempts: 2, body })),
    inserted,
  );
}

/** Writes a batch of valid messages in one D1 transaction; returns the addresses whose suppressions changed. */
export async function writeBatch(
  env: Env,
  bodies: QueueMessage[],
  /** Filled with the events this batch inserted (first arrivals), for the webhook fan-out. */
  inserted?: StoredEvent[],
): Promise<AddressRef[]> {
  const registrations = bodies.filter((b): b is RegisterMessage => b.type === "register");
  // One event per id within a batch: a statement's NOT EXISTS cannot see rows it inserts itself.
  const seenEvents = new Set<string>();
  const arrived = bodies.filter((b): b is EventMessage => {
    if (b.type !== "event") return false;
    const key = `${b.event.account_id}\u0000${b.event.id}`;
    if (seenEvents.has(key)) return false;
    seenEvents.add(key);
    return true;
  });
  // Scanner bursts (SPEC §5): their clicks are not written, and any an earlier batch wrote are deleted
  // below. `bursts.dropped` / `bursts.removed` name them for anything that counts or forwards events.
  // The database this batch writes to: one today; a shard router will choose it (SPEC §17).
  const db = env.DB;
  const bursts = await findClickBursts(db, arrived);
  const events = bursts.kept;
  const statements: D1PreparedStatement[] = [];

  for (const chunk of chunkByJsonSize(registrations.map(registrationRow))) {
    statements.push(...registrationStatements(db, chunk));
  }
  // Back-fill events that arrived before their registration. Only rows with a gap are written.
  const backfilled = new Set<string>();
  for (const r of registrations) {
    const key = `${r.account_id}\u0000${r.message.email_id}`;
    if (backfilled.has(key)) continue;
    backfilled.add(key);
    statements.push(...backfillStatements(db, r.account_id, r.message.email_id));
  }

  // Before the events: a suppression is written only with its event's first arrival, so a
  // redelivered bounce cannot bring back an entry that was removed since.
  const suppressing = events.filter((e) => e.suppress && !isSimulatorAddress(e.event.recipient));
  const suppressionRows = suppressing.map((e) => ({
    ...eventRow(e),
    suppression_reason: e.suppress?.reason,
    suppression_topic: e.suppress?.topic ?? null,
    suppression_inherit_topic: e.suppress?.inherit_topic === true,
  }));
  for (const chunk of chunkByJsonSize(suppressionRows)) {
    statements.push(suppressionFromEventsStatement(db, chunk));
  }
  // suppression.created for each entry an event created (SPEC §14), in the same transaction. The
  // change id is derived from the event, so a redelivered event records nothing new.
  if (suppressing.length > 0) {
    const created = await Promise.all(
      suppressing.map(async (e) => ({
        accountId: e.event.account_id,
        email: e.event.recipient,
        topic: e.suppress?.inherit_topic === true ? null : topicColumn(e.suppress?.topic ?? null),
        suppressedAt: e.event.occurred_at,
        changeId: await createdChangeId(e.event.account_id, e.event.id),
      })),
    );
    statements.push(recordCreated(db, created, Date.now()));
  }
  const touched = suppressing.map((e) => ({ accountId: e.event.account_id, email: e.event.recipient }));
  // The mirror's journal, in the same transaction: the KV write below may fail, never silently.
  if (touched.length > 0) statements.push(markPending(env, touched, Date.now()));

  // Scanner bursts: take back what removed clicks counted in the rollups, then delete them.
  if (bursts.removed.length > 0) {
    statements.push(...removedEventsRollup(db, bursts.removed), removedClicksRollup(db, bursts.removed));
  }
  statements.push(...bursts.statements);
  const insertAt: number[] = [];
  for (const chunk of chunkByJsonSize(events.map((e) => eventRow(e)))) {
    // Metrics (SPEC §15) come first in the chunk's statements: they count its first arrivals only.
    const chunkStatements = eventInsertStatements(db, chunk);
    insertAt.push(statements.length + chunkStatements.insert);
    statements.push(...chunkStatements.statements);
  }

  // What SES said of receiving servers, per recipient domain (SPEC §15 mailbox_provider).
  const learned = learnProvidersStatement(
    db,
    arrived.flatMap((e) =>
      e.mailbox_provider
        ? [{ domain: domainOf(e.event.recipient) ?? "", provider: e.mailbox_provider }].filter(
            (l) => l.domain,
          )
        : [],
    ),
    Date.now(),
  );
  if (learned) statements.push(learned);

  // The soft_bounce rule (SPEC §10), after the events: addresses with a transient bounce in this batch.
  const transient = new Map<string, [string, string]>();
  for (const e of events) {
    if (
      e.event.type === "email.bounced" &&
      e.event.bounce_type === "transient" &&
      !isSimulatorAddress(e.event.recipient)
    )
      transient.set(`${e.event.account_id}\u0000${e.event.recipient}`, [
        e.event.account_id,
        e.event.recipient,
      ]);
  }
  const softAt = statements.length + 2;
  if (transient.size > 0) statements.push(...softBounceStatements(db, [...transient.values()], Date.now()));

  if (statements.length > 0) {
    let results: D1Result[];
    try {
      results = await db.batch(statements);
    } catch (err) {
      // A group's clicks changed since they were read: name its messages, so that the caller
      // retries them alone and writes the rest (SPEC §18).
      const group = burstConflictGroup(err);
      const messages = group === null ? undefined : bursts.groupMessages[group];
      if (messages) throw new BurstConflict(messages, err);
      throw err;
    }
    for (const i of insertAt) inserted?.push(...((results[i]?.results ?? []) as StoredEvent[]));
    if (transient.size > 0) {
      for (const r of (results[softAt]?.results ?? []) as { account_id: string; email: string }[])
        touched.push({ accountId: r.account_id, email: r.email });
    }
  }
  return touched;
}

/** A burst group's guard failed (another batch changed its clicks): these messages are to be retried. */
export class BurstConflict extends Error {
  constructor(
    readonly messages: readonly QueueMessage[],
    cause: unknown,
  ) {
    super("burst detection: a recipient's clicks changed since they were read", { cause });
    this.name = "BurstConflict";
  }
}

/**
 * writeBatch, retrying nothing itself: a burst conflict takes that group's messages out (returned in
 * `conflicted`, for the caller to retry) and writes the rest again, at most MAX_CONFLICT_ROUNDS times.
 */
const MAX_CONFLICT_ROUNDS = 4;
export async function writeBatchApartFromConflicts(
  env: Env,
  bodies: QueueMessage[],
  inserted: StoredEvent[],
): Promise<{ touched: AddressRef[]; conflicted: Set<QueueMessage> }> {
  const conflicted = new Set<QueueMessage>();
  let remaining = bodies;
  for (let round = 0; ; round++) {
    try {
      return { touched: remaining.length > 0 ? await writeBatch(env, remaining, inserted) : [], conflicted };
    } catch (err) {
      if (!(err instanceof BurstConflict) || round >= MAX_CONFLICT_ROUNDS) throw err;
      for (const m of err.messages) conflicted.add(m);
      remaining = remaining.filter((m) => !conflicted.has(m));
    }
  }
}

const eventRow = (m: EventMessage) => ({ ...toStoredFields(m.event), network: m.network ?? null });

function registrationRow(r: RegisterMessage) {
  const row: Record<string, unknown> = {
    account_id: r.account_id,
    registered_at: r.registered_at,
    email_id: r.message.email_id,
  };
  for (const k of DIMENSIONS) row[k] = isList(k) ? JSON.stringify(r.message[k]) : r.message[k];
  return row;
}
