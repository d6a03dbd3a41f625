import { describe, expect, it } from "vitest";
import { NUMONIC_TYPES } from "../../src/compat/numonic/routes";
import type { EventRecord, EventType } from "../../src/events/record";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "../helpers";
import { getJson, jsonAfter, seedEvents, seedText } from "./support";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const EVENTS_SEED = seedText("000_");
const SUPPRESSION_SEED = seedText("002_");
const EVENTS = "/compat/numonic/api/v1/events";
const SUPPRESSION = "/compat/numonic/api/v1/suppression";

async function nm(account: string, path: string, scope = "events:read") {
  return getJson(path, { authorization: `Bearer ${await mintToken(account, scope)}` });
}

const ALL_TYPES: EventType[] = [
  "email.sent",
  "email.delivered",
  "email.delayed",
  "email.bounced",
  "email.complained",
  "email.suppressed",
  "email.unsubscribed",
  "email.opened",
  "email.clicked",
  "email.failed",
];

describe("Numonic events: the seed's examples", () => {
  const expected = jsonAfter(EVENTS_SEED, "Response 200");
  const [seedBounce, seedDelivery] = expected.data.events;

  it("answers all events, type=Bounce and type=Complaint&page=1&limit=25 in the seed's shape", async () => {
    const account = freshAccount();
    const now = Date.now();
    const bounce = event({
      account_id: account,
      type: "email.bounced",
      occurred_at: now - 2 * 60_000,
      email_id: seedBounce.email_id,
      recipient: seedBounce.recipient,
      bounce_type: "permanent",
      bounce_classification: seedBounce.bounce_subtype,
      smtp_code: 550,
    });
    const delivery = event({
      account_id: account,
      type: "email.delivered",
      occurred_at: now - 4 * 60_000,
      email_id: seedDelivery.email_id,
      recipient: seedDelivery.recipient,
    });
    const complaint = event({
      account_id: account,
      type: "email.complained",
      occurred_at: now - 3 * 60_000,
      complaint_type: "abuse",
    });
    await seedEvents([bounce, delivery, complaint, event({ account_id: account, type: "email.opened" })]);

    const all = await nm(account, EVENTS);
    expect(all.res.status).toBe(200);
    expect(Object.keys(all.body)).toEqual(Object.keys(expected));
    expect(Object.keys(all.body.data)).toEqual(Object.keys(expected.data));
    expect(Object.keys(all.body.data.pagination)).toEqual(Object.keys(expected.data.pagination));
    expect(all.body.data.pagination).toEqual({ page: 1, limit: 50, total: 3, total_pages: 1 });
    const [gotBounce, gotComplaint, gotDelivery] = all.body.data.events;
    expect(Object.keys(gotBounce)).toEqual(Object.keys(seedBounce));
    expect({ ...gotBounce, id: undefined, event_timestamp: undefined }).toEqual({
      ...seedBounce,
      id: undefined,
      event_timestamp: undefined,
    });
    expect(gotBounce.event_timestamp).toBe(new Date(bounce.occurred_at).toISOString());
    expect(Object.keys(gotDelivery)).toEqual(Object.keys(seedDelivery));
    expect({ ...gotDelivery, id: undefined, event_timestamp: undefined }).toEqual({
      ...seedDelivery,
      id: undefined,
      event_timestamp: undefined,
    });
    expect(gotComplaint).toEqual({
      id: complaint.id,
      email_id: complaint.email_id,
      event_type: "Complaint",
      event_timestamp: new Date(complaint.occurred_at).toISOString(),
      recipient: complaint.recipient,
      complaint_type: "abuse",
    });

    const bounces = await nm(account, `${EVENTS}?type=Bounce`);
    expect(bounces.body.data.events.map((e: { id: string }) => e.id)).toEqual([bounce.id]);
    const complaints = await nm(account, `${EVENTS}?type=Complaint&page=1&limit=25`);
    expect(complaints.body.data.events.map((e: { id: string }) => e.id)).toEqual([complaint.id]);
    expect(complaints.body.data.pagination).toEqual({ page: 1, limit: 25, total: 1, total_pages: 1 });
  });

  it("maps the four types both ways and returns no other", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records = ALL_TYPES.map((type, i) =>
      event({ account_id: account, type, occurred_at: now - (i + 1) * 60_000 }),
    );
    await seedEvents(records);
    const all = await nm(account, EVENTS);
    const expectedAll = records.filter((r) => r.type in NUMONIC_TYPES);
    expect(all.body.data.events.map((e: { id: string }) => e.id)).toEqual(expectedAll.map((r) => r.id));
    for (const [type, name] of Object.entries(NUMONIC_TYPES)) {
      const { body } = await nm(account, `${EVENTS}?type=${name}`);
      expect(body.data.events.map((e: { event_type: string }) => e.event_type)).toEqual([name]);
      expect(body.data.events[0].id).toBe(records.find((r) => r.type === type)?.id);
    }
  });

  it("pages with page and limit up to total_pages, every event once", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records = Array.from({ length: 23 }, (_, i) =>
      event({ account_id: account, occurred_at: now - 1000 - i * 1000 }),
    );
    records.push(event({ account_id: account, occurred_at: now - 1000 }));
    await seedEvents(records);
    const first = await nm(account, `${EVENTS}?limit=5`);
    expect(first.body.data.pagination).toEqual({ page: 1, limit: 5, total: 24, total_pages: 5 });
    const seen: string[] = [];
    for (let page = 1; page <= first.body.data.pagination.total_pages; page++) {
      const { body } = await nm(account, `${EVENTS}?limit=5&page=${page}`);
      seen.push(...body.data.events.map((e: { id: string }) => e.id));
    }
    expect(seen).toHaveLength(24);
    expect(new Set(seen)).toEqual(new Set(records.map((r) => r.id)));
    expect((await nm(account, `${EVENTS}?limit=5&page=6`)).body.data.events).toEqual([]);
  });

  it("reads the plan's whole retention, no further", async () => {
    const account = freshAccount();
    const now = Date.now();
    const inside = event({ account_id: account, occurred_at: now - 2.5 * DAY });
    const outside = event({ account_id: account, occurred_at: now - 4 * DAY });
    await seedEvents([inside, outside]);
    const { body } = await nm(account, EVENTS);
    expect(body.data.events.map((e: { id: string }) => e.id)).toEqual([inside.id]);
  });

  it.each([
    ["limit=101", "limit"],
    ["limit=0", "limit"],
    ["page=0", "page"],
    ["type=Open", "type"],
    ["colour=red", "colour"],
  ])("%s is a 400 VALIDATION_ERROR in Numonic's shape", async (query, mention) => {
    const { res, body } = await nm(freshAccount(), `${EVENTS}?${query}`);
    expect(res.status).toBe(400);
    expect(Object.keys(body)).toEqual(["success", "error"]);
    expect(body.success).toBe(false);
    expect(Object.keys(body.error)).toEqual(["code", "message"]);
    expect(body.error.code).toBe("VALIDATION_ERROR");
    expect(body.error.message).toContain(mention);
  });
});

