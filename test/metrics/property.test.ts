import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { METRIC_COUNTERS, type MetricCounter } from "../../src/db/metrics";
import type { EventRecord } from "../../src/events/record";
import { parseQuery } from "../../src/lib/validate";
import { purgeExpiredRollups } from "../../src/metrics/purge-rollups";
import { metricsQuerySchema, ratesOf } from "../../src/metrics/query";
import { getMetrics } from "../../src/metrics/routes";
import type { QueueMessage } from "../../src/pipeline/messages";
import { purgeExpiredEvents } from "../../src/retention/purge";
import { removedEventsRollup } from "../../src/store";
import { consume, event, eventsDb, freshAccount } from "../helpers";
import {
  allEvents,
  countersOf,
  creditedIds,
  type EventJson,
  groupsOf,
  labelOf,
  labelOfBucket,
  mailboxProviderOf,
  rng,
} from "./support";

/**
 * The property of SPEC §15: within raw-event retention every counter equals what GET /v1/events
 * returns for the same window and filters, in every zone, interval and grouping. Random events of
 * every type arrive out of order, duplicated and redelivered, registrations before and after their
 * events; then some events are removed for good, and finally the purge removes every raw event
 * while the metrics stay.
 *
 * `now` is fixed (2026-04-05) so that the windows cross three DST changes: America/New_York
 * (2026-03-08), Europe/Berlin (2026-03-29) and Australia/Lord_Howe's half-hour shift (2026-04-05).
 */

const DAY = 86_400_000;
const NOW = Date.parse("2026-04-05T12:00:00.000Z");
const SEED = 20260405;
const ZONES = [
  "UTC",
  "America/New_York",
  "Europe/Berlin",
  "Asia/Kolkata",
  "Asia/Kathmandu",
  "Australia/Lord_Howe",
];
const INTERVALS = ["hour", "day", "week", "month"];
const GROUPS = [
  null,
  "campaign",
  "template_id",
  "topic",
  "domain",
  "recipient_domain",
  "mailbox_provider",
  "tag",
];
const DST_CHANGES = [
  Date.parse("2026-03-08T07:00:00Z"),
  Date.parse("2026-03-29T01:00:00Z"),
  Date.parse("2026-04-04T15:00:00Z"),
];
/** A company domain whose mail SES reports as handled by Microsoft 365. */
const HOSTED = "hosted-at-microsoft.example";
const iso = (t: number) => new Date(t).toISOString();

interface Email {
  email_id: string;
  campaign: string | null;
  template_id: string | null;
  topic: string | null;
  from_domain: string;
  tags: string[];
  recipients: string[];
  registration: "before" | "after" | "never";
}

