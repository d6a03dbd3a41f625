import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Env } from "../../src/env";
import type { QueueMessage } from "../../src/pipeline/messages";
import { trackingKeyring } from "../../src/tracking/keyring";
import { openToken } from "../../src/tracking/token";
import { BASE, consume, eventsDb, freshAccount, json, mintToken } from "../helpers";
import { eventsOf, pathOf, type ServeOptions, serve, TRACK, trackingRequest } from "./support";

const EMAIL_ID = "email_019e1972-e87e-7000-bf74-ba09e0ed0d62";

async function instrument(
  token: string,
  body: unknown,
  options: ServeOptions & { contentType?: string } = {},
) {
  const served = await serve(
    new Request(`${BASE}/v1/messages/instrument`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${token}`,
        "content-type": options.contentType ?? "application/json",
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    }),
    options,
  );
  return { ...served, body: await json(served.res) };
}

const sendToken = (account: string) => mintToken(account, "send");

const hrefs = (html: string) => [...html.matchAll(/<a\b[^>]*?href="([^"]*)"/gi)].map((m) => m[1]!);

async function openPayload(url: string, kind: "open" | "click" | "unsubscribe") {
  const token = pathOf(url).split("/")[2]!;
  return openToken(await trackingKeyring(env as unknown as Env), token, kind);
}

const SAMPLE = `<!doctype html>
<html><head><title>Spring</title></head>
<body>
<p>Hello</p>
<a href="https://shop.example.com/p?a=1&amp;b=2#frag" data-mt-name="Spring &amp; Summer">Shop</a>
<a href="http://example.org/plain">Plain http</a>
<a href="mailto:help@example.com">Mail</a>
<a href="tel:+3120555">Call</a>
<a href="#top">Top</a>
<a href="/relative/path">Relative</a>
<a href="//example.net/scheme-relative">Scheme-relative</a>
<a href="https://example.com/keep" data-mt-notrack data-mt-name="kept">Not tracked</a>
<a name="anchor-only">No href</a>
<A HREF="https://example.com/UPPER" DATA-MT-NAME="upper">Upper case</A>
<a href="
  https://example.com/spaced?q=1
">Spaced</a>
</body>
</html>`;

describe("POST /v1/messages/instrument", () => {
  it("rewrites http(s) links, inserts the pixel before </body>, and issues the unsubscribe URL and headers", async () => {
    const account = freshAccount();
    const { res, body, queued } = await instrument(await sendToken(account), {
      email_id: EMAIL_ID,
      recipient: "Reader@Example.COM",
      html: SAMPLE,
      topic: "newsletter",
    });
    expect(res.status).toBe(200);
    expect(Object.keys(body).sort()).toEqual([
      "headers",
      "html",
      "links_tracked",
      "pixel_url",
      "unsubscribe_url",
    ]);
    expect(body.links_tracked).toBe(4);

    const links = hrefs(body.html);
    expect(links.slice(0, 2).every((h) => h.startsWith(`${TRACK}/c/`))).toBe(true);
    expect(links.slice(2)).toEqual([
      "mailto:help@example.com",
      "tel:+3120555",
      "#top",
      "/relative/path",
      "//example.net/scheme-relative",
      "https://example.com/keep",
      `${links[8]}`,
      `${links[9]}`,
    ]);
    expect(links[8]!.startsWith(`${TRACK}/c/`)).toBe(true);
    expect(links[9]!.startsWith(`${TRACK}/c/`)).toBe(true);
    expect(body.html).not.toMatch(/data-mt-/i);
    expect(body.html).toContain(`<A HREF="${links[8]}">Upper case</A>`);
    expect(body.html).toContain(">Not tracked</a>");

    const first = await openPayload(links[0]!, "click");
    expect(first).toMatchObject({
      account_id: account,
      email_id: EMAIL_ID,
      recipient: "reader@example.com",
      topic: "newsletter",
      url: "https://shop.example.com/p?a=1&b=2#frag",
      link_name: "Spring & Summer",
    });
    expect((await openPayload(links[1]!, "click"))?.url).toBe("http://example.org/plain");
    expect((await openPayload(links[8]!, "click"))?.url).toBe("https://example.com/UPPER");
    expect((await openPayload(links[8]!, "click"))?.link_name).toBe("upper");
    expect((await openPayload(links[9]!, "click"))?.url).toBe("https://example.com/spaced?q=1");

    expect(body.pixel_url).toMatch(new RegExp(`^${TRACK}/o/[A-Za-z0-9_-]+$`));
    expect(body.html).toContain(
      `<img src="${body.pixel_url}" width="1" height="1" alt="" style="display:block;width:1px;height:1px;border:0;margin:0;padding:0"></body>`,
    );
    expect(body.html.match(/<img /g)).toHaveLength(1);
    expect(await openPayload(body.pixel_url, "open")).toMatchObject({ recipient: "reader@example.com" });

    expect(body.unsubscribe_url).toMatch(new RegExp(`^${TRACK}/u/[A-Za-z0-9_-]+$`));
    expect(body.headers).toEqual({
      "List-Unsubscribe": `<${body.unsubscribe_url}>`,
      "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    });
    expect(await openPayload(body.unsubscribe_url, "unsubscribe")).toMatchObject({ topic: "newsletter" });

    // The message is registered through the queue.
    expect(queued).toEqual([
      expect.objectContaining({
        type: "register",
        account_id: account,
        message: expect.objectContaining({ email_id: EMAIL_ID, topic: "newsletter" }),
      }),
    ]);
  });

  it("keeps a target's query string and fragment exactly, through the click redirect", async () => {
    const account = freshAccount();
    const target = "https://shop.example.com/p?a=1&b=2#frag";
    const { body } = await instrument(await sendToken(account), {
      email_id: EMAIL_ID,
      recipient: "reader@example.com",
      html: `<a href="https://shop.example.com/p?a=1&amp;b=2#frag">x</a><a href="https://shop.example.com/p?a=1&b=2#frag">y</a>`,
    });
    const [escaped, raw] = hrefs(body.html);
    for (const link of [escaped!, raw!]) {
      const { res, queued } = await serve(trackingRequest(pathOf(link)));
      expect(res.status).toBe(302);
      expect(res.headers.get("location")).toBe(target);
      expect(queued).toMatchObject([{ event: { type: "email.clicked", tracking: { url: target } } }]);
    }
    // Character references follow HTML's attribute rules: `&copy=` in a query is not ©.
    const tricky = await instrument(await sendToken(account), {
      email_id: EMAIL_ID,
      recipient: "reader@example.com",
      html: `<a href="https://x.example/?a=1&copy=2&amp;lt=3&#x26;d=%20#f&quot;">x</a>`,
    });
    const [link] = hrefs(tricky.body.html);
    const { res } = await serve(trackingRequest(pathOf(link!)));
    expect(res.headers.get("location")).toBe('https://x.example/?a=1&copy=2&lt=3&d=%20#f"');
  });

  it("places the pixel before </html> without </body>, and at the end without either", async () => {
    const token = await sendToken(freshAccount());
    const base = { email_id: EMAIL_ID, recipient: "reader@example.com" };
    const noBody = await instrument(token, { ...base, html: "<html><p>Hi</p></html>" });
    expect(noBody.body.html).toMatch(/^<html><p>Hi<\/p><img src="[^"]+"[^>]*><\/html>$/);
    const fragment = await instrument(token, { ...base, html: "<p>Hi</p>" });
    expect(fragment.body.html).toMatch(/^<p>Hi<\/p><img src="[^"]+"[^>]*>$/);
  });

  it("skips each part that is turned off", async () => {
    const token = await sendToken(freshAccount());
    const html = `<body><a href="https://example.com/" data-mt-name="x">x</a></body>`;
    const { res, body } = await instrument(token, {
      email_id: EMAIL_ID,
      recipient: "reader@example.com",
      html,
      opens: false,
      clicks: false,
      unsubscribe: false,
    });
    expect(res.status).toBe(200);
    expect(body).toEqual({
      html: `<body><a href="https://example.com/">x</a></body>`,
      pixel_url: null,
      unsubscribe_url: null,
      headers: {},
      links_tracked: 0,
    });
  });

  it("uses the request's origin when PUBLIC_BASE_URL is not set", async () => {
    const { body } = await instrument(
      await sendToken(freshAccount()),
      { email_id: EMAIL_ID, recipient: "reader@example.com", html: "<a href='https://example.com/'>x</a>" },
      { vars: { PUBLIC_BASE_URL: "" } },
    );
    expect(body.pixel_url.startsWith(`${BASE}/o/`)).toBe(true);
    expect(hrefs(body.html)[0]!.startsWith(`${BASE}/c/`)).toBe(true);
  });

  it("refuses bad fields, naming each", async () => {
    const token = await sendToken(freshAccount());
    const good = { email_id: EMAIL_ID, recipient: "reader@example.com", html: "<p>x</p>" };
    const cases: [Record<string, unknown>, string][] = [
      [{ ...good, recipient: "not an address" }, "recipient"],
      [{ email_id: EMAIL_ID, html: "<p>x</p>" }, "recipient"],
      [{ ...good, html: undefined }, "html"],
      [{ ...good, html: "" }, "html"],
      [{ ...good, email_id: "" }, "email_id"],
      [{ ...good, topic: "Not A Topic" }, "topic"],
      [{ ...good, tags: ["ok", "not ok"] }, "tags"],
      [{ ...good, tags: Array.from({ length: 11 }, (_, i) => `t${i}`) }, "tags"],
      [{ ...good, opens: "yes" }, "opens"],
      [{ ...good, click: false }, "body"],
    ];
    for (const [body, param] of cases) {
      const res = await instrument(token, body);
      expect(res.res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.type).toBe("validation_error");
      if (param !== "body") expect(res.body.error.param, JSON.stringify(body)).toBe(param);
      expect(res.queued).toEqual([]);
    }
    const tooLong = await instrument(token, {
      ...good,
      html: `<a href="https://example.com/?q=${"x".repeat(7000)}">x</a>`,
    });
    expect(tooLong.res.status).toBe(400);
    expect(tooLong.body.error.param).toBe("html");
    const notJson = await instrument(token, "<p>x</p>", { contentType: "text/html" });
    expect(notJson.res.status).toBe(415);
  });

  it("requires the send scope and keeps to the token's account unless admin", async () => {
    const account = freshAccount();
    const body = { email_id: EMAIL_ID, recipient: "reader@example.com", html: "<p>x</p>" };
    expect((await instrument("not-a-jwt", body)).res.status).toBe(401);
    expect((await instrument(await mintToken(account, "events:read"), body)).res.status).toBe(403);
    const foreign = await instrument(await sendToken(account), { ...body, account_id: freshAccount() });
    expect(foreign.res.status).toBe(403);
    expect(foreign.body.error.param).toBe("account_id");

    const other = freshAccount();
    const admin = await instrument(await mintToken(account, "admin"), { ...body, account_id: other });
    expect(admin.res.status).toBe(200);
    expect(await openPayload(admin.body.pixel_url, "open")).toMatchObject({ account_id: other });
    expect(admin.queued[0]).toMatchObject({ type: "register", account_id: other });
  });

  it("answers 503 when the registration cannot be queued", async () => {
    const { res, body } = await instrument(
      await sendToken(freshAccount()),
      { email_id: EMAIL_ID, recipient: "reader@example.com", html: "<p>x</p>" },
      { failQueue: true },
    );
    expect(res.status).toBe(503);
    expect(body.error.type).toBe("unavailable");
  });

  it("is in the API document", async () => {
    const { res } = await serve(new Request(`${BASE}/openapi.json`));
    const doc = await json(res);
    const op = doc.paths["/v1/messages/instrument"].post;
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(["200", "400", "401", "403", "503"]));
    expect(JSON.stringify(op.requestBody)).toContain("InstrumentRequest");
  });
});

describe("engagement events of an instrumented message", () => {
  it("carry the registered dimensions: campaign, topic, template, tags, from and subject", async () => {
    const account = freshAccount();
    const email_id = `email_${crypto.randomUUID()}`;
    const { body, queued: registration } = await instrument(await sendToken(account), {
      email_id,
      recipient: "reader@example.com",
      from: "Shop <news@mail.example.com>",
      subject: "Spring sale",
      topic: "promotions",
      campaign: "spring",
      template_id: "tpl-spring",
      tags: ["promo", "q2", "promo"],
      html: `<body><a href="https://shop.example.com/sale?id=7#top" data-mt-name="sale">Sale</a></body>`,
    });
    const queued: QueueMessage[] = [...registration];
    queued.push(...(await serve(trackingRequest(pathOf(body.pixel_url)))).queued);
    queued.push(...(await serve(trackingRequest(pathOf(hrefs(body.html)[0]!)))).queued);
    const unsubscribe = await serve(
      trackingRequest(pathOf(body.unsubscribe_url), {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "List-Unsubscribe=One-Click",
      }),
    );
    expect(unsubscribe.res.status).toBe(200);
    queued.push(...unsubscribe.queued);
    expect(queued.map((m) => (m.type === "event" ? m.event.type : m.type))).toEqual([
      "register",
      "email.opened",
      "email.clicked",
      "email.unsubscribed",
    ]);

    await consume(queued);
    const events = await eventsOf(account, `email_id=${email_id}`);
    expect(events.map((e) => e.type).sort()).toEqual(["email.clicked", "email.opened", "email.unsubscribed"]);
    for (const e of events) {
      expect(e).toMatchObject({
        email_id,
        recipient: "reader@example.com",
        from: "news@mail.example.com",
        from_domain: "mail.example.com",
        subject: "Spring sale",
        topic: "promotions",
        campaign: "spring",
        template_id: "tpl-spring",
        tags: ["promo", "q2"],
      });
    }
    expect(events.find((e) => e.type === "email.clicked")?.tracking).toMatchObject({
      url: "https://shop.example.com/sale?id=7#top",
      link_name: "sale",
      bot: null,
    });
    // The unsubscribe suppressed the message's topic only.
    const row = await eventsDb(account)
      .prepare("SELECT topic, reason FROM suppressions WHERE account_id = ?")
      .bind(account)
      .first();
    expect(row).toEqual({ topic: "promotions", reason: "unsubscribe" });
  });

  it("are enriched even when they reach the consumer before the registration", async () => {
    const account = freshAccount();
    const email_id = `email_${crypto.randomUUID()}`;
    const { body, queued: registration } = await instrument(await sendToken(account), {
      email_id,
      recipient: "reader@example.com",
      campaign: "late",
      html: "<p>x</p>",
    });
    const open = await serve(trackingRequest(pathOf(body.pixel_url)));
    await consume(open.queued);
    await consume(registration);
    const [event] = await eventsOf(account, `email_id=${email_id}`);
    expect(event).toMatchObject({ type: "email.opened", campaign: "late" });
  });
});
