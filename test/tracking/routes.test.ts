import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { newApp } from "../../src/app";
import type { Env } from "../../src/env";
import { mirrorKey } from "../../src/suppressions/mirror";
import { trackingKeyring } from "../../src/tracking/keyring";
import { locationHeader } from "../../src/tracking/routes/open-click";
import { consume, eventsDb, freshAccount, json, mintToken } from "../helpers";
import {
  BARRACUDA_UA,
  CHROME_UA,
  eventsOf,
  forgedToken,
  GOOGLE_PROXY_UA,
  serve,
  TRACK,
  tampered,
  tokenFor,
  trackingRequest,
} from "./support";

const GIF_43 = [
  0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, 0x00,
  0x00, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00,
  0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

const AMSTERDAM = {
  country: "NL",
  region: "North Holland",
  city: "Amsterdam",
  asn: 1136,
  asOrganization: "KPN",
};

async function expectPixel(res: Response) {
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("image/gif");
  expect(res.headers.get("cache-control")).toBe("no-store, no-cache, must-revalidate, private");
  expect([...new Uint8Array(await res.arrayBuffer())]).toEqual(GIF_43);
}

/** Tokens that must never record or redirect, for one kind. */
async function badTokens(kind: "open" | "click" | "unsubscribe", account: string) {
  const other = kind === "open" ? "click" : "open";
  return {
    garbage: "not-a-token",
    empty: "A",
    forged: await forgedToken(kind, account),
    tampered: tampered(await tokenFor(kind, { account_id: account })),
    "another kind": await tokenFor(other, { account_id: account }),
  };
}

describe("GET /o/{token}", () => {
  it("answers the 43-byte GIF and records email.opened with the request's tracking fields", async () => {
    const account = freshAccount();
    const token = await tokenFor("open", { account_id: account, topic: "newsletter" });
    const before = Date.now();
    const { res, queued } = await serve(trackingRequest(`/o/${token}`, { cf: AMSTERDAM }));
    await expectPixel(res);
    expect(queued).toHaveLength(1);
    const message = queued[0]!;
    expect(message.type).toBe("event");
    if (message.type !== "event") return;
    expect(message.suppress).toBeUndefined();
    expect(message.event).toMatchObject({
      account_id: account,
      type: "email.opened",
      email_id: "email_019e1972-e87e-7000-bf74-ba09e0ed0d62",
      recipient: "reader@example.com",
      topic: "newsletter",
      campaign: null,
      tags: [],
      tracking: {
        user_agent: CHROME_UA,
        ip_address: "203.0.113.9",
        url: null,
        link_name: null,
        geo: { country: "NL", region: "North Holland", city: "Amsterdam" },
        bot: null,
      },
    });
    expect(message.event.id).toMatch(/^evt_[0-9a-f]{24}o[0-9a-z]+$/);
    expect(message.event.occurred_at).toBeGreaterThanOrEqual(before);
    expect(message.event.occurred_at).toBeLessThanOrEqual(Date.now());

    await consume(queued);
    const [stored] = await eventsOf(account);
    expect(stored).toMatchObject({
      type: "email.opened",
      recipient: "reader@example.com",
      topic: "newsletter",
    });
    expect(stored!.tracking).toEqual(message.event.tracking);
  });

  it("records geo as null when the request carries no location", async () => {
    const account = freshAccount();
    const { queued } = await serve(trackingRequest(`/o/${await tokenFor("open", { account_id: account })}`));
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({ event: { tracking: { geo: null } } });
  });

  it("answers the same GIF to every invalid token and records nothing", async () => {
    const account = freshAccount();
    for (const [name, token] of Object.entries(await badTokens("open", account))) {
      const { res, queued } = await serve(trackingRequest(`/o/${token}`));
      await expectPixel(res);
      expect(queued, name).toEqual([]);
    }
    const long = await serve(trackingRequest(`/o/${"A".repeat(13_000)}`));
    await expectPixel(long.res);
    expect(long.queued).toEqual([]);
  });

  it("records a Gmail image proxy fetch as a proxy open", async () => {
    const account = freshAccount();
    const token = await tokenFor("open", { account_id: account });
    const { res, queued } = await serve(
      trackingRequest(`/o/${token}`, {
        userAgent: GOOGLE_PROXY_UA,
        cf: { asn: 15169, asOrganization: "Google" },
      }),
    );
    await expectPixel(res);
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({
      event: { type: "email.opened", tracking: { bot: { kind: "proxy", source: "google" } } },
    });
    await consume(queued);
    expect((await eventsOf(account))[0]?.tracking.bot).toEqual({ kind: "proxy", source: "google" });
  });

  it("drops scanners, crawlers and probes but still answers the GIF", async () => {
    const account = freshAccount();
    const token = await tokenFor("open", { account_id: account });
    const cases = {
      "link scanner user agent": trackingRequest(`/o/${token}`, { userAgent: BARRACUDA_UA }),
      "security gateway network": trackingRequest(`/o/${token}`, { cf: { asn: 26211, asOrganization: "x" } }),
      crawler: trackingRequest(`/o/${token}`, {
        userAgent: "Googlebot/2.1 (+http://www.google.com/bot.html)",
      }),
      "no user agent": trackingRequest(`/o/${token}`, { userAgent: null }),
    };
    for (const [name, request] of Object.entries(cases)) {
      const { res, queued } = await serve(request);
      await expectPixel(res);
      expect(queued, name).toEqual([]);
    }
    const head = await serve(trackingRequest(`/o/${token}`, { method: "HEAD" }));
    expect(head.res.status).toBe(200);
    expect(head.queued).toEqual([]);
  });

  it("still answers the GIF when the queue fails, and logs the failure", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const token = await tokenFor("open", { account_id: freshAccount() });
      const { res, queued } = await serve(trackingRequest(`/o/${token}`), { failQueue: true });
      await expectPixel(res);
      expect(queued).toEqual([]);
      expect(logged.mock.calls.map((c) => String(c[0])).join("\n")).toContain("tracking event not recorded");
    } finally {
      logged.mockRestore();
    }
  });

  it("still answers the GIF when TRACKING_KEYS is missing", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const token = await tokenFor("open", { account_id: freshAccount() });
      const { res, queued } = await serve(trackingRequest(`/o/${token}`), { vars: { TRACKING_KEYS: "" } });
      await expectPixel(res);
      expect(queued).toEqual([]);
      expect(logged.mock.calls.map((c) => String(c[0])).join("\n")).toContain("TRACKING_KEYS");
    } finally {
      logged.mockRestore();
    }
  });
});