function generate(account: string, seed: number): { messages: QueueMessage[]; late: QueueMessage[] } {
  const r = rng(seed);
  const messages: QueueMessage[] = [];
  const late: QueueMessage[] = [];
  let seq = 0;
  const id = () =>
    `evt_${seed.toString(36)}${(seq++).toString(36).padStart(6, "0")}${r.int(0, 1e6).toString(36)}`;
  for (let k = 0; k < 70; k++) {
    const email: Email = {
      email_id: `email_${account}_${k}`,
      campaign: r.pick(["spring", "summer", null]),
      template_id: r.pick(["tpl-a", "tpl-b", null]),
      topic: r.pick(["news", "billing", null]),
      from_domain: r.pick(["mail.acme.test", "news.acme.test"]),
      tags: ["vip", "eu", "us", "beta"].filter(() => r.chance(0.35)),
      recipients: Array.from(
        { length: r.int(1, 2) },
        (_, i) => `p${k}.${i}@${r.pick(["gmail.com", "yahoo.com", "corp.example", HOSTED])}`,
      ),
      registration: r.pick(["before", "before", "after", "never"] as const),
    };
    const registration: QueueMessage = {
      type: "register",
      account_id: account,
      registered_at: NOW - 29 * DAY,
      message: {
        email_id: email.email_id,
        message_id: null,
        from: `news@${email.from_domain}`,
        from_domain: email.from_domain,
        subject: "Hello",
        topic: email.topic,
        campaign: email.campaign,
        template_id: email.template_id,
        tags: email.tags,
      },
    };
    if (email.registration === "before") messages.push(registration);
    if (email.registration === "after") late.push(registration);
    // Sends cluster around the DST changes, the rest spread over four weeks.
    const t0 = r.chance(0.5)
      ? r.pick(DST_CHANGES) + r.int(-30, 30) * (r.chance(0.5) ? 60_000 : 3600_000) + r.int(0, 59_999)
      : NOW - r.int(2 * DAY, 28 * DAY);
    for (const recipient of email.recipients) {
      // Registered emails' events know only some dimensions themselves (tracking events know none).
      const own = email.registration === "never" ? 1 : r.chance(0.5) ? 0.5 : 0;
      const dims = () => ({
        campaign: r.chance(own) ? email.campaign : null,
        template_id: r.chance(own) ? email.template_id : null,
        topic: r.chance(own) ? email.topic : null,
        from_domain: r.chance(own) ? email.from_domain : null,
        from: null,
      });
      const add = (type: EventRecord["type"], at: number, extra: Partial<EventRecord> = {}) => {
        const e = event({
          account_id: account,
          id: id(),
          type,
          occurred_at: Math.min(NOW - 60_000, Math.floor(at)),
          email_id: email.email_id,
          recipient,
          ...dims(),
          ...extra,
        });
        // SES names Microsoft's servers on deliveries to HOSTED: the consumer learns the domain's provider.
        const learned = type === "email.delivered" && recipient.endsWith(`@${HOSTED}`);
        messages.push({
          type: "event",
          event: e,
          ...(learned ? { mailbox_provider: "microsoft" as const } : {}),
        });
        return e;
      };
      add("email.sent", t0);
      const fate = r.next();
      if (fate < 0.08) {
        add("email.bounced", t0 + 2000, {
          bounce_type: r.pick(["permanent", "transient", "undetermined"] as const),
          bounce_classification: "General",
        });
        continue;
      }
      if (fate < 0.1) {
        add("email.failed", t0 + 500);
        continue;
      }
      if (r.chance(0.2)) add("email.delayed", t0 + 60_000, { attempt: 1 });
      const delivered = t0 + r.int(1000, 20 * 60_000);
      add("email.delivered", delivered);
      if (r.chance(0.08)) add("email.complained", delivered + r.int(0, 6 * 3600_000));
      if (r.chance(0.08)) add("email.unsubscribed", delivered + r.int(0, DAY));
      if (r.chance(0.1)) {
        // A repeated suppression check: same id, later time; stored once.
        const s = add("email.suppressed", t0 - 1000);
        messages.push({ type: "event", event: { ...s, occurred_at: s.occurred_at + 5000 } });
      }
      let at = delivered + r.int(0, 3 * 3600_000);
      for (let o = r.int(0, 4); o > 0; o--) {
        const proxy = r.chance(0.4);
        add("email.opened", at, {
          tracking: {
            user_agent: proxy ? "Mozilla/5.0" : "Mozilla/5.0 (Macintosh)",
            ip_address: "203.0.113.9",
            url: null,
            link_name: null,
            geo: null,
            bot: proxy ? { kind: "proxy", source: r.pick(["apple", "google"]) } : null,
          },
        });
        if (r.chance(0.4)) {
          add("email.clicked", at + r.int(1000, 600_000), {
            tracking: {
              user_agent: "Mozilla/5.0 (Macintosh)",
              ip_address: "203.0.113.9",
              url: "https://acme.test/x",
              link_name: "cta",
              geo: null,
              bot: r.chance(0.2) ? { kind: "proxy", source: "microsoft" } : null,
            },
          });
        }
        at += r.int(60_000, 2 * DAY);
      }
    }
  }
  return { messages, late };
}

/** Shuffled, in batches of random sizes, some messages twice in a batch, some batches redelivered. */
async function deliver(messages: QueueMessage[], seed: number) {
  const r = rng(seed);
  const shuffled = [...messages];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = r.int(0, i);
    [shuffled[i], shuffled[j]] = [shuffled[j] as QueueMessage, shuffled[i] as QueueMessage];
  }
  for (let i = 0; i < shuffled.length; ) {
    const size = r.int(1, 40);
    const batch = shuffled.slice(i, i + size);
    if (r.chance(0.3) && batch.length > 0) batch.push(r.pick(batch));
    const result = await consume(batch);
    expect(result.retryMessages).toEqual([]);
    if (r.chance(0.2)) await consume(batch, 2);
    i += size;
  }
}

