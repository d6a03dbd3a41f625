import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { EventRecord } from "../src/events/record";
import { listEvents } from "../src/events/routes";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "./helpers";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function get(account: string, query: string, scope = "events:read") {
  const token = await mintToken(account, scope);
  const res = await call("GET", `/v1/events${query ? `?${query}` : ""}`, { token });
  return { res, body: await json(res) };
}

async function seed(records: EventRecord[]) {
  for (let i = 0; i < records.length; i += 100)
    await consume(records.slice(i, i + 100).map((e) => eventMessage(e)));
}

describe("GET /v1/events parameters", () => {
  it("returns every field of the event object, newest first, in the list shape", async () => {
    const account = freshAccount();
    const now = Date.now();
    await seed([
      event({ account_id: account, occurred_at: now - 2 * HOUR, type: "email.sent" }),
      event({
        account_id: account,
        occurred_at: now - HOUR,
        type: "email.bounced",
        bounce_type: "permanent",
        bounce_classification: "General",
        smtp_code: 550,
        smtp_response: "550 5.1.1 user unknown",
        from: "news@mail.example.com",
        from_domain: "mail.example.com",
      }),
    ]);
    const { res, body } = await get(account, "");
    expect(res.status).toBe(200);
    expect(body.object).toBe("list");
    expect(body.has_more).toBe(false);
    expect(body.next_cursor).toBeNull();
    expect(body.window.clamped).toBe(false);
    expect(body.data.map((e: { type: string }) => e.type)).toEqual(["email.bounced", "email.sent"]);
    expect(Object.keys(body.data[0]).sort()).toEqual(
      [
        "id",
        "object",
        "type",
        "occurred_at",
        "email_id",
        "message_id",
        "from",
        "from_domain",
        "recipient",
        "subject",
        "topic",
        "campaign",
        "template_id",
        "tags",
        "smtp_code",
        "smtp_response",
        "bounce_type",
        "bounce_classification",
        "complaint_type",
        "attempt",
        "tracking",
      ].sort(),
    );
    expect(body.data[0]).toMatchObject({
      object: "event",
      smtp_code: 550,
      bounce_type: "permanent",
      tags: [],
      tracking: null,
    });
  });

  it("applies each exact-match filter", async () => {
    const account = freshAccount();
    const now = Date.now();
    const base = { account_id: account, occurred_at: now - HOUR };
    const target = event({
      ...base,
      type: "email.clicked",
      recipient: "target@example.com",
      email_id: "email_target",
      message_id: "<target@mail>",
      topic: "alerts",
      template_id: "tpl-target",
      campaign: "Launch",
      from: "a@send.example.com",
      from_domain: "send.example.com",
      tags: ["vip", "beta"],
    });
    const noise = event({
      ...base,
      occurred_at: now - 2 * HOUR,
      recipient: "someone@elsewhere.example.org",
      from: "b@other.example.com",
      from_domain: "other.example.com",
    });
    await seed([target, noise]);
    const cases = [
      "event_type=email.clicked",
      "event_type=email.opened,email.clicked",
      "recipient=TARGET@Example.com",
      "email_id=email_target",
      "message_id=%3Ctarget%40mail%3E",
      "topic=alerts",
      "template_id=tpl-target",
      "campaign=Launch",
      "domain=send.example.com",
      "recipient_domain=EXAMPLE.com",
      "tags=nope,beta",
    ];
    for (const query of cases) {
      const { body } = await get(account, query);
      expect(
        body.data.map((e: { id: string }) => e.id),
        query,
      ).toEqual([target.id]);
    }
    // campaign is case-sensitive.
    expect((await get(account, "campaign=launch")).body.data).toEqual([]);
  });

  it("honours start, end (exclusive) and days", async () => {
    const account = freshAccount();
    const t = Date.now() - 10 * HOUR;
    const at = (h: number) => event({ account_id: account, occurred_at: t + h * HOUR });
    const [e0, e1, e2] = [at(0), at(1), at(2)];
    await seed([e0, e1, e2]);
    const iso = (ms: number) => new Date(ms).toISOString();
    const { body } = await get(account, `start=${iso(t)}&end=${iso(t + 2 * HOUR)}`);
    expect(body.data.map((e: { id: string }) => e.id)).toEqual([e1.id, e0.id]);
    expect(body.window).toEqual({ start: iso(t), end: iso(t + 2 * HOUR), clamped: false });
    expect((await get(account, "days=1")).body.data).toHaveLength(3);
    const old = event({ account_id: account, occurred_at: Date.now() - 30 * HOUR });
    await seed([old]);
    expect((await get(account, "")).body.data).toHaveLength(3);
    expect((await get(account, "days=2")).body.data).toHaveLength(4);
  });

  it("adds total with count=true", async () => {
    const account = freshAccount();
    await seed(
      Array.from({ length: 7 }, (_, i) =>
        event({ account_id: account, occurred_at: Date.now() - (i + 1) * 1000 }),
      ),
    );
    const { body } = await get(account, "count=true&limit=2");
    expect(body.total).toBe(7);
    expect(body.data).toHaveLength(2);
    expect((await get(account, "count=false")).body.total).toBeUndefined();
  });

  const bad: [string, string][] = [
    ["start=yesterday", "start"],
    ["end=2026-13-45T00:00:00Z", "end"],
    ["start=2026-05-02T00:00:00Z&end=2026-05-01T00:00:00Z", "start"],
    ["start=2999-01-01T00:00:00Z", "start"],
    ["end=2000-01-01T00:00:00Z&days=2", "days"],
    ["days=0", "days"],
    ["days=91", "days"],
    ["days=abc", "days"],
    ["days=2&start=2026-05-01T00:00:00Z", "days"],
    ["event_type=email.exploded", "event_type"],
    ["event_type=email.sent,,email.opened", "event_type"],
    ["recipient=", "recipient"],
    ["email_id=", "email_id"],
    ["message_id=", "message_id"],
    ["topic=Not%20A%20Topic", "topic"],
    ["template_id=", "template_id"],
    ["campaign=", "campaign"],
    ["domain=not_a_host", "domain"],
    ["domain=never-sent.example.com", "domain"],
    ["recipient_domain=not_a_host", "recipient_domain"],
    ["tags=ok,bad%20tag", "tags"],
    ["tags=a,b,c,d,e,f,g,h,i,j,k", "tags"],
    ["limit=0", "limit"],
    ["limit=1001", "limit"],
    ["limit=ten", "limit"],
    ["after=%%%", "after"],
    ["after=eyJ2IjoxfQ", "after"],
    ["count=yes", "count"],
    ["color=blue", "color"],
    ["limit=1&limit=2", "limit"],
  ];
  it.each(bad)("rejects %s naming %s", async (query, param) => {
    const { res, body } = await get(freshAccount(), query);
    expect(res.status).toBe(400);
    expect(body.error.type).toBe("validation_error");
    expect(body.error.param).toBe(param);
    expect(body.error.message.length).toBeGreaterThan(5);
  });

  it("requires events:read, and lets admin read another account by account_id", async () => {
    const account = freshAccount();
    await seed([event({ account_id: account })]);
    expect((await get(account, "", "send")).res.status).toBe(403);
    const other = freshAccount();
    const denied = await get(other, `account_id=${account}`);
    expect(denied.res.status).toBe(403);
    expect(denied.body.error.param).toBe("account_id");
    const admin = await get("ops", `account_id=${account}`, "admin");
    expect(admin.body.data).toHaveLength(1);
  });

  it("never shows one account's events to another, whatever the filters", async () => {
    const a = freshAccount();
    const b = freshAccount();
    const shared = { email_id: "email_shared", recipient: "same@example.com" };
    await seed([event({ account_id: a, ...shared }), event({ account_id: b, ...shared })]);
    for (const query of ["", "email_id=email_shared", "recipient=same@example.com", "count=true"]) {
      const { body } = await get(b, query);
      expect(body.data, query).toHaveLength(1);
      expect(body.data[0].id).not.toBe((await get(a, query)).body.data[0].id);
      if (body.total !== undefined) expect(body.total).toBe(1);
    }
  });
});