describe("GET|HEAD /c/{token}", () => {
  const target = "https://shop.example.com/p/ü?a=1&b=2&utm_source=mail&x=%2F#frag?x=1";

  it("redirects to the target exactly and records email.clicked with its URL and link name", async () => {
    const account = freshAccount();
    const url = "https://shop.example.com/p?a=1&b=2&utm_source=mail&x=%2F#frag?x=1";
    const token = await tokenFor("click", { account_id: account, url, link_name: "cta" });
    const { res, queued } = await serve(trackingRequest(`/c/${token}`, { cf: AMSTERDAM }));
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe(url);
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({
      type: "event",
      event: {
        account_id: account,
        type: "email.clicked",
        tracking: {
          user_agent: CHROME_UA,
          ip_address: "203.0.113.9",
          url,
          link_name: "cta",
          geo: { country: "NL", region: "North Holland", city: "Amsterdam" },
          bot: null,
        },
      },
    });
    await consume(queued);
    expect((await eventsOf(account))[0]).toMatchObject({ type: "email.clicked", tracking: { url } });
  });

  it("percent-encodes only what a Location header cannot carry", async () => {
    expect(locationHeader(target)).toBe(
      "https://shop.example.com/p/%C3%BC?a=1&b=2&utm_source=mail&x=%2F#frag?x=1",
    );
    expect(locationHeader("http://a.example/?q=a b&r=%20")).toBe("http://a.example/?q=a%20b&r=%20");
    const token = await tokenFor("click", { account_id: freshAccount(), url: target });
    const { res } = await serve(trackingRequest(`/c/${token}`));
    expect(res.headers.get("location")).toBe(locationHeader(target));
  });

  it("answers HEAD with the same redirect and records nothing", async () => {
    const token = await tokenFor("click", { account_id: freshAccount(), url: "http://example.org/x?y=1#z" });
    const { res, queued } = await serve(trackingRequest(`/c/${token}`, { method: "HEAD" }));
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("http://example.org/x?y=1#z");
    expect(queued).toEqual([]);
  });

  it("answers 404 not_found to forged, tampered and foreign tokens, never redirecting or recording", async () => {
    const account = freshAccount();
    for (const [name, token] of Object.entries(await badTokens("click", account))) {
      for (const method of ["GET", "HEAD"]) {
        const { res, queued } = await serve(trackingRequest(`/c/${token}`, { method }));
        expect(res.status, `${name} ${method}`).toBe(404);
        expect(res.headers.get("location"), name).toBeNull();
        expect(queued, name).toEqual([]);
        if (method === "GET") expect((await json(res)).error.type).toBe("not_found");
      }
    }
  });

  it("redirects scanners without recording them", async () => {
    const account = freshAccount();
    const now = Math.floor(Date.now() / 1000);
    const justSent = await tokenFor("click", { account_id: account, issued_at: now - 5 });
    const cases = {
      "link scanner user agent": trackingRequest(`/c/${justSent}`, {
        userAgent: "Mozilla/5.0 BingPreview/1.0b",
      }),
      "Safe Links detonation seconds after sending": trackingRequest(`/c/${justSent}`, {
        cf: { asn: 8075, asOrganization: "Microsoft Corporation" },
      }),
      "security gateway network": trackingRequest(`/c/${justSent}`, {
        cf: { asn: 30031, asOrganization: "x" },
      }),
    };
    for (const [name, request] of Object.entries(cases)) {
      const { res, queued } = await serve(request);
      expect(res.status, name).toBe(302);
      expect(queued, name).toEqual([]);
    }
    // A person clicking seconds after sending is recorded: timing alone never drops a click.
    const person = await serve(trackingRequest(`/c/${justSent}`));
    expect(person.queued).toHaveLength(1);
    // From Microsoft's network an hour later: a person on a cloud desktop.
    const later = await tokenFor("click", { account_id: account, issued_at: now - 3600 });
    const cloud = await serve(trackingRequest(`/c/${later}`, { cf: { asn: 8075 } }));
    expect(cloud.queued).toHaveLength(1);
  });
});