type Counters = Record<MetricCounter, number>;
const zero = (): Counters => Object.fromEntries(METRIC_COUNTERS.map((c) => [c, 0])) as Counters;
const add = (into: Counters, from: Counters) => {
  for (const c of METRIC_COUNTERS) into[c] += from[c];
};

interface Case {
  window: { start: number; end: number };
  filters: Record<string, string>;
  tz: string;
  interval: string;
  groupBy: string | null;
}

const params = (c: Case) =>
  new URLSearchParams({
    start: iso(c.window.start),
    end: iso(c.window.end),
    tz: c.tz,
    interval: c.interval,
    ...(c.groupBy ? { group_by: c.groupBy } : {}),
    ...c.filters,
  });

/** Asserts the metrics of a case against the events GET /v1/events returns for it. */
/** GET /v1/metrics as the route answers it (without the benchmark's rows_read). */
async function metricsOf(account: string, c: Case) {
  const { rowsRead: _rowsRead, ...metrics } = await getMetrics(
    env,
    account,
    parseQuery(metricsQuerySchema, params(c)),
    NOW,
  );
  return metrics;
}

async function check(
  account: string,
  c: Case,
  events: EventJson[],
  credited: Map<MetricCounter, Set<string>>,
) {
  const metrics = await metricsOf(account, c);
  const expected = new Map<string, Counters>();
  const totals = zero();
  for (const e of events) {
    const counters = countersOf(e, credited);
    add(totals, counters);
    for (const group of groupsOf(e, c.groupBy)) {
      const key = `${labelOf(e.occurred_at, c.tz, c.interval)} ${group}`;
      const entry = expected.get(key) ?? zero();
      add(entry, counters);
      expected.set(key, entry);
    }
  }
  const actual = new Map<string, Counters>();
  for (const { bucket, group, ...counters } of metrics.data) {
    const key = `${labelOfBucket(bucket, c.interval)} ${group}`;
    expect(actual.has(key), `bucket ${key} appears once`).toBe(false);
    actual.set(key, counters as Counters);
  }
  const what = `${JSON.stringify(c.filters)} ${c.tz} ${c.interval} ${c.groupBy} ${iso(c.window.start)}`;
  expect(Object.fromEntries(actual), what).toEqual(Object.fromEntries(expected));
  const { delivery_rate, bounce_rate, complaint_rate, open_rate, person_open_rate, click_rate, ...sums } =
    metrics.totals;
  expect(sums, what).toEqual(totals);
  expect({ delivery_rate, bounce_rate, complaint_rate, open_rate, person_open_rate, click_rate }).toEqual(
    ratesOf(totals),
  );
  // Ordered by bucket, then group.
  const order = metrics.data.map((d) => [Date.parse(d.bucket), d.group ?? ""] as const);
  expect(order).toEqual([...order].sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0)));
  return metrics;
}

const FULL = { start: NOW - 30 * DAY, end: NOW };
const WINDOWS = [
  FULL,
  { start: Date.parse("2026-03-07T05:00:00Z"), end: Date.parse("2026-03-09T05:00:00Z") },
  { start: Date.parse("2026-03-20T18:30:00Z"), end: Date.parse("2026-04-04T18:45:00Z") },
];
const FILTERS: Record<string, string>[] = [
  {},
  { campaign: "spring" },
  { tags: "vip,eu" },
  { topic: "news", domain: "mail.acme.test" },
  { template_id: "tpl-b" },
  { mailbox_provider: "microsoft" },
  { mailbox_provider: "google", campaign: "spring" },
];

function cases(seed: number, full: boolean): Case[] {
  const r = rng(seed);
  const out: Case[] = [];
  for (const window of WINDOWS) {
    for (const filters of FILTERS) {
      const exhaustive = full && window === FULL && Object.keys(filters).length === 0;
      for (const tz of ZONES)
        for (const interval of INTERVALS)
          for (const groupBy of GROUPS)
            if (exhaustive || r.chance(0.04)) out.push({ window, filters, tz, interval, groupBy });
    }
  }
  return out;
}