describe("pagination", () => {
  it("returns each of 130 events exactly once with limit 7 while new events keep arriving", async () => {
    const account = freshAccount();
    const now = Date.now();
    // Several events share a millisecond, so the id tie-break is exercised.
    const initial = Array.from({ length: 130 }, (_, i) =>
      event({ account_id: account, occurred_at: now - 60_000 - Math.floor(i / 3) * 1000 }),
    );
    await seed(initial);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const { res, body } = await get(account, `limit=7${cursor ? `&after=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      seen.push(...body.data.map((e: { id: string }) => e.id));
      cursor = body.next_cursor;
      pages += 1;
      // Arrivals between pages: newer than the window's first page, and one late arrival inside it.
      await seed([event({ account_id: account, occurred_at: Date.now() - 1000 })]);
    } while (cursor && pages < 50);
    expect(pages).toBe(19);
    expect(new Set(seen).size).toBe(seen.length);
    expect(new Set(seen)).toEqual(new Set(initial.map((e) => e.id)));
  });

  it("lets limit change between pages but refuses a cursor reused with other filters", async () => {
    const account = freshAccount();
    await seed(
      Array.from({ length: 5 }, (_, i) =>
        event({ account_id: account, occurred_at: Date.now() - (i + 1) * 1000, type: "email.sent" }),
      ),
    );
    const first = (await get(account, "event_type=email.sent&limit=2")).body;
    expect(first.has_more).toBe(true);
    const next = await get(account, `event_type=email.sent&limit=3&after=${first.next_cursor}`);
    expect(next.body.data).toHaveLength(3);
    for (const changed of [
      "event_type=email.opened&limit=2",
      "limit=2",
      "event_type=email.sent&days=2&limit=2",
    ]) {
      const { res, body } = await get(account, `${changed}&after=${first.next_cursor}`);
      expect(res.status, changed).toBe(400);
      expect(body.error.param).toBe("after");
    }
    // Another account cannot use the cursor either.
    expect(
      (await get(freshAccount(), `event_type=email.sent&limit=2&after=${first.next_cursor}`)).res.status,
    ).toBe(400);
  });
});

