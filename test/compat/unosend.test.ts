import { describe, expect, it } from "vitest";
import { UNOSEND_TYPES } from "../../src/compat/unosend/routes";
import type { EventRecord, EventType, Tracking } from "../../src/events/record";
import { event, freshAccount, mintToken } from "../helpers";
import { getJson, jsonAfter, seedEvents, seedText } from "./support";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const SEED = seedText("001_");
const EVENTS = "/compat/unosend/api/v1/events";

async function un(account: string, query: string, options: { scope?: string; path?: string } = {}) {
  const token = await mintToken(account, options.scope ?? "events:read");
  return getJson(`${options.path ?? EVENTS}${query ? `?${query}` : ""}`, {
    authorization: `Bearer ${token}`,
  });
}

const tracking = (t: Partial<Tracking>): Tracking => ({
  user_agent: null,
  ip_address: null,
  url: null,
  link_name: null,
  geo: null,
  bot: null,
  ...t,
});

describe("Unosend events: the seed's examples", () => {
  const expected = jsonAfter(SEED, "200 OK");
  const [seedOpen, seedClick] = expected.data.data;

  it("answers ?days=7&limit=50 with the seed's opened and clicked events, field by field", async () => {
    const account = freshAccount();
    const now = Date.now();
    const common = {
      account_id: account,
      email_id: seedOpen.email_id,
      recipient: seedOpen.email.to[0],
      subject: seedOpen.email.subject,
    };
    const click = event({
      ...common,
      type: "email.clicked",
      occurred_at: now - 60_000,
      tracking: tracking({ url: seedClick.metadata.url, user_agent: seedClick.metadata.user_agent }),
    });
    const open = event({
      ...common,
      type: "email.opened",
      occurred_at: now - 120_000,
      tracking: tracking({
        user_agent: seedOpen.metadata.user_agent,
        ip_address: seedOpen.metadata.ip_address,
      }),
    });
    await seedEvents([click, open, event({ account_id: account, type: "email.suppressed" })]);
    const { res, body } = await un(account, "days=7&limit=50");
    expect(res.status).toBe(200);
    expect(Object.keys(body)).toEqual(Object.keys(expected));
    expect(Object.keys(body.data)).toEqual(Object.keys(expected.data));
    expect(Object.keys(body.data.pagination)).toEqual(Object.keys(expected.data.pagination));
    expect(body.data.pagination).toEqual({ total: 2, limit: 50, offset: 0, has_more: false });
    expect(body.data.filters).toEqual(expected.data.filters);
    const [gotClick, gotOpen] = body.data.data;
    for (const [got, want, record] of [
      [gotOpen, seedOpen, open],
      [gotClick, seedClick, click],
    ] as const) {
      expect(Object.keys(got)).toEqual(Object.keys(want));
      expect(got.type).toBe(want.type);
      expect(got.email_id).toBe(want.email_id);
      expect(got.metadata).toEqual(want.metadata);
      expect(got.email).toEqual(want.email);
      expect(got.id).toBe(record.id);
      expect(got.created_at).toBe(new Date(record.occurred_at).toISOString());
    }
  });

  it("answers the seed's example queries", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records = [
      event({
        account_id: account,
        type: "email.opened",
        occurred_at: now - 2 * DAY,
        email_id: "email_abc123",
      }),
      event({
        account_id: account,
        type: "email.clicked",
        occurred_at: now - HOUR,
        email_id: "email_abc123",
      }),
      event({
        account_id: account,
        type: "email.bounced",
        occurred_at: now - HOUR,
        bounce_type: "permanent",
        smtp_response: "550 5.1.1 unknown",
      }),
      event({ account_id: account, type: "email.opened", occurred_at: now - 10 * DAY }),
    ];
    await seedEvents(records);
    const ids = (b: any) => b.data.data.map((e: { id: string }) => e.id);
    // days=30 on a 3-day plan: clamped to the retention.
    const opens = await un(account, "event_type=opened&days=30");
    expect(ids(opens.body)).toEqual([records[0]?.id]);
    expect(opens.body.data.filters).toEqual({ email_id: null, event_type: "opened", days: 30 });
    const byEmail = await un(account, "email_id=email_abc123");
    expect(ids(byEmail.body)).toEqual([records[1]?.id, records[0]?.id]);
    expect(byEmail.body.data.filters).toEqual({ email_id: "email_abc123", event_type: null, days: 7 });
    expect(ids((await un(account, "event_type=clicked&days=7")).body)).toEqual([records[1]?.id]);
    const bounces = await un(account, "event_type=bounced&days=90&limit=100");
    expect(bounces.res.status).toBe(200);
    expect(bounces.body.data.data[0].metadata).toEqual({ bounce_type: "hard", reason: "550 5.1.1 unknown" });
    expect(bounces.body.data.pagination.limit).toBe(100);
  });
});