describe("the pixel and click paths read no storage", () => {
  it("touches neither D1 nor KV while serving an open or a click, and sends one queue message each", async () => {
    const account = freshAccount();
    const cases: [string, number][] = [
      [`/o/${await tokenFor("open", { account_id: account })}`, 1],
      [`/c/${await tokenFor("click", { account_id: account })}`, 1],
      [`/o/${await forgedToken("open", account)}`, 0],
      [`/c/${await forgedToken("click", account)}`, 0],
    ];
    for (const [path, sends] of cases) {
      const { res, queued, storageCalls } = await serve(trackingRequest(path, { cf: AMSTERDAM }));
      expect(res.status).toBeLessThan(500);
      expect(storageCalls, path).toEqual([]);
      expect(queued, path).toHaveLength(sends);
    }
    // The counters do see storage: a route that reads D1 shows up.
    const { res, storageCalls } = await serve(
      new Request(`${TRACK}/v1/events`, {
        headers: { authorization: `Bearer ${await mintToken(account, "events:read")}` },
      }),
    );
    expect(res.status).toBe(200);
    expect(storageCalls).toContain("DB.prepare");
  });
});

describe("GET /u/{token}", () => {
  it("answers a page with one button that posts back, and records nothing", async () => {
    const token = await tokenFor("unsubscribe", { account_id: freshAccount(), topic: "newsletter" });
    const { res, queued, storageCalls } = await serve(
      trackingRequest(`/u/${token}`, { headers: { accept: "text/html" } }),
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    const html = await res.text();
    expect(html.match(/<form /g)).toHaveLength(1);
    expect(html.match(/<button /g)).toHaveLength(1);
    expect(html).toContain(`<form method="post" action="/u/${token}">`);
    expect(html).toContain('name="List-Unsubscribe" value="One-Click"');
    expect(html).toContain("newsletter");
    expect(html).not.toContain("reader@example.com");
    expect(queued).toEqual([]);
    expect(storageCalls).toEqual([]);
  });

  it("answers 404 to an invalid token: a page for browsers, the JSON error otherwise", async () => {
    const account = freshAccount();
    for (const [name, token] of Object.entries(await badTokens("unsubscribe", account))) {
      const page = await serve(trackingRequest(`/u/${token}`, { headers: { accept: "text/html,*/*" } }));
      expect(page.res.status, name).toBe(404);
      expect(await page.res.text()).toContain("This link is not valid");
      const api = await serve(trackingRequest(`/u/${token}`, { headers: { accept: "*/*" } }));
      expect(api.res.status, name).toBe(404);
      expect((await json(api.res)).error.type).toBe("not_found");
      expect([...page.queued, ...api.queued], name).toEqual([]);
    }
  });
});

describe("POST /u/{token}", () => {
  const oneClick = (token: string, accept = "*/*") =>
    trackingRequest(`/u/${token}`, {
      method: "POST",
      userAgent: "Mozilla/5.0 (compatible; GoogleOneClick)",
      headers: { "content-type": "application/x-www-form-urlencoded", accept },
      body: "List-Unsubscribe=One-Click",
    });

  it("records email.unsubscribed and a topic suppression, mirrored to KV (RFC 8058 one-click)", async () => {
    const account = freshAccount();
    const token = await tokenFor("unsubscribe", {
      account_id: account,
      recipient: "Reader@Example.com",
      topic: "newsletter",
    });
    const { res, queued } = await serve(oneClick(token));
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ object: "unsubscribe", unsubscribed: true, topic: "newsletter" });
    expect(queued).toHaveLength(1);
    expect(queued[0]).toMatchObject({
      type: "event",
      event: {
        type: "email.unsubscribed",
        recipient: "reader@example.com",
        topic: "newsletter",
        tracking: null,
      },
      suppress: { reason: "unsubscribe", topic: "newsletter" },
    });

    await consume(queued);
    const row = await eventsDb(account)
      .prepare("SELECT * FROM suppressions WHERE account_id = ? AND email = ?")
      .bind(account, "reader@example.com")
      .first<Record<string, unknown>>();
    expect(row).toMatchObject({
      topic: "newsletter",
      reason: "unsubscribe",
      email_id: "email_019e1972-e87e-7000-bf74-ba09e0ed0d62",
    });
    const mirrored = await env.SUPPRESSIONS.get<{ topic: string | null; reason: string }[]>(
      mirrorKey(account, "reader@example.com"),
      "json",
    );
    expect(mirrored).toEqual([expect.objectContaining({ topic: "newsletter", reason: "unsubscribe" })]);
    expect(mirrorKey(account, "reader@example.com")).toBe(`sup:${account}:reader@example.com`);
    const [stored] = await eventsOf(account);
    expect(stored).toMatchObject({ type: "email.unsubscribed", topic: "newsletter", tracking: null });
  });

  it("suppresses every topic when the token has none", async () => {
    const account = freshAccount();
    const token = await tokenFor("unsubscribe", { account_id: account });
    const { res, queued } = await serve(oneClick(token));
    expect(res.status).toBe(200);
    expect(queued[0]).toMatchObject({ suppress: { reason: "unsubscribe", topic: null } });
    await consume(queued);
    const mirrored = await env.SUPPRESSIONS.get(mirrorKey(account, "reader@example.com"), "json");
    expect(mirrored).toEqual([expect.objectContaining({ topic: null, reason: "unsubscribe" })]);
  });

  it("answers the page's button with a confirmation page", async () => {
    const token = await tokenFor("unsubscribe", { account_id: freshAccount(), topic: "digest" });
    const { res, queued } = await serve(oneClick(token, "text/html,application/xhtml+xml"));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    expect(await res.text()).toContain("You are unsubscribed");
    expect(queued).toHaveLength(1);
  });

  it("answers 404 to an invalid token and records nothing", async () => {
    const account = freshAccount();
    for (const [name, token] of Object.entries(await badTokens("unsubscribe", account))) {
      const { res, queued } = await serve(oneClick(token));
      expect(res.status, name).toBe(404);
      expect((await json(res)).error.type).toBe("not_found");
      expect(queued, name).toEqual([]);
    }
  });

  it("answers 503 when the queue refuses the work, so the client retries", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const token = await tokenFor("unsubscribe", { account_id: freshAccount() });
      const api = await serve(oneClick(token), { failQueue: true });
      expect(api.res.status).toBe(503);
      expect((await json(api.res)).error.type).toBe("unavailable");
      const page = await serve(oneClick(token, "text/html"), { failQueue: true });
      expect(page.res.status).toBe(503);
      expect(await page.res.text()).toContain("try again");
    } finally {
      logged.mockRestore();
    }
  });
});