describe("retention clamping", () => {
  it.each([
    ["starter", 3],
    ["growth", 7],
    ["scale", 30],
  ])("clamps a 30-day request on %s to %d days", async (plan, days) => {
    const account = freshAccount();
    const admin = await mintToken("ops", "admin");
    const put = await call("PUT", `/v1/accounts/${account}`, { token: admin, body: { plan } });
    expect(await put.json()).toEqual({ id: account, plan, retention_days: days });
    const now = Date.now();
    const inside = event({ account_id: account, occurred_at: now - (days - 0.5) * DAY });
    const outside = event({ account_id: account, occurred_at: now - (days + 0.5) * DAY });
    await seed([inside, outside]);
    const { body } = await get(account, "days=30");
    expect(body.data.map((e: { id: string }) => e.id)).toEqual([inside.id]);
    expect(body.window.clamped).toBe(days < 30);
    const start = Date.parse(body.window.start);
    expect(Math.abs(start - (now - days * DAY))).toBeLessThan(60_000);
    expect((await get(account, "")).body.window.clamped).toBe(false);
  });

  it("rejects an unknown plan and requires admin to set one", async () => {
    const account = freshAccount();
    const admin = await mintToken("ops", "admin");
    const res = await call("PUT", `/v1/accounts/${account}`, { token: admin, body: { plan: "platinum" } });
    expect(res.status).toBe(400);
    expect((await json(res)).error.param).toBe("plan");
    const self = await call("PUT", `/v1/accounts/${account}`, {
      token: await mintToken(account, "events:read send"),
      body: { plan: "scale" },
    });
    expect(self.status).toBe(403);
    const text = await call("PUT", `/v1/accounts/${account}`, {
      token: admin,
      rawBody: "plan=scale",
      headers: { "content-type": "text/plain" },
    });
    expect(text.status).toBe(415);
  });
});

describe("index use", () => {
  it("reads about one page of rows for email_id, recipient and unfiltered pages over thousands of events", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records = Array.from({ length: 3000 }, (_, i) =>
      event({
        account_id: account,
        occurred_at: now - 1000 - i * 1000,
        email_id: `email_${i % 600}`,
        recipient: `r${i % 300}@example.com`,
        type: i % 2 ? "email.delivered" : "email.sent",
      }),
    );
    await seed(records);
    const limit = 20;
    const read = async (query: string) =>
      (await listEvents(env, account, new URLSearchParams(query), now)).rowsRead;
    const unfiltered = await read(`limit=${limit}`);
    const byEmail = await read(`email_id=email_5&limit=${limit}`);
    const byRecipient = await read(`recipient=r7@example.com&limit=${limit}`);
    expect(Math.min(unfiltered, byEmail, byRecipient)).toBeGreaterThan(0);
    expect(unfiltered).toBeLessThanOrEqual(2 * limit + 10);
    expect(byEmail).toBeLessThanOrEqual(2 * limit + 10);
    expect(byRecipient).toBeLessThanOrEqual(2 * limit + 10);
    // Deep pages cost the same as the first: the cursor is the range's upper bound.
    for (const filter of ["", "email_id=email_5&", "recipient=r7@example.com&", "event_type=email.sent&"]) {
      let after = "";
      for (let page = 0; page < 6; page++) {
        const result = await listEvents(env, account, new URLSearchParams(`${filter}limit=2${after}`), now);
        expect(result.rowsRead, `${filter} page ${page}`).toBeLessThanOrEqual(
          filter.startsWith("event_type") ? 2 * 2 + 10 : 2 + 3,
        );
        if (!result.next_cursor) break;
        after = `&after=${result.next_cursor}`;
      }
    }
    // And the filtered pages are right, not just cheap.
    const page = await listEvents(
      env,
      account,
      new URLSearchParams("recipient=r7@example.com&limit=20"),
      now,
    );
    expect(page.data).toHaveLength(10);
    expect(page.data.every((e) => e.recipient === "r7@example.com")).toBe(true);
  });
});