describe("Unosend events: parameters and mapping", () => {
  it.each([
    ["limit=101", "limit"],
    ["limit=0", "limit"],
    ["days=91", "days"],
    ["days=0", "days"],
    ["offset=-1", "offset"],
    ["event_type=failed", "event_type"],
    ["event_type=suppressed", "event_type"],
    ["colour=red", "colour"],
  ])("%s is a 400 VALIDATION_ERROR in Unosend's shape", async (query, mention) => {
    const { res, body } = await un(freshAccount(), query);
    expect(res.status).toBe(400);
    expect(body).toEqual({
      success: false,
      error: { code: "VALIDATION_ERROR", message: expect.stringContaining(mention) },
    });
  });

  it("maps the seven types both ways with each type's metadata, and returns no other", async () => {
    const account = freshAccount();
    const now = Date.now();
    const fields: Partial<Record<EventType, Partial<EventRecord>>> = {
      "email.sent": { message_id: "<m1@mail>" },
      "email.delivered": { smtp_response: "250 2.0.0 OK", smtp_code: 250 },
      "email.opened": { tracking: tracking({ user_agent: "UA", ip_address: "198.51.100.1" }) },
      "email.clicked": { tracking: tracking({ user_agent: "UA2", url: "https://example.com/x" }) },
      "email.bounced": { bounce_type: "transient", smtp_response: "452 4.2.2 full" },
      "email.complained": { complaint_type: "abuse" },
      "email.unsubscribed": {},
    };
    const metadata: Record<string, unknown> = {
      sent: { message_id: "<m1@mail>" },
      delivered: { smtp_response: "250 2.0.0 OK" },
      opened: { user_agent: "UA", ip_address: "198.51.100.1" },
      clicked: { url: "https://example.com/x", user_agent: "UA2" },
      bounced: { bounce_type: "soft", reason: "452 4.2.2 full" },
      complained: { complaint_type: "abuse" },
      unsubscribed: {},
    };
    const types: EventType[] = [
      ...(Object.keys(fields) as EventType[]),
      "email.delayed",
      "email.suppressed",
      "email.failed",
    ];
    const records = types.map((type, i) =>
      event({ account_id: account, type, occurred_at: now - (i + 1) * 60_000, ...fields[type] }),
    );
    await seedEvents(records);
    const all = await un(account, "");
    expect(all.body.data.data.map((e: { type: string }) => e.type)).toEqual(Object.values(UNOSEND_TYPES));
    for (const [type, name] of Object.entries(UNOSEND_TYPES)) {
      const { body } = await un(account, `event_type=${name}`);
      expect(body.data.data).toHaveLength(1);
      expect(body.data.data[0].id).toBe(records.find((r) => r.type === type)?.id);
      expect(body.data.data[0].metadata).toEqual(metadata[name]);
    }
  });

  it("pages with offset until has_more is false, every event once; /v1/events answers the same", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records = Array.from({ length: 17 }, (_, i) =>
      event({ account_id: account, type: "email.sent", occurred_at: now - 1000 - i * 1000 }),
    );
    records.push(event({ account_id: account, type: "email.sent", occurred_at: now - 1000 }));
    await seedEvents(records);
    const seen: string[] = [];
    let offset = 0;
    for (;;) {
      const { body } = await un(account, `limit=4&offset=${offset}`);
      expect(body.data.pagination.total).toBe(18);
      seen.push(...body.data.data.map((e: { id: string }) => e.id));
      offset += body.data.data.length;
      if (!body.data.pagination.has_more) break;
    }
    expect(seen).toHaveLength(18);
    expect(new Set(seen)).toEqual(new Set(records.map((r) => r.id)));
    const alias = await un(account, "limit=4", { path: "/compat/unosend/v1/events" });
    const main = await un(account, "limit=4");
    expect(alias.body).toEqual(main.body);
  });
});

describe("Unosend: authentication and isolation", () => {
  it("answers 401 and 403 in its shape, and never shows another account's events", async () => {
    const none = await getJson(EVENTS);
    expect(none.res.status).toBe(401);
    expect(none.body).toEqual({
      success: false,
      error: { code: "UNAUTHORIZED", message: expect.any(String) },
    });
    const owner = freshAccount();
    const forged = await mintToken(owner, "events:read", {
      secret: "another-secret-another-secret-0123456789",
    });
    expect((await getJson(EVENTS, { authorization: `Bearer ${forged}` })).res.status).toBe(401);
    expect((await un(owner, "", { scope: "suppressions:read" })).body.error.code).toBe("FORBIDDEN");
    const e = event({ account_id: owner, type: "email.sent" });
    await seedEvents([e]);
    const intruder = freshAccount();
    expect((await un(intruder, "")).body.data.data).toEqual([]);
    expect((await un(intruder, `email_id=${e.email_id}`)).body.data.pagination.total).toBe(0);
    expect((await un(intruder, `account_id=${owner}`)).res.status).toBe(403);
    expect((await un("ops", `account_id=${owner}`, { scope: "admin" })).body.data.data[0].id).toBe(e.id);
  });
});
