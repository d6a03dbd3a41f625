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
import { groupByShard, type ShardGroup } from "../shards/batch";
import { boundShards, shardDb } from "../shards/bindings";
import type { AccountShards } from "../shards/route";
import {
  backfillStatements,
  burstConflictGroup,
  chunkByJsonSize,
  eventInsertStatements,
  eventsByKey,
  recentOutcomes,
  registrationStatements,
  removedClicksRollup,
  removedEventsRollup,
  suppressionFromEventsStatement,
} from "../store";
import { registrationsOf } from "../store/shard-rows";
import { isSimulatorAddress } from "../suppressions/address";
import { createdChangeId, pushChangesOfLogged, recordCreated } from "../suppressions/changes";
import { type AddressRef, markPending, syncMirror } from "../suppressions/mirror";
import {
  SOFT_BOUNCE_RUN,
  SOFT_BOUNCE_WINDOW_MS,
  softBounceCandidates,
  softBounceEntryStatements,
  softBounceStatements,
} from "../suppressions/soft-bounce";
import { insertSuppressions, type SuppressionWrite } from "../suppressions/write";
import { findClickBursts } from "../tracking/burst-store";
import { fanOutNewEvents, type StoredEvent } from "../webhooks/fanout";

/**
 * The EVENTS_QUEUE consumer: every event, registration and automatic suppression is written here,
 * through the statements of the event store (src/store/event-writes.ts).
 *
 * One D1 batch (one transaction) per queue batch and event shard (SPEC §17). Events are `ON CONFLICT DO NOTHING` on their deterministic key,
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
  const valid = validMessages(batch, (message, error) =>
    log("error", "invalid queue message dropped", {
      queue: batch.queue,
      message_id: message.id,
      issues: error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`),
    }),
  );
  if (valid.length === 0) return;
  let split: Awaited<ReturnType<typeof groupByShard<(typeof valid)[number]>>>;
  try {
    split = await groupByShard(env, valid);
  } catch (err) {
    log("error", "shard placements unavailable; retrying the batch", {
      queue: batch.queue,
      ...describeError(err),
    });
    for (const { message } of valid) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    return;
  }
  // One transaction per shard, the shards in parallel (SPEC §12): a shard that fails retries its
  // own messages only.
  await Promise.all(split.groups.map((group) => handleShardGroup(env, batch.queue, group, split.routes)));
}

async function handleShardGroup(
  env: Env,
  queue: string,
  group: ShardGroup<{ message: Message<unknown>; body: QueueMessage }>,
  routes: Map<string, AccountShards>,
): Promise<void> {
  let { items } = group;
  let touched: AddressRef[];
  const inserted: StoredEvent[] = [];
  try {
    const retried = items.some(({ message }) => message.attempts > 1);
    const written = await writeShardApartFromConflicts(
      env,
      group,
      routes,
      items.map((v) => v.body),
      inserted,
      retried,
    );
    touched = written.touched;
    if (written.conflicted.size > 0) {
      // Only the conflicting groups' clicks wait; the rest of the batch is written (SPEC §18).
      log("warn", "burst detection conflict; retrying that recipient's clicks only", {
        queue,
        shard: group.shard,
        retried: written.conflicted.size,
        written: items.length - written.conflicted.size,
      });
      for (const v of items) {
        if (written.conflicted.has(v.body))
          v.message.retry({ delaySeconds: retryDelaySeconds(v.message.attempts) });
      }
      items = items.filter((v) => !written.conflicted.has(v.body));
    }
  } catch (err) {
    log("error", "D1 write failed; retrying the shard's messages", {
      queue,
      shard: group.shard,
      size: items.length,
      ...describeError(err),
    });
    for (const { message } of items) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    return;
  }
  // Webhooks (SPEC §14): first arrivals only, before the ack; a failed send retries the messages,
  // whose retry fans its events out again (webhooks/fanout.ts explains why that delivers nothing twice).
  try {
    await fanOutNewEvents(
      env,
      items.map(({ message, body }) => ({ attempts: message.attempts, body })),
      inserted,
    );
  } catch (err) {
    log("error", "webhook fan-out failed; retrying the shard's messages", { queue, ...describeError(err) });
    for (const { message } of items) message.retry({ delaySeconds: retryDelaySeconds(message.attempts) });
    return;
  }
  for (const { message } of items) message.ack();
  // D1 holds the change and its journal row now; a KV failure leaves the row for the reconcile.
  if (touched.length > 0) {
    try {
      await syncMirror(env, touched);
    } catch (err) {
      log("warn", "suppression mirror not updated; the reconcile will repair it", {
        queue,
        ...describeError(err),
      });
    }
    // The batch's suppression.created changes (recorded in its transaction): pushed now, or by the
    // scheduled work if this fails.
    await pushChangesOfLogged(env, touched);
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

/**
 * Writes valid messages that were queued before (dead letters, parked messages): one transaction
 * per shard, the shards in parallel; throws the first failure once every shard has finished (what
 * the others wrote stays written, and writing it again changes nothing). Returns the addresses whose
 * suppressions changed.
 */
