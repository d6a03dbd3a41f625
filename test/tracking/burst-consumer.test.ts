/**
 * Scanner bursts end to end in workerd: clicks served by the real /c route (classified at the edge,
 * queued with their network), then written by the real queue consumer into local D1, then read back
 * through GET /v1/events. Nothing is mocked.
 */
import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import type { EventMessage, QueueMessage } from "../../src/pipeline/messages";
import { handleEventsBatch, writeBatch } from "../../src/queue/consumer";
import { findClickBursts, storedClickRecord } from "../../src/tracking/burst-store";
import { BURST_MARK_RETENTION_MS } from "../../src/tracking/bursts";
import { consume, freshAccount } from "../helpers";
import { CHROME_UA, eventsOf, serve, tokenFor, trackingRequest } from "./support";

const MICROSOFT = { asn: 8075, asOrganization: "Microsoft Corporation", country: "US" };
const AMAZON = { asn: 16509, asOrganization: "Amazon.com, Inc.", country: "US" };
const COMCAST = { asn: 7922, asOrganization: "Comcast Cable Communications, LLC", country: "US" };
const LINKS = ["https://shop.example.com/a", "https://shop.example.com/b", "https://shop.example.com/c"];

/** Serves one click through the real route and returns what it queued (one event message). */
async function click(
  account: string,
  url: string,
  cf: Record<string, unknown>,
  options: { issuedSecondsAgo?: number; ip?: string; recipient?: string } = {},
): Promise<EventMessage> {
  const token = await tokenFor("click", {
    account_id: account,
    url,
    ...(options.recipient ? { recipient: options.recipient } : {}),
    issued_at: Math.floor(Date.now() / 1000) - (options.issuedSecondsAgo ?? 3600),
  });
  const { res, queued } = await serve(trackingRequest(`/c/${token}`, { cf, ip: options.ip ?? "52.1.2.3" }));
  expect(res.status).toBe(302);
  expect(queued).toHaveLength(1);
  return queued[0] as EventMessage;
}

/** The same message, as if it had been requested `ms` later. */
const shifted = (m: EventMessage, ms: number): EventMessage => ({
  ...m,
  event: { ...m.event, occurred_at: m.event.occurred_at + ms },
});

const marksOf = async (account: string) =>
  (
    await env.DB.prepare("SELECT id, network FROM click_bursts WHERE account_id = ? ORDER BY occurred_at")
      .bind(account)
      .all<{ id: string; network: string }>()
  ).results;

const clicksOf = async (account: string) =>
  (await eventsOf(account)).filter((e) => e.type === "email.clicked");

