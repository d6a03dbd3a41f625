import { describe, expect, it } from "vitest";
import { call, consume, event, eventMessage, eventsDb, freshAccount, json, mintToken } from "../helpers";

const HOUR = 3_600_000;

async function seed(account: string, campaign: string, count: number, at = Date.now() - 2 * HOUR) {
  await consume(
    Array.from({ length: count }, (_, i) =>
      eventMessage(
        event({
          account_id: account,
          type: "email.delivered",
          campaign,
          recipient: `r${i}@x.test`,
          occurred_at: at,
        }),
      ),
    ),
  );
}

describe("GET /v1/metrics", () => {
  it("answers the SPEC §15 shape with the defaults (last 7 days, day, UTC, no grouping)", async () => {
    const account = freshAccount();
    await seed(account, "spring", 3);
    const token = await mintToken(account, "events:read");
    const res = await call("GET", "/v1/metrics", { token });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ object: "metrics", interval: "day", tz: "UTC", group_by: null });
    expect(Date.parse(body.window.end) - Date.parse(body.window.start)).toBeGreaterThanOrEqual(7 * 24 * HOUR);
    expect(body.window.clamped).toBe(false);
    expect(body.data).toHaveLength(1);
    expect(body.data[0]).toMatchObject({ group: null, delivered: 3, sent: 0 });
    expect(body.data[0].bucket).toMatch(/^\d{4}-\d{2}-\d{2}T00:00:00Z$/);
    expect(body.totals).toMatchObject({ delivered: 3, delivery_rate: null, complaint_rate: 0, open_rate: 0 });
  });

  it("groups, filters, and aligns buckets to a +05:45 zone", async () => {
    const account = freshAccount();
    await seed(account, "spring", 2);
    await seed(account, "summer", 1);
    const token = await mintToken(account, "events:read");
    const body = await json(
      await call("GET", "/v1/metrics?group_by=campaign&interval=hour&tz=asia/kathmandu&days=2", { token }),
    );
    expect(body.tz).toBe("asia/kathmandu");
    expect(body.data.map((d: { group: string }) => d.group)).toEqual(["spring", "summer"]);
    expect(body.data[0].bucket).toMatch(/T\d{2}:00:00\+05:45$/);
    const filtered = await json(await call("GET", "/v1/metrics?campaign=summer", { token }));
    expect(filtered.totals.delivered).toBe(1);
  });

  it("clamps a window older than 400 days silently", async () => {
    const token = await mintToken(freshAccount(), "events:read");
    // The clock before the request: the window starts on the quarter hour at or before its own now.
    const before = Date.now();
    const body = await json(await call("GET", "/v1/metrics?start=2020-01-01T00:00:00Z", { token }));
    expect(body.window.clamped).toBe(true);
    expect(before - Date.parse(body.window.start)).toBeLessThanOrEqual(400 * 24 * HOUR + 15 * 60_000);
  });

  it.each([
    ["interval=minute", "interval"],
    ["tz=Mars/Olympus", "tz"],
    ["group_by=recipient", "group_by"],
    ["days=0", "days"],
    ["days=401", "days"],
    ["days=2&start=2026-01-01", "days"],
    ["start=yesterday", "start"],
    ["end=2026-13-01T00:00:00Z", "end"],
    ["start=2026-02-01&end=2026-01-01", "start"],
    ["start=2999-01-01T00:00:00Z", "start"],
    ["topic=Not%20A%20Topic", "topic"],
    ["tags=a,,b", "tags"],
    ["tags=1,2,3,4,5,6,7,8,9,10,11", "tags"],
    ["campaign=", "campaign"],
    ["domain=not_a_host", "domain"],
    ["domain=never-sent.example.com", "domain"],
    ["event_type=email.sent", "event_type"],
    ["interval=day&interval=hour", "interval"],
  ])("is 400 naming the parameter for %s", async (query, param) => {
    const token = await mintToken(freshAccount(), "events:read");
    const res = await call("GET", `/v1/metrics?${query}`, { token });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param });
  });

  it("is 401 without a valid token and 403 without events:read", async () => {
    const account = freshAccount();
    const forged = await mintToken(account, "events:read", {
      secret: "another-secret-another-secret-0123456789",
    });
    for (const token of [undefined, forged, "not.a.jwt"]) {
      const res = await call("GET", "/v1/metrics", token ? { token } : {});
      expect(res.status).toBe(401);
    }
    const wrong = await mintToken(account, "send suppressions:read suppressions:write");
    const res = await call("GET", "/v1/metrics", { token: wrong });
    expect(res.status).toBe(403);
    expect((await json(res)).error.type).toBe("permission_error");
  });

  it("never shows another account's numbers; only an admin reads another account", async () => {
    const alice = freshAccount("alice");
    const bob = freshAccount("bob");
    await seed(alice, "shared-name", 4);
    await seed(bob, "shared-name", 1);
    const bobToken = await mintToken(bob, "events:read");
    const bobs = await json(await call("GET", "/v1/metrics?campaign=shared-name", { token: bobToken }));
    expect(bobs.totals.delivered).toBe(1);
    const denied = await call("GET", `/v1/metrics?account_id=${alice}`, { token: bobToken });
    expect(denied.status).toBe(403);
    expect((await json(denied)).error).toMatchObject({ type: "permission_error", param: "account_id" });
    const admin = await mintToken("ops", "admin");
    const alices = await json(await call("GET", `/v1/metrics?account_id=${alice}`, { token: admin }));
    expect(alices.totals.delivered).toBe(4);
  });

  it("is documented in the OpenAPI document with its rate formulas", async () => {
    const doc = await json(await call("GET", "/openapi.json"));
    const op = doc.paths["/v1/metrics"].get;
    expect(op.operationId).toBe("getMetrics");
    expect(op.description).toContain("unique_clicked / delivered");
    expect(op.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining(["start", "end", "days", "interval", "tz", "group_by", "tags", "domain"]),
    );
  });

  it("counts a redelivered event once and an event of a later batch that repeats an id not at all", async () => {
    const account = freshAccount();
    const e = event({ account_id: account, type: "email.opened", occurred_at: Date.now() - HOUR });
    await consume([eventMessage(e), eventMessage(e)]);
    await consume([eventMessage(e)], 2);
    const rows = await eventsDb(account)
      .prepare(
        "SELECT SUM(opened) AS opened, SUM(unique_opened) AS u FROM metric_rollups WHERE account_id = ?",
      )
      .bind(account)
      .first();
    expect(rows).toEqual({ opened: 1, u: 1 });
  });
});