export async function writeBatch(
  env: Env,
  bodies: QueueMessage[],
  /** Filled with the events this batch inserted (first arrivals), for the webhook fan-out. */
  inserted?: StoredEvent[],
): Promise<AddressRef[]> {
  const { groups, routes } = await groupByShard(
    env,
    bodies.map((body) => ({ body })),
  );
  const settled = await Promise.allSettled(
    groups.map((group) =>
      writeShard(
        env,
        group,
        routes,
        group.items.map((i) => i.body),
        inserted,
        true,
      ),
    ),
  );
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.flatMap((s) => (s as PromiseFulfilledResult<AddressRef[]>).value);
}

/**
 * Writes one shard's messages in one D1 transaction. A suppression an event causes lives on the
 * account's home shard (SPEC §17): on this shard it is written in the same transaction; for a
 * striped account whose home is another shard, right after, for the events this write stored
 * first (or, on a retry, found stored: an earlier attempt may have stopped between the two).
 */
async function writeShard(
  env: Env,
  group: { shard: number; db: D1Database },
  routes: Map<string, AccountShards>,
  bodies: QueueMessage[],
  inserted: StoredEvent[] | undefined,
  retried: boolean,
): Promise<AddressRef[]> {
  const { db, shard } = group;
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
  const moving = await whileMoving(env, shard, routes, arrived, registrations);
  const bursts = await findClickBursts(
    db,
    arrived.filter((e) => !moving.stored.has(`${e.event.account_id}\u0000${e.event.id}`)),
  );
  const events = bursts.kept;
  const statements: D1PreparedStatement[] = [];

  for (const chunk of chunkByJsonSize([...registrations.map(registrationRow), ...moving.registrations])) {
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
  const homeOf = (accountId: string) => routes.get(accountId)?.home ?? shard;
  const local = suppressing.filter((e) => homeOf(e.event.account_id) === shard);
  const remote = suppressing.filter((e) => homeOf(e.event.account_id) !== shard);
  const suppressionRows = local.map((e) => ({
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
  if (local.length > 0) {
    const created = await Promise.all(
      local.map(async (e) => ({
        accountId: e.event.account_id,
        email: e.event.recipient,
        topic: e.suppress?.inherit_topic === true ? null : topicColumn(e.suppress?.topic ?? null),
        suppressedAt: e.event.occurred_at,
        changeId: await createdChangeId(e.event.account_id, e.event.id),
      })),
    );
    statements.push(recordCreated(db, created, Date.now()));
  }
  const touched = local.map((e) => ({ accountId: e.event.account_id, email: e.event.recipient }));
  // The mirror's journal, in the same transaction: the KV write below may fail, never silently.
  if (touched.length > 0) statements.push(markPending(db, touched, Date.now()));

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
  const learnedDomains = arrived.flatMap((e) =>
    e.mailbox_provider
      ? [{ domain: domainOf(e.event.recipient) ?? "", provider: e.mailbox_provider }].filter((l) => l.domain)
      : [],
  );
  const learned = learnProvidersStatement(db, learnedDomains, Date.now());
  if (learned) statements.push(learned);

  // The soft_bounce rule (SPEC §10), after the events: addresses with a transient bounce in this
  // batch. An account read from this shard alone has its outcomes and its entries here, and is ruled
  // on in this transaction; one whose outcomes span shards (striped, or moving) right after it.
  const transient = new Map<string, [string, string]>();
  const transientElsewhere = new Map<string, [string, string]>();
  for (const e of events) {
    if (
      e.event.type === "email.bounced" &&
      e.event.bounce_type === "transient" &&
      !isSimulatorAddress(e.event.recipient)
    ) {
      const read = routes.get(e.event.account_id)?.read ?? [shard];
      const here = read.length === 1 && read[0] === shard;
      (here ? transient : transientElsewhere).set(`${e.event.account_id}\u0000${e.event.recipient}`, [
        e.event.account_id,
        e.event.recipient,
      ]);
    }
  }
  const softAt = statements.length + 2;
  if (transient.size > 0) statements.push(...softBounceStatements(db, [...transient.values()], Date.now()));

  const stored: StoredEvent[] = [];
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
    for (const i of insertAt)
      for (const e of (results[i]?.results ?? []) as StoredEvent[]) stored.push({ ...e, shard });
    if (transient.size > 0) {
      for (const r of (results[softAt]?.results ?? []) as { account_id: string; email: string }[])
        touched.push({ accountId: r.account_id, email: r.email });
    }
  }
  inserted?.push(...stored);
  if (learnedDomains.length > 0) await learnOnOtherShards(env, shard, learnedDomains);
  if (remote.length > 0) touched.push(...(await suppressOnHome(env, db, routes, remote, stored, retried)));
  if (transientElsewhere.size > 0)
    touched.push(...(await softBounceAcross(env, routes, [...transientElsewhere.values()])));
  return touched;
}

/**
 * A recipient domain's mailbox provider is a fact about the domain, not the account (db/mailbox-
 * domains.ts): every event shard keeps the table, so that metrics attribute a domain the same way
 * whichever shard an account lives on (SPEC §17). This shard learned it in its transaction; the
 * others get the same upsert (which writes only a new or moved domain). A failure is logged, not
 * retried: the domain's next report teaches it again.
 */
async function learnOnOtherShards(
  env: Env,
  shard: number,
  learned: Parameters<typeof learnProvidersStatement>[1],
): Promise<void> {
  const now = Date.now();
  const settled = await Promise.allSettled(
    boundShards(env)
      .filter((i) => i !== shard)
      .map((i) => learnProvidersStatement(shardDb(env, i), learned, now)?.run()),
  );
  const failed = settled.find((r): r is PromiseRejectedResult => r.status === "rejected");
  if (failed) log("warn", "mailbox providers not learned on every shard", describeError(failed.reason));
}

/**
 * An account being moved (SPEC §17) writes to its new shards while older rows stay on the previous
 * ones. Two things of an email can sit on the other side: its events (a redelivery must not store
 * one again) and its registration (later events must still be enriched). For the batch's events of
 * such accounts: the ids already stored on a previous shard, and the registrations found there, to be
 * written here too (one row per email, so the email's enrichment joins stay on one database).
 */
async function whileMoving(
  env: Env,
  shard: number,
  routes: Map<string, AccountShards>,
  arrived: EventMessage[],
  registrations: RegisterMessage[],
): Promise<{ stored: Set<string>; registrations: Record<string, unknown>[] }> {
  const stored = new Set<string>();
  const carried: Record<string, unknown>[] = [];
  const byAccount = new Map<string, EventMessage[]>();
  for (const e of arrived) {
    if ((routes.get(e.event.account_id)?.previous.length ?? 0) > 0)
      byAccount.set(e.event.account_id, [...(byAccount.get(e.event.account_id) ?? []), e]);
  }
  for (const [accountId, list] of byAccount) {
    const route = routes.get(accountId);
    const registered = new Set(
      registrations.filter((r) => r.account_id === accountId).map((r) => r.message.email_id),
    );
    const others = (route?.read ?? []).filter((i) => i !== shard);
    const found = await Promise.all(
      others.map(async (other) => {
        const otherDb = shardDb(env, other);
        const [events, regs] = await Promise.all([
          eventsByKey(
            otherDb,
            list.map((m) => m.event),
          ),
          registrationsOf(
            otherDb,
            accountId,
            list.map((m) => m.event.email_id).filter((id) => !registered.has(id)),
          ),
        ]);
        return { events, regs };
      }),
    );
    const seenEmails = new Set<string>();
    for (const { events, regs } of found) {
      for (const e of events) stored.add(`${e.account_id}\u0000${e.id}`);
      for (const r of regs) {
        if (seenEmails.has(String(r.email_id))) continue;
        seenEmails.add(String(r.email_id));
        carried.push(r);
      }
    }
  }
  return { stored, registrations: carried };
}

/** The suppressions of a striped account's events, written on its home shard (see writeShard). */
async function suppressOnHome(
  env: Env,
  db: D1Database,
  routes: Map<string, AccountShards>,
  remote: EventMessage[],
  stored: StoredEvent[],
  retried: boolean,
): Promise<AddressRef[]> {
  const key = (accountId: string, id: string) => `${accountId}\u0000${id}`;
  const found = new Map(stored.map((e) => [key(e.account_id, e.id), e]));
  if (retried) {
    for (const e of await eventsByKey(
      db,
      remote.map((m) => m.event),
    ))
      found.set(key(e.account_id, e.id), e);
  }
  const byHome = new Map<number, { row: SuppressionWrite; eventId: string }[]>();
  for (const m of remote) {
    const event = found.get(key(m.event.account_id, m.event.id));
    if (!event || !m.suppress) continue;
    const home = routes.get(m.event.account_id)?.home;
    if (home === undefined) continue;
    const topic = m.suppress.topic ?? (m.suppress.inherit_topic ? event.topic : null);
    const list = byHome.get(home) ?? [];
    list.push({
      row: {
        account_id: m.event.account_id,
        email: m.event.recipient,
        topic: topicColumn(topic ?? null),
        reason: m.suppress.reason,
        email_id: m.event.email_id,
        suppressed_at: m.event.occurred_at,
      },
      eventId: m.event.id,
    });
    byHome.set(home, list);
  }
  const touched: AddressRef[] = [];
  for (const [home, list] of byHome) {
    const homeDb = shardDb(env, home);
    const rows = list.map((l) => l.row);
    const refs = rows.map((r) => ({ accountId: r.account_id, email: r.email }));
    const now = Date.now();
    // The change id derives from the event, as on the event's own shard: a retry records nothing new.
    const created = await Promise.all(
      list.map(async ({ row, eventId }) => ({
        accountId: row.account_id,
        email: row.email,
        topic: row.topic,
        suppressedAt: row.suppressed_at,
        changeId: await createdChangeId(row.account_id, eventId),
      })),
    );
    // The entries, their suppression.created (SPEC §14) and the journal row: one transaction on home.
    await homeDb.batch([
      insertSuppressions(homeDb, rows),
      recordCreated(homeDb, created, now),
      markPending(homeDb, refs, now),
    ]);
    touched.push(...refs);
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
 * writeShard, retrying nothing itself: a burst conflict takes that group's messages out (returned in
 * `conflicted`, for the caller to retry) and writes the rest again, at most MAX_CONFLICT_ROUNDS times.
 */
const MAX_CONFLICT_ROUNDS = 4;
async function writeShardApartFromConflicts(
  env: Env,
  group: { shard: number; db: D1Database },
  routes: Map<string, AccountShards>,
  bodies: QueueMessage[],
  inserted: StoredEvent[],
  retried: boolean,
): Promise<{ touched: AddressRef[]; conflicted: Set<QueueMessage> }> {
  const conflicted = new Set<QueueMessage>();
  let remaining = bodies;
  for (let round = 0; ; round++) {
    try {
      const touched =
        remaining.length > 0 ? await writeShard(env, group, routes, remaining, inserted, retried) : [];
      return { touched, conflicted };
    } catch (err) {
      if (!(err instanceof BurstConflict) || round >= MAX_CONFLICT_ROUNDS) throw err;
      for (const m of err.messages) conflicted.add(m);
      remaining = remaining.filter((m) => !conflicted.has(m));
    }
  }
}

/**
 * The soft_bounce rule (SPEC §10) for addresses of accounts whose events span shards (striped, or
 * moving): each shard the account is read from answers its newest outcomes of the address, the rule
 * runs on them merged, and a new entry is written on the account's home shard with its change
 * record and journal row (softBounceEntryStatements, guarded as in the one-shard case).
 */
async function softBounceAcross(
  env: Env,
  routes: Map<string, AccountShards>,
  addresses: [string, string][],
): Promise<AddressRef[]> {
  const now = Date.now();
  const shards = new Set<number>();
  for (const [accountId] of addresses) for (const i of routes.get(accountId)?.read ?? []) shards.add(i);
  const outcomes = (
    await Promise.all(
      [...shards].map((i) =>
        recentOutcomes(
          shardDb(env, i),
          addresses.filter(([accountId]) => routes.get(accountId)?.read.includes(i)),
          { run: SOFT_BOUNCE_RUN, windowMs: SOFT_BOUNCE_WINDOW_MS, now },
        ),
      ),
    )
  ).flat();
  const candidates = softBounceCandidates(outcomes, now);
  const byHome = new Map<number, typeof candidates>();
  for (const c of candidates) {
    const home = routes.get(c.account_id)?.home;
    if (home === undefined) continue;
    byHome.set(home, [...(byHome.get(home) ?? []), c]);
  }
  const touched: AddressRef[] = [];
  for (const [home, list] of byHome) {
    const homeDb = shardDb(env, home);
    const results = await homeDb.batch(softBounceEntryStatements(homeDb, list, now));
    for (const r of (results[2]?.results ?? []) as { account_id: string; email: string }[])
      touched.push({ accountId: r.account_id, email: r.email });
  }
  return touched;
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
