import { describe, expect, it } from "vitest";
import { call, freshAccount, json, mintToken } from "../helpers";

/**
 * SPEC §18's schema rules (a list takes at most 100 values, a keyword filter at most 10 keywords in
 * all, offset paging up to offset + limit = 10,000) and the small defects of issue 17: each a 400
 * naming its parameter, in the surface's own error shape.
 */

const token = (scope = "events:read") => mintToken(freshAccount("limits"), scope);
const values = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join(",");
const SPARKPOST = "/compat/sparkpost/api/v1/events/message";

describe("list and keyword caps (SPEC §18)", () => {
  it("takes 100 values in a list, refuses 101 naming the parameter", async () => {
    const t = await token();
    const ok = await call("GET", `${SPARKPOST}?recipients=${values(100, (i) => `r${i}@example.com`)}`, {
      token: t,
    });
    expect(ok.status).toBe(200);
    const res = await call("GET", `${SPARKPOST}?recipients=${values(101, (i) => `r${i}@example.com`)}`, {
      token: t,
    });
    expect(res.status).toBe(400);
    expect((await json(res)).errors[0].description).toBe("recipients takes at most 100 values");
  });

  it("takes 10 keywords in all in a keyword filter, refuses 11 naming the parameter", async () => {
    const t = await token();
    const ten = "spring-sale,black_friday members,a b c d e";
    expect(
      (await call("GET", `${SPARKPOST}?campaigns=${encodeURIComponent(ten)}`, { token: t })).status,
    ).toBe(200);
    const res = await call("GET", `${SPARKPOST}?campaigns=${encodeURIComponent(`${ten},f`)}`, { token: t });
    expect(res.status).toBe(400);
    expect((await json(res)).errors[0].description).toMatch(/^campaigns takes at most 10 keywords in all/);
  });
});

describe("offset paging serves offset + limit up to 10,000 (SPEC §18)", () => {
  it("Numonic: page × limit", async () => {
    const t = await token();
    expect((await call("GET", "/compat/numonic/api/v1/events?page=200&limit=50", { token: t })).status).toBe(
      200,
    );
    const res = await call("GET", "/compat/numonic/api/v1/events?page=201&limit=50", { token: t });
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({
      code: "VALIDATION_ERROR",
      message: expect.stringMatching(/^page /),
    });
    const suppressions = await call("GET", "/compat/numonic/api/v1/suppression?page=101&limit=100", {
      token: await token("suppressions:read"),
    });
    expect(suppressions.status).toBe(400);
  });

  it("Unosend: offset + limit", async () => {
    const t = await token();
    expect((await call("GET", "/compat/unosend/v1/events?offset=9950&limit=50", { token: t })).status).toBe(
      200,
    );
    const res = await call("GET", "/compat/unosend/v1/events?offset=9951&limit=50", { token: t });
    expect(res.status).toBe(400);
    expect((await json(res)).error.message).toMatch(/^offset /);
    const huge = await call("GET", "/compat/unosend/v1/events?offset=100000000", { token: t });
    expect(huge.status).toBe(400);
    expect((await json(huge)).error.message).toMatch(/^offset /);
  });
});

describe("small defects", () => {
  it("webhook routes refuse an empty account_id from an admin token, as events and metrics do", async () => {
    const admin = await mintToken(freshAccount("admin"), "admin");
    for (const [method, path, body] of [
      ["POST", "/v1/webhooks?account_id=", { url: "https://example.com/hook" }],
      ["GET", "/v1/webhooks?account_id=", undefined],
      ["GET", "/v1/events?account_id=", undefined],
      ["GET", "/v1/metrics?account_id=", undefined],
    ] as const) {
      const res = await call(method, path, { token: admin, ...(body ? { body } : {}) });
      expect(res.status, path).toBe(400);
      expect((await json(res)).error, path).toMatchObject({
        type: "validation_error",
        param: "account_id",
        message: "account_id must be an account id",
      });
    }
    const list = await json(await call("GET", "/v1/webhooks", { token: admin }));
    expect(list.data).toEqual([]);
  });

  it("metrics errors name the parameter once, in mailtrail's words", async () => {
    const t = await token();
    for (const [query, message] of [
      ["tz=Mars/Olympus", "tz must be an IANA time zone such as Europe/Paris"],
      ["days=0", "days must be an integer from 1 to 400"],
      ["interval=year", "interval must be one of hour, day, week, month"],
      ["account_id=", "account_id must be an account id"],
    ]) {
      const res = await call("GET", `/v1/metrics?${query}`, { token: t });
      expect(res.status, query).toBe(400);
      expect((await json(res)).error.message, query).toBe(message);
    }
  });
});
