import { describe, expect, it } from "vitest";
import type { EventRecord } from "../../src/events/record";
import { call, consume, event, eventMessage, freshAccount, json, mintToken } from "../helpers";

/** Unosend beyond events (SPEC §16): metrics and suppressions in the shapes @unosend/node reads. */

const BASE = "/compat/unosend/v1";
const HOUR = 3_600_000;

async function store(account: string, events: Partial<EventRecord>[]) {
  await consume(
    events.map((e, i) =>
      eventMessage(
        event({
          account_id: account,
          occurred_at: Date.now() - 2 * HOUR,
          email_id: `email_${i}`,
          recipient: `r${i}@example.com`,
          ...e,
        }),
      ),
    ),
  );
}

describe("Unosend metrics", () => {
  it("answers the client's counters over the last days, queued always 0", async () => {
    const account = freshAccount();
    await store(account, [
      { type: "email.sent", email_id: "e1", campaign: "spring" },
      { type: "email.sent", email_id: "e2", campaign: "summer" },
      { type: "email.delivered", email_id: "e1", campaign: "spring" },
      { type: "email.bounced", email_id: "e2", bounce_type: "transient", campaign: "summer" },
      { type: "email.opened", email_id: "e1", recipient: "r0@example.com", campaign: "spring" },
      { type: "email.opened", email_id: "e1", recipient: "r0@example.com", campaign: "spring" },
    ]);
    const token = await mintToken(account, "events:read");
    const res = await call("GET", `${BASE}/metrics?days=7`, { token });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      success: true,
      data: {
        total: 2,
        sent: 2,
        delivered: 1,
        bounced: 1,
        failed: 0,
        queued: 0,
        opens: 2,
        unique_opens: 1,
        clicks: 0,
        unique_clicks: 0,
      },
    });
    const grouped = await json(await call("GET", `${BASE}/metrics?group_by=campaign`, { token }));
    expect(grouped.data.groups.map((g: { group: string; sent: number }) => [g.group, g.sent])).toEqual([
      ["spring", 1],
      ["summer", 1],
    ]);
    for (const [query, code] of [
      ["days=0", "VALIDATION_ERROR"],
      ["days=401", "VALIDATION_ERROR"],
      ["group_by=recipient", "VALIDATION_ERROR"],
      ["nope=1", "VALIDATION_ERROR"],
    ]) {
      const r = await call("GET", `${BASE}/metrics?${query}`, { token });
      expect(r.status, query).toBe(400);
      expect((await json(r)).error.code).toBe(code);
    }
    const noScope = await call("GET", `${BASE}/metrics`, { token: await mintToken(account, "send") });
    expect(noScope.status).toBe(403);
    expect(await json(noScope)).toMatchObject({ success: false, error: { code: "FORBIDDEN" } });
  });
});

describe("Unosend suppressions", () => {
  it("creates, lists, gets and deletes entries by the id the list gives", async () => {
    const account = freshAccount();
    const write = await mintToken(account, "suppressions:write suppressions:read");
    const created = await call("POST", `${BASE}/suppressions`, {
      token: write,
      body: { email: "Ann@Example.com", reason: "complaint" },
    });
    expect(created.status).toBe(201);
    const entry = (await json(created)).data;
    expect(entry).toEqual({
      id: expect.stringMatching(/^uns_/),
      email: "ann@example.com",
      reason: "complaint",
      source_email_id: null,
      metadata: { topic: null, expires_at: null },
      created_at: expect.any(String),
    });
    const again = await call("POST", `${BASE}/suppressions`, {
      token: write,
      body: { email: "ann@example.com" },
    });
    expect(again.status).toBe(200);
    expect((await json(again)).data).toEqual(entry);
    await call("POST", `${BASE}/suppressions`, { token: write, body: { email: "bob@example.com" } });

    const list = await json(await call("GET", `${BASE}/suppressions?per_page=1`, { token: write }));
    expect(list.meta).toEqual({ total: 2, page: 1, page_size: 1, pages: 2 });
    expect(list.data).toHaveLength(1);
    const byReason = await json(await call("GET", `${BASE}/suppressions?reason=complaint`, { token: write }));
    expect(byReason.data).toEqual([entry]);

    expect(
      (await json(await call("GET", `${BASE}/suppressions/${entry.id}`, { token: write }))).data,
    ).toEqual(entry);
    expect(
      (await json(await call("GET", `${BASE}/suppressions/ann%40example.com`, { token: write }))).data,
    ).toEqual(entry);
    // Another account sees nothing of it.
    const stranger = await mintToken(freshAccount(), "suppressions:write suppressions:read");
    expect((await call("GET", `${BASE}/suppressions/${entry.id}`, { token: stranger })).status).toBe(404);
    expect((await call("DELETE", `${BASE}/suppressions/${entry.id}`, { token: stranger })).status).toBe(404);

    const del = await call("DELETE", `${BASE}/suppressions/${entry.id}`, { token: write });
    expect(await json(del)).toEqual({ success: true, data: { id: entry.id, deleted: true } });
    const gone = await call("GET", `${BASE}/suppressions/${entry.id}`, { token: write });
    expect(gone.status).toBe(404);
    expect(await json(gone)).toMatchObject({ success: false, error: { code: "NOT_FOUND" } });
    // The check sees the removal too.
    const check = await call("POST", "/v1/suppressions/check", {
      token: await mintToken(account, "send"),
      body: { emails: ["ann@example.com", "bob@example.com"] },
    });
    expect((await json(check)).data.map((d: { suppressed: boolean }) => d.suppressed)).toEqual([false, true]);
  });

  it.each([
    ["POST", "/suppressions", { email: "not an address" }, 400],
    ["POST", "/suppressions", { email: "a@example.com", reason: "bored" }, 400],
    ["GET", "/suppressions?per_page=101", undefined, 400],
    ["GET", "/suppressions?page=501&per_page=20", undefined, 400],
    ["GET", "/suppressions/uns_@@@", undefined, 404],
  ] as const)("%s %s → %d", async (method, path, body, status) => {
    const token = await mintToken(freshAccount(), "suppressions:write suppressions:read");
    const res = await call(method, `${BASE}${path}`, { token, ...(body ? { body } : {}) });
    expect(res.status).toBe(status);
    expect((await json(res)).success).toBe(false);
  });

  it("refuses a body that is not JSON (415), malformed JSON (400) and over 1 MiB (413), in Unosend's shape", async () => {
    const token = await mintToken(freshAccount(), "suppressions:write");
    for (const [rawBody, type, status] of [
      ['{"email": "a@example.com"}', "text/plain", 415],
      ['{"email": ', "application/json", 400],
      [`{"pad": "${"x".repeat(1024 * 1024)}"}`, "application/json", 413],
    ] as const) {
      const res = await call("POST", `${BASE}/suppressions`, {
        token,
        rawBody,
        headers: { "content-type": type },
      });
      expect(res.status).toBe(status);
      expect((await json(res)).success).toBe(false);
    }
  });
});
