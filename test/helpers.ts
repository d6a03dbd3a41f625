import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { SignJWT } from "jose";
import { config } from "../src/config";
import { HOUR_ROLLUP_MS } from "../src/db/metrics";
import { blankEvent, type EventRecord } from "../src/events/record";
import worker from "../src/index";
import { uniqueEventId } from "../src/lib/ids";
import type { QueueMessage, SuppressEffect } from "../src/pipeline/messages";
import { rendezvousShard } from "../src/shards/hash";
import { COUNTER_OF_TYPE } from "../src/store";

export const BASE = "https://mailtrail.test";

let accountSeq = 0;
/** A fresh account id per test, so tests sharing a file's storage never see each other's rows. */
export function freshAccount(prefix = "acct"): string {
  accountSeq += 1;
  return `${prefix}_${Date.now().toString(36)}${accountSeq}${Math.random().toString(36).slice(2, 6)}`;
}

export async function mintToken(
  sub: string,
  scope: string,
  options: { expiresIn?: string | number; secret?: string; claims?: Record<string, unknown> } = {},
): Promise<string> {
  return new SignJWT({ scope, ...options.claims })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(options.expiresIn ?? "10m")
    .sign(new TextEncoder().encode(options.secret ?? env.JWT_SECRET));
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  rawBody?: BodyInit;
}

/** A request to the Worker's fetch handler, in the same isolate. */
export async function call(method: string, path: string, options: CallOptions = {}): Promise<Response> {
  const headers = new Headers(options.headers);
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  let body: BodyInit | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  return (exports as unknown as { default: Fetcher }).default.fetch(
    new Request(`${BASE}${path}`, { method, headers, body }),
  );
}

export async function json<T = Record<string, any>>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

let batchSeq = 0;
/** Runs the queue consumer on these messages, as the Queues runtime would deliver them. */
export async function consume(messages: unknown[], attempts = 1, queue = "mailtrail-events") {
  batchSeq += 1;
  const batch = createMessageBatch<unknown>(
    queue,
    messages.map((body, i) => ({ id: `msg-${batchSeq}-${i}`, timestamp: new Date(), attempts, body })),
  );
  const ctx = createExecutionContext();
  await worker.queue(batch, env, ctx);
  return getQueueResult(batch, ctx);
}

export function event(overrides: Partial<EventRecord> & Pick<EventRecord, "account_id">): EventRecord {
  return {
    ...blankEvent({
      id: uniqueEventId(),
      account_id: overrides.account_id,
      type: "email.delivered",
      occurred_at: Date.now() - 60_000,
      email_id: "email_00000000-0000-0000-0000-000000000000",
      recipient: "user@example.com",
    }),
    ...overrides,
  };
}

export const eventMessage = (e: EventRecord, suppress?: SuppressEffect): QueueMessage =>
  suppress ? { type: "event", event: e, suppress } : { type: "event", event: e };

/**
 * The event shard of an account without a placement (SPEC §17): where its events, registrations,
 * rollups, deliveries and suppressions are. For tests that look at rows directly.
 */
export function eventsDb(accountId: string): D1Database {
  const db = env[eventsBindingOf(accountId)];
  if (!db) throw new Error(`${eventsBindingOf(accountId)} is not bound in tests`);
  return db;
}

/** The binding name of that shard (`EVENTS_2`), for a test that wraps it. */
export const eventsBindingOf = (accountId: string): `EVENTS_${number}` =>
  `EVENTS_${rendezvousShard(accountId, config(env, "EVENT_SHARDS"))}`;

/** Every bound event shard: a test that makes "D1" fail for any account does it on all of them. */
export function eventShards(): D1Database[] {
  return Object.entries(env)
    .filter(([name]) => /^EVENTS_\d+$/.test(name))
    .map(([, db]) => db as D1Database);
}

/** Runs `sql` on every event shard (a D1 outage simulated by renaming a table, and its repair). */
export async function execOnShards(sql: string): Promise<void> {
  for (const db of eventShards()) await db.exec(sql);
}

/**
 * The hourly account totals (metric_rollups_hour) of events a test inserted straight into D1, by
 * type, as the consumer would have written them beside the events: totals and offset pages that
 * only filter by type read them (src/store/hour-totals.ts). Replaces the account's hours on `db`.
 */
export async function rollUpHours(db: D1Database, accountId: string): Promise<void> {
  const counters = Object.entries(COUNTER_OF_TYPE);
  await db.batch([
    db.prepare("DELETE FROM metric_rollups_hour WHERE account_id = ?").bind(accountId),
    db
      .prepare(
        `INSERT INTO metric_rollups_hour (account_id, bucket, ${counters.map(([, c]) => c).join(", ")})
         SELECT account_id, occurred_at - occurred_at % ${HOUR_ROLLUP_MS},
                ${counters.map(([type]) => `SUM(type = '${type}')`).join(", ")}
         FROM events WHERE account_id = ? GROUP BY 2`,
      )
      .bind(accountId),
  ]);
}