async function checkAll(account: string, list: Case[]) {
  const all = await allEvents(account, { start: iso(FULL.start), end: iso(FULL.end) }, NOW);
  const credited = creditedIds(all);
  const cache = new Map<string, EventJson[]>();
  const snapshots = [];
  for (const c of list) {
    const key = JSON.stringify([c.window, c.filters]);
    let events = cache.get(key);
    if (!events) {
      // GET /v1/events has no mailbox_provider filter: the events are filtered here by the same rule.
      const { mailbox_provider: provider, ...filters } = c.filters;
      events = (
        await allEvents(account, { start: iso(c.window.start), end: iso(c.window.end), ...filters }, NOW)
      ).filter((e) => provider === undefined || mailboxProviderOf(e.recipient) === provider);
      cache.set(key, events);
    }
    snapshots.push(await check(account, c, events, credited));
  }
  return { all, snapshots };
}

describe("GET /v1/metrics equals GET /v1/events (property)", () => {
  it("in every zone, interval, grouping and filter; through redelivery, removal and the purge", async () => {
    const account = freshAccount("metrics");
    const other = freshAccount("other");
    await env.DB.prepare("INSERT INTO accounts (id, plan, created_at, updated_at) VALUES (?, 'scale', 0, 0)")
      .bind(account)
      .run();

    const mine = generate(account, SEED);
    const theirs = generate(other, SEED + 1);
    await deliver([...mine.messages, ...theirs.messages], SEED);
    await deliver([...mine.late, ...theirs.late], SEED + 2); // registrations after their events: back-fill

    const list = cases(SEED, true);
    const { all, snapshots } = await checkAll(account, list);
    // The data covers what the property is about.
    const types = new Set(all.map((e) => e.type));
    expect(types.size).toBe(10);
    expect(all.length).toBeGreaterThan(350);
    expect(snapshots[0]?.totals.unique_opened).toBeLessThan(snapshots[0]?.totals.opened ?? 0);

    // Redelivery of everything, in another order, changes nothing.
    await deliver([...mine.messages, ...mine.late], SEED + 3);
    const again = await Promise.all(list.slice(0, 40).map((c) => metricsOf(account, c)));
    expect(again).toEqual(snapshots.slice(0, 40));

    // Events removed for good (e.g. scanner-burst clicks): their contribution goes, credits move.
    const r = rng(SEED + 4);
    const removable = all.filter((e) => e.type === "email.clicked" || e.type === "email.opened");
    const removed = removable.filter(() => r.chance(0.25));
    const keys = removed.map((e) => ({
      account_id: account,
      occurred_at: Date.parse(e.occurred_at),
      id: e.id,
    }));
    await eventsDb(account).batch([
      ...removedEventsRollup(eventsDb(account), keys),
      eventsDb(account)
        .prepare(
          `DELETE FROM events WHERE (account_id, occurred_at, id) IN
           (SELECT json_extract(value, '$.account_id'), json_extract(value, '$.occurred_at'), json_extract(value, '$.id') FROM json_each(?))`,
        )
        .bind(JSON.stringify(keys)),
    ]);
    const after = await checkAll(account, cases(SEED + 5, false).concat(list.slice(0, 30)));
    expect(after.all.length).toBe(all.length - removed.length);

    // The purge removes every raw event; the metrics stay, and so do the other account's.
    const kept = await Promise.all(list.map((c) => metricsOf(account, c)));
    const keptOther = await metricsOf(other, list[0] as Case);
    for (let run = 0; !(await purgeExpiredEvents(env, NOW + 60 * DAY)).complete; run++)
      expect(run).toBeLessThan(50);
    expect(await allEvents(account, { start: iso(FULL.start), end: iso(FULL.end) }, NOW)).toEqual([]);
    expect((await purgeExpiredRollups(env, NOW)).deleted).toBe(0);
    expect(await Promise.all(list.map((c) => metricsOf(account, c)))).toEqual(kept);
    expect(await metricsOf(other, list[0] as Case)).toEqual(keptOther);

    // 400 days on, the rollups go too.
    await purgeExpiredRollups(env, NOW + 431 * DAY);
    for (const table of [
      "metric_rollups",
      "metric_rollups_day",
      "metric_rollups_day_domains",
      "metric_rollups_hour",
      "rollup_folds",
      "link_rollups",
    ]) {
      const rows = await eventsDb(account)
        .prepare(`SELECT COUNT(*) AS n FROM ${table} WHERE account_id = ?`)
        .bind(account)
        .first<{ n: number }>();
      expect(rows?.n, table).toBe(0);
    }
  }, 240_000);
});