describe("Numonic suppression list", () => {
  const listed = jsonAfter(SUPPRESSION_SEED, "Response 200");

  async function suppress(account: string, records: [string, "hard_bounce" | "complaint"][]) {
    const now = Date.now();
    await consume(
      records.map(([recipient, reason], i) =>
        eventMessage(
          event({
            account_id: account,
            type: reason === "hard_bounce" ? "email.bounced" : "email.complained",
            recipient,
            occurred_at: now - (records.length - i) * 60_000,
            ...(reason === "hard_bounce" ? { bounce_type: "permanent" as const } : {}),
          }),
          { reason, topic: null },
        ),
      ),
    );
  }

  it("lists entries as the seed's example does, newest first, paged", async () => {
    const account = freshAccount();
    await suppress(account, [
      ["complained@example.com", "complaint"],
      ["bounced@example.com", "hard_bounce"],
    ]);
    const { res, body } = await nm(account, `${SUPPRESSION}?page=1&limit=50`, "suppressions:read");
    expect(res.status).toBe(200);
    expect(Object.keys(body)).toEqual(Object.keys(listed));
    expect(body.pagination).toEqual(listed.pagination);
    expect(body.data.map((e: object) => Object.keys(e))).toEqual(
      listed.data.map((e: object) => Object.keys(e)),
    );
    expect(body.data.map((e: { email: string; reason: string }) => [e.email, e.reason])).toEqual(
      listed.data.map((e: { email: string; reason: string }) => [e.email, e.reason]),
    );
    const second = await nm(account, `${SUPPRESSION}?page=2&limit=1`, "suppressions:read");
    expect(second.body.data.map((e: { email: string }) => e.email)).toEqual(["complained@example.com"]);
    expect(second.body.pagination).toEqual({ page: 2, limit: 1, total: 2, total_pages: 2 });
    expect((await nm(account, `${SUPPRESSION}?limit=101`, "suppressions:read")).res.status).toBe(400);
    expect((await nm(account, SUPPRESSION, "events:read")).res.status).toBe(403);
  });

  it("removes an address as the seed's example does, then 404s", async () => {
    const account = freshAccount();
    await suppress(account, [["bounced@example.com", "hard_bounce"]]);
    const token = await mintToken(account, "suppressions:write");
    const readOnly = await mintToken(account, "suppressions:read");
    const denied = await call("DELETE", `${SUPPRESSION}/bounced%40example.com`, { token: readOnly });
    expect(denied.status).toBe(403);
    expect((await json(denied)).error.code).toBe("FORBIDDEN");
    const other = await call("DELETE", `${SUPPRESSION}/bounced%40example.com`, {
      token: await mintToken(freshAccount(), "suppressions:write"),
    });
    expect(other.status).toBe(404);
    const res = await call("DELETE", `${SUPPRESSION}/bounced%40example.com`, { token });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual(jsonAfter(SUPPRESSION_SEED, "DELETE /api/v1/suppression/:email"));
    const again = await call("DELETE", `${SUPPRESSION}/bounced%40example.com`, { token });
    expect(again.status).toBe(404);
    expect(await json(again)).toEqual({
      success: false,
      error: { code: "NOT_FOUND", message: "No suppression entry found for this address" },
    });
    const invalid = await call("DELETE", `${SUPPRESSION}/not-an-address`, { token });
    expect(invalid.status).toBe(400);
    expect((await json(invalid)).error.code).toBe("VALIDATION_ERROR");
    // Gone from the native list too.
    const native = await call("GET", "/v1/suppressions/bounced%40example.com", { token: readOnly });
    expect(native.status).toBe(404);
  });
});

describe("Numonic: authentication and isolation", () => {
  it("answers 401 UNAUTHORIZED and 403 FORBIDDEN in its shape, and never shows another account's events", async () => {
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
    const wrong = await nm(owner, EVENTS, "send");
    expect(wrong.res.status).toBe(403);
    expect(wrong.body.error.code).toBe("FORBIDDEN");
    const e: EventRecord = event({ account_id: owner, type: "email.bounced", bounce_type: "permanent" });
    await seedEvents([e]);
    const intruder = freshAccount();
    expect((await nm(intruder, EVENTS)).body.data.events).toEqual([]);
    expect((await nm(intruder, `${EVENTS}?account_id=${owner}`)).res.status).toBe(403);
    expect((await nm("ops", `${EVENTS}?account_id=${owner}`, "admin")).body.data.events[0].id).toBe(e.id);
    const missing = await nm(owner, "/compat/numonic/api/v1/nothing");
    expect(missing.res.status).toBe(404);
    expect(missing.body.error.code).toBe("NOT_FOUND");
  });
});