describe("tracking keyring", () => {
  it("is imported once per isolate and per TRACKING_KEYS value", async () => {
    const a = trackingKeyring(env as unknown as Env);
    expect(trackingKeyring({ ...(env as unknown as Env) })).toBe(a);
    const rotated = { ...(env as unknown as Env), TRACKING_KEYS: env.TRACKING_KEYS?.split(",")[1] };
    const b = trackingKeyring(rotated);
    expect(b).not.toBe(a);
    expect((await b).keys).toHaveLength(1);
  });
});

describe("the tracking routes in the API document", () => {
  it("documents every tracking path and method", async () => {
    const { res } = await serve(new Request(`${TRACK}/openapi.json`));
    const doc = await json(res);
    expect(Object.keys(doc.paths["/o/{token}"])).toEqual(["get"]);
    expect(Object.keys(doc.paths["/c/{token}"]).sort()).toEqual(["get", "head"]);
    expect(Object.keys(doc.paths["/u/{token}"]).sort()).toEqual(["get", "post"]);
  });
});

describe("the hot path before the router", () => {
  it("answers a click with configuration_error in the error shape when TRACKING_KEYS is missing", async () => {
    const logged = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      const token = await tokenFor("click", { account_id: freshAccount() });
      const { res, queued } = await serve(trackingRequest(`/c/${token}`), { vars: { TRACKING_KEYS: "" } });
      expect(res.status).toBe(500);
      expect(res.headers.get("location")).toBeNull();
      expect(res.headers.get("request-id")).toMatch(/^req_/);
      const body = await json(res);
      expect(body.error.type).toBe("configuration_error");
      expect(body.error.message).toContain("TRACKING_KEYS");
      expect(queued).toEqual([]);
    } finally {
      logged.mockRestore();
    }
  });

  it("answers opens and clicks with a Request-Id, the same way the router does", async () => {
    const account = freshAccount();
    const click = await tokenFor("click", { account_id: account });
    const viaWorker = await serve(trackingRequest(`/c/${click}`));
    const ctx = createExecutionContext();
    const viaRouter = await newApp().fetch(trackingRequest(`/c/${click}`), env, ctx);
    await waitOnExecutionContext(ctx);
    expect(viaWorker.res.status).toBe(302);
    expect(viaRouter.status).toBe(302);
    expect(viaWorker.res.headers.get("location")).toBe(viaRouter.headers.get("location"));
    expect(viaWorker.res.headers.get("request-id")).toMatch(/^req_[0-9a-f]{24}$/);
    const pixel = await serve(trackingRequest(`/o/${await tokenFor("open", { account_id: account })}?utm=1`));
    expect(pixel.res.headers.get("request-id")).toMatch(/^req_[0-9a-f]{24}$/);
    expect(pixel.queued).toHaveLength(1);
  });

  it("leaves other shapes of path and method to the router", async () => {
    expect((await serve(trackingRequest("/o/a/b"))).res.status).toBe(404);
    expect((await serve(trackingRequest("/o/"))).res.status).toBe(404);
    const post = await serve(trackingRequest("/c/abc", { method: "POST" }));
    expect(post.res.status).toBe(405);
    expect(post.res.headers.get("allow")).toContain("GET");
  });
});
