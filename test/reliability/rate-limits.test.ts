import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { clientAddressKey } from "../../src/lib/rate-limit";
import { call, freshAccount, json, mintToken } from "../helpers";
import { serve, tokenFor, trackingRequest } from "../tracking/support";

/**
 * Finding 3: the Workers Rate Limiting bindings, as wrangler.toml declares them and Miniflare
 * simulates them (fixed windows of the configured period). Each test exhausts its own key through
 * the real binding, then asks the Worker; keys are unique so other test files never share a count.
 */

/** Miniflare's windows are aligned to the clock: start well inside one so the count cannot reset midway. */
async function freshWindow(periodSeconds: number) {
  const left = periodSeconds * 1000 - (Date.now() % (periodSeconds * 1000));
  if (left < 3000) await new Promise((r) => setTimeout(r, left + 50));
}

async function exhaust(limiter: RateLimit, key: string, limit: number) {
  for (let i = 0; i < limit; i++) expect((await limiter.limit({ key })).success).toBe(true);
  expect((await limiter.limit({ key })).success).toBe(false);
}

const API_LIMIT = 600;
const TRACKING_LIMIT = 1000;

describe("API_LIMITER: per account on /v1", () => {
  it("answers 429 rate_limit_exceeded with Retry-After in the §4 shape, for that account only", async () => {
    const limited = freshAccount();
    const other = freshAccount();
    await freshWindow(60);
    const token = await mintToken(limited, "events:read");
    const first = await call("GET", "/v1/account", { token });
    expect(first.status).toBe(200);
    await exhaust(env.API_LIMITER!, limited, API_LIMIT - 1);

    const res = await call("GET", "/v1/account", { token });
    expect(res.status).toBe(429);
    expect(res.headers.get("retry-after")).toBe("60");
    expect(await json(res)).toEqual({
      error: { type: "rate_limit_exceeded", message: expect.any(String) },
    });
    // Another token of the same account shares the budget; another account does not.
    expect((await call("GET", "/v1/events", { token: await mintToken(limited, "events:read") })).status).toBe(
      429,
    );
    expect((await call("GET", "/v1/account", { token: await mintToken(other, "events:read") })).status).toBe(
      200,
    );
    // The compatibility surfaces count against the same budget, each answering in its own shape.
    const sparkpost = await call("GET", "/compat/sparkpost/api/v1/events/message", {
      headers: { authorization: token },
    });
    expect(sparkpost.status).toBe(429);
    expect(sparkpost.headers.get("retry-after")).toBe("60");
    expect((await json(sparkpost)).errors).toHaveLength(1);
    const numonic = await call("GET", "/compat/numonic/api/v1/events", { token });
    expect(numonic.status).toBe(429);
    expect(await json(numonic)).toMatchObject({ success: false });
  });
});

describe("TRACKING_LIMITER: per client address on /o, /c, /u", () => {
  it("past the limit the pixel still answers its GIF and the click still redirects, recording nothing", async () => {
    const account = freshAccount();
    const ip = "198.51.100.71";
    await freshWindow(10);
    await exhaust(env.TRACKING_LIMITER!, ip, TRACKING_LIMIT);

    const open = await serve(
      trackingRequest(`/o/${await tokenFor("open", { account_id: account })}`, { ip }),
    );
    expect(open.res.status).toBe(200);
    expect(open.res.headers.get("content-type")).toBe("image/gif");
    expect(open.queued).toHaveLength(0);

    const click = await serve(
      trackingRequest(`/c/${await tokenFor("click", { account_id: account })}`, { ip }),
    );
    expect(click.res.status).toBe(302);
    expect(click.res.headers.get("location")).toBe("https://shop.example.com/");
    expect(click.queued).toHaveLength(0);

    // Another address is counted on its own and is recorded.
    const elsewhere = await serve(
      trackingRequest(`/o/${await tokenFor("open", { account_id: account })}`, { ip: "198.51.100.72" }),
    );
    expect(elsewhere.queued).toHaveLength(1);
  });

  it("answers a one-click unsubscribe past the limit with 429 and queues nothing", async () => {
    const account = freshAccount();
    const ip = "198.51.100.73";
    await freshWindow(10);
    await exhaust(env.TRACKING_LIMITER!, ip, TRACKING_LIMIT);
    const token = await tokenFor("unsubscribe", { account_id: account });
    const init = {
      ip,
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "List-Unsubscribe=One-Click",
    };
    const res = await serve(trackingRequest(`/u/${token}`, init));
    expect(res.res.status).toBe(429);
    expect(res.res.headers.get("retry-after")).toBe("10");
    expect((await json(res.res)).error.type).toBe("rate_limit_exceeded");
    expect(res.queued).toHaveLength(0);
    const browser = await serve(
      trackingRequest(`/u/${token}`, { ...init, headers: { ...init.headers, accept: "text/html" } }),
    );
    expect(browser.res.status).toBe(429);
    expect(browser.res.headers.get("content-type")).toContain("text/html");
  });

  it("counts an IPv6 client by its /48: two /64s of one /48 share a bucket", () => {
    const key = (ip: string) =>
      clientAddressKey(new Request("https://x.test/", { headers: { "cf-connecting-ip": ip } }));
    expect(key("2001:db8:0:12::1")).toBe("2001:db8:0::/48");
    expect(key("2001:db8:0:13::1")).toBe(key("2001:db8:0:12::1"));
    expect(key("2001:db8:0:ffff:1:2:3:4")).toBe(key("2001:db8:0:12::1"));
    expect(key("2001:db8:1:12::1")).not.toBe(key("2001:db8:0:12::1"));
    expect(key("2001:0db8:0000:0012:abcd:ef01:2345:6789")).toBe("2001:db8:0::/48");
    expect(key("2001:db8::")).toBe("2001:db8:0::/48");
    expect(key("::1")).toBe("0:0:0::/48");
    expect(key("203.0.113.9")).toBe("203.0.113.9");
    expect(clientAddressKey(new Request("https://x.test/"))).toBe("unknown");
  });
});