describe("scanner bursts in the events consumer (SPEC §5)", () => {
  it("2 links 0.6 s apart from one carrier ASN but two address prefixes: the stored click stays (finding 7)", async () => {
    const account = freshAccount();
    const first = shifted(await click(account, LINKS[0]!, COMCAST, { ip: "73.1.2.3" }), -5000);
    await consume([first]);
    expect(await clicksOf(account)).toHaveLength(1);
    // Someone else behind the same carrier clicks another link of the same message 0.6 s later.
    const second = shifted(await click(account, LINKS[1]!, COMCAST, { ip: "98.7.6.5" }), 0);
    const moved = { ...second, event: { ...second.event, occurred_at: first.event.occurred_at + 600 } };
    await consume([moved]);
    expect((await clicksOf(account)).map((e) => e.tracking.url).sort()).toEqual([LINKS[0], LINKS[1]]);
    expect(await marksOf(account)).toEqual([]);
  });

  it("a stored click more than 5 s before a later sweep is never deleted (finding 7)", async () => {
    const account = freshAccount();
    const person = shifted(await click(account, LINKS[0]!, AMAZON, { ip: "52.1.2.1" }), -30_000);
    await consume([person]);
    // A chained sweep from the same network reaches back to it: 1.8 s steps, arriving 5.4 s later.
    const t = person.event.occurred_at;
    const sweep = [];
    for (const [i, url] of ["https://shop.example.com/x", LINKS[1]!, LINKS[2]!].entries()) {
      const m = await click(account, url, AMAZON, { ip: "52.1.2.1" });
      sweep.push({ ...m, event: { ...m.event, occurred_at: t + 1800 * (i + 1) } });
    }
    await consume(sweep.slice(0, 1));
    await consume(sweep.slice(1));
    const kept = await clicksOf(account);
    expect(kept.map((e) => e.tracking.url)).toContain(LINKS[0]);
  });

  it("3 links in 1 s from one network: none recorded", async () => {
    const account = freshAccount();
    const burst = [];
    for (const [i, url] of LINKS.entries()) {
      // A cloud network a person could also browse from: the classifier records each click alone.
      burst.push(shifted(await click(account, url, AMAZON, { ip: `52.1.2.${i + 1}` }), 0));
    }
    expect(burst.map((m) => m.network)).toEqual(["as16509", "as16509", "as16509"]);
    const spread = burst.map((m) => m.event.occurred_at);
    expect(Math.max(...spread) - Math.min(...spread)).toBeLessThan(1000);
    const result = await consume(burst);
    expect(result.explicitAcks).toHaveLength(3);
    expect(await clicksOf(account)).toEqual([]);
    expect(await marksOf(account)).toHaveLength(3);
  });

  it("2 links 20 s apart: both recorded, with nothing of the network in the public event", async () => {
    const account = freshAccount();
    const first = shifted(await click(account, LINKS[0]!, COMCAST, { ip: "73.1.2.3" }), -20_000);
    const second = await click(account, LINKS[1]!, COMCAST, { ip: "73.1.2.3" });
    await consume([first, second]);
    const stored = await clicksOf(account);
    expect(stored.map((e) => e.tracking.url).sort()).toEqual([LINKS[0], LINKS[1]]);
    for (const e of stored) {
      expect(e).not.toHaveProperty("network");
      expect(Object.keys(e.tracking).sort()).toEqual([
        "bot",
        "geo",
        "ip_address",
        "link_name",
        "url",
        "user_agent",
      ]);
    }
    expect(await marksOf(account)).toEqual([]);
  });

  it("one click 5 s after send from a person's network: recorded", async () => {
    const account = freshAccount();
    const m = await click(account, LINKS[0]!, COMCAST, { issuedSecondsAgo: 5, ip: "73.1.2.3" });
    await consume([m]);
    expect(await clicksOf(account)).toHaveLength(1);
    // The same click 5 s after send from Microsoft's network is a Safe Links detonation, dropped at the edge.
    const token = await tokenFor("click", {
      account_id: account,
      url: LINKS[1]!,
      issued_at: Math.floor(Date.now() / 1000) - 5,
    });
    const { queued } = await serve(trackingRequest(`/c/${token}`, { cf: MICROSOFT, userAgent: CHROME_UA }));
    expect(queued).toEqual([]);
  });

  it.each([
    ["first click alone, then the other two", 1],
    ["two clicks, then the third", 2],
  ])("a burst split across two consumer batches (%s): none left", async (_name, cut) => {
    const account = freshAccount();
    const burst: EventMessage[] = [];
    for (const [i, url] of LINKS.entries()) {
      burst.push(shifted(await click(account, url, AMAZON, { ip: `52.1.9.${i}` }), i * 300));
    }
    await consume(burst.slice(0, cut));
    expect(await clicksOf(account)).toHaveLength(cut === 1 ? 1 : 0); // one click alone is a person's, so far
    await consume(burst.slice(cut));
    expect(await clicksOf(account)).toEqual([]);
    expect(await marksOf(account)).toHaveLength(3);
    // Redelivering the first batch brings nothing back.
    await consume(burst.slice(0, cut), 2);
    expect(await clicksOf(account)).toEqual([]);
    // The raw table agrees with the API.
    const raw = await env.DB.prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
      .bind(account)
      .first<{ n: number }>();
    expect(raw?.n).toBe(0);
  });

  it("a person's click of the same message an hour after a burst, from home, is recorded", async () => {
    const account = freshAccount();
    // A cloud network without a rule of its own, sweeping every link 30 s after the send.
    const cloud: EventMessage[] = [];
    for (const url of LINKS) cloud.push(shifted(await click(account, url, AMAZON), -3_600_000));
    const person = await click(account, LINKS[1]!, COMCAST, { ip: "73.9.9.9" });
    await consume([...cloud, person]);
    const stored = await clicksOf(account);
    expect(stored).toHaveLength(1);
    expect(stored[0]).toMatchObject({ tracking: { url: LINKS[1], ip_address: "73.9.9.9" } });
  });

  it("bursts are per recipient and per message: other recipients' clicks are untouched", async () => {
    const account = freshAccount();
    const messages: EventMessage[] = [];
    for (const [i, url] of LINKS.entries()) {
      messages.push(await click(account, url, AMAZON, { recipient: `r${i}@example.com` }));
    }
    await consume(messages);
    expect(await clicksOf(account)).toHaveLength(3);
  });

  it("leaves every other event of the batch alone, and a batch without clicks reads nothing", async () => {
    const account = freshAccount();
    const burst: EventMessage[] = [];
    for (const url of LINKS) burst.push(await click(account, url, AMAZON));
    const open = {
      ...burst[0]!,
      event: { ...burst[0]!.event, id: `evt_open${Date.now().toString(16)}`, type: "email.opened" as const },
    };
    delete (open as { network?: unknown }).network;
    await consume([...burst, open]);
    expect((await eventsOf(account)).map((e) => e.type)).toEqual(["email.opened"]);

    const reads: string[] = [];
    const db = new Proxy(env.DB, {
      get(target, prop) {
        reads.push(String(prop));
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const plan = await findClickBursts(db, [open as QueueMessage as EventMessage]);
    expect(reads).toEqual([]);
    expect(plan.kept).toHaveLength(1);
  });

  it("names the dropped and removed clicks, for rollups and fan-out to reverse", async () => {
    const account = freshAccount();
    const burst: EventMessage[] = [];
    for (const [i, url] of LINKS.entries()) burst.push(shifted(await click(account, url, AMAZON), i * 200));
    await consume(burst.slice(0, 1));
    const plan = await findClickBursts(env.DB, burst.slice(1));
    expect(plan.kept).toEqual([]);
    expect(plan.dropped).toEqual(burst.slice(1));
    expect(plan.removed).toHaveLength(1);
    expect(plan.removed[0]).toMatchObject({
      account_id: account,
      id: burst[0]!.event.id,
      type: "email.clicked",
      network: "as16509",
    });
    expect(plan.statements).toHaveLength(3); // the guard, the deletion, the marks
    // The removed row converts back to the record it was written from, for a metrics reversal.
    const { network: _network, ...written } = burst[0]!;
    expect(storedClickRecord(plan.removed[0]!)).toEqual({ ...written.event });
  });

  it("a concurrent batch that drops part of the burst between the read and the write: the write fails and the retry drops the rest", async () => {
    const account = freshAccount();
    const burst: EventMessage[] = [];
    for (const [i, url] of LINKS.entries()) burst.push(shifted(await click(account, url, AMAZON), i * 300));
    const [c1, c2, c3] = burst as [EventMessage, EventMessage, EventMessage];
    // Batch B ([c3]) reads first; batch A ([c1, c2], a burst on its own) commits before B writes.
    let batches = 0;
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "batch") {
          return async (statements: D1PreparedStatement[]) => {
            batches += 1;
            if (batches === 2) await consume([c1, c2]);
            return target.batch(statements);
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    await expect(writeBatch({ ...(env as unknown as Env), DB: db }, [c3])).rejects.toThrow();
    expect(batches).toBe(2);
    expect(await clicksOf(account)).toEqual([]);
    // The consumer retries B; it now sees A's marks.
    await consume([c3], 2);
    expect(await clicksOf(account)).toEqual([]);
    expect(await marksOf(account)).toHaveLength(3);
  });

  it("a conflict on one recipient's clicks retries that group only: the rest of the batch is written (SPEC §18)", async () => {
    const account = freshAccount();
    const burst: EventMessage[] = [];
    for (const [i, url] of LINKS.entries()) burst.push(shifted(await click(account, url, AMAZON), i * 300));
    const [c1, c2, c3] = burst as [EventMessage, EventMessage, EventMessage];
    // An unrelated account's bounce shares the batch with c3.
    const other = freshAccount();
    const bounce: EventMessage = {
      type: "event",
      event: {
        ...c3.event,
        id: `evt_bounce${Date.now().toString(16)}`,
        account_id: other,
        occurred_at: Date.now() - 10_000,
        type: "email.bounced",
        tracking: null,
      },
    };
    let batches = 0;
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "batch") {
          return async (statements: D1PreparedStatement[]) => {
            batches += 1;
            // Between this batch's read and its write, another batch drops c1 and c2 as a burst.
            if (batches === 2) await consume([c1, c2]);
            return target.batch(statements);
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const batch = createMessageBatch<unknown>("mailtrail-events", [
      { id: "conflict-c3", timestamp: new Date(), attempts: 1, body: c3 },
      { id: "conflict-bounce", timestamp: new Date(), attempts: 1, body: bounce },
    ]);
    const ctx = createExecutionContext();
    await handleEventsBatch(batch, { ...(env as unknown as Env), DB: db });
    const result = await getQueueResult(batch, ctx);
    expect(result.explicitAcks).toEqual(["conflict-bounce"]);
    expect(result.retryMessages.map((m: { msgId: string }) => m.msgId)).toEqual(["conflict-c3"]);
    expect((await eventsOf(other)).map((e) => e.type)).toEqual(["email.bounced"]);
    // The retried click meets the other batch's marks and is dropped with its burst.
    await consume([c3], 2);
    expect(await clicksOf(account)).toEqual([]);
  });

  it("the scheduled purge deletes marks older than their retention only", async () => {
    const account = freshAccount();
    const burst: EventMessage[] = [];
    for (const url of LINKS) burst.push(await click(account, url, AMAZON));
    const old = burst.map((m) => shifted(m, -BURST_MARK_RETENTION_MS - 60_000));
    await consume(old);
    const fresh = freshAccount();
    const recent: EventMessage[] = [];
    for (const url of LINKS) recent.push(await click(fresh, url, AMAZON));
    await consume(recent);
    expect(await marksOf(account)).toHaveLength(3);
    const { purgeBurstMarks } = await import("../../src/tracking/burst-store");
    await purgeBurstMarks(env.DB, Date.now(), { chunk: 2 });
    expect(await marksOf(account)).toEqual([]);
    expect(await marksOf(fresh)).toHaveLength(3);
  });
});

describe("what burst detection costs the consumer", () => {
  it("reads a handful of rows per click, through the email index, and none for batches without clicks", async () => {
    const account = freshAccount();
    // 100 recipients, one email each, with a send's worth of history: sent, delivered, an open, a click.
    const history: QueueMessage[] = [];
    const clicks: EventMessage[] = [];
    const now = Date.now();
    for (let i = 0; i < 100; i += 1) {
      const email_id = `email_cost_${i}`;
      const recipient = `c${i}@example.com`;
      for (const [type, ago] of [
        ["email.sent", 600_000],
        ["email.delivered", 590_000],
        ["email.opened", 300_000],
      ] as const) {
        history.push({
          type: "event",
          event: {
            ...clicksTemplate(account, email_id, recipient),
            id: `evt_${type.slice(6)}${i}x0000`,
            type,
            occurred_at: now - ago,
            tracking: null,
          },
        });
      }
      const earlier = clicksTemplate(account, email_id, recipient);
      history.push({ type: "event", network: "as7922", event: { ...earlier, occurred_at: now - 120_000 } });
      clicks.push({
        type: "event",
        network: "as7922",
        event: { ...clicksTemplate(account, email_id, recipient), occurred_at: now },
      });
    }
    await consume(history);
    const meta: { rows_read?: number }[] = [];
    const db = new Proxy(env.DB, {
      get(target, prop) {
        if (prop === "batch") {
          return async (statements: D1PreparedStatement[]) => {
            const results = await target.batch(statements);
            for (const r of results) meta.push(r.meta);
            return results;
          };
        }
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const plan = await findClickBursts(db, clicks);
    expect(plan.kept).toHaveLength(100);
    const rowsRead = meta.reduce((sum, m) => sum + (m.rows_read ?? 0), 0);
    // Each click's email holds 4 events in the window (3 of history and the earlier click).
    // About 8: the 4 events, plus the JSON parameter unpacked once per read.
    expect(rowsRead / clicks.length).toBeLessThanOrEqual(10);
    // The guard reads the same again at the start of the write.
    meta.length = 0;
    await db.batch(plan.statements);
    const guardRead = meta.reduce((sum, m) => sum + (m.rows_read ?? 0), 0);
    expect(guardRead / clicks.length).toBeLessThanOrEqual(10);
    console.log(`burst detection read ${rowsRead} + ${guardRead} rows for ${clicks.length} clicks`);
  });
});

function clicksTemplate(account: string, email_id: string, recipient: string) {
  return {
    id: `evt_${crypto.randomUUID().replaceAll("-", "")}`,
    account_id: account,
    type: "email.clicked" as const,
    occurred_at: Date.now(),
    email_id,
    message_id: null,
    from: null,
    from_domain: null,
    recipient,
    subject: null,
    topic: null,
    campaign: null,
    template_id: null,
    tags: [],
    smtp_code: null,
    smtp_response: null,
    bounce_type: null,
    bounce_classification: null,
    complaint_type: null,
    attempt: null,
    tracking: {
      user_agent: "Mozilla/5.0 (X11)",
      ip_address: "73.1.2.3",
      url: `https://shop.example.com/${email_id}`,
      link_name: null,
      geo: null,
      bot: null,
    },
  };
}
