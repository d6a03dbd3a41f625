/**
 * End to end, in Node: `wrangler dev` (real local D1, KV and Queues, on a throwaway persist dir
 * with its own generated variables) and Debian's Chromium driven by playwright-core. An email is
 * instrumented through the API, a browser renders it (the pixel loads) and clicks its link (which
 * lands on a local target server), and both events come back from GET /v1/events.
 *
 * Needs Chromium at /usr/bin/chromium (or CHROMIUM_PATH): `apt-get install -y chromium`. Without
 * it the test is skipped, except under CI=true, where a missing browser fails the run.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { SignJWT } from "jose";
import { type BrowserContext, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startWranglerDev, until } from "./wrangler-dev";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = process.env.CI === "true";
const INSTALL_HINT = `install it with \`apt-get update && apt-get install -y chromium\` (or set CHROMIUM_PATH)`;

if (!HAVE_CHROMIUM && !IN_CI) {
  console.warn(`[e2e] skipping the browser test: no Chromium at ${CHROMIUM}; ${INSTALL_HINT}`);
}

const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
/** A desktop Chrome user agent: headless Chromium's own ("HeadlessChrome") is, rightly, a crawler. */
const USER_AGENT =
  "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

const ACCOUNT = `acct_e2e_${randomBytes(4).toString("hex")}`;
const EMAIL_ID = `email_${crypto.randomUUID()}`;

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("a real browser opens and clicks an instrumented email", () => {
  let dir = "";
  const vars = {
    JWT_SECRET: randomBytes(36).toString("base64url"),
    TRACKING_KEYS: randomBytes(32).toString("base64url"),
  };
  let origin = "";
  let dev: DevServer | undefined;
  let target: Server | undefined;
  let targetOrigin = "";
  let emailHtml = "";
  const landings: string[] = [];
  let context: BrowserContext | undefined;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true and no Chromium at ${CHROMIUM}: ${INSTALL_HINT}`);
    // The browser's profile; wrangler dev keeps its own throwaway state (wrangler-dev.ts).
    dir = mkdtempSync(path.join(tmpdir(), "mailtrail-e2e-"));
    dev = await startWranglerDev({ ...vars, PUBLIC_BASE_URL: "{origin}" }, { startTimeoutMs: 45_000 });
    origin = dev.origin;

    // The target site and the page the email is shown on, on another loopback port.
    target = createServer((req, res) => {
      if (req.url === "/email") {
        res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(emailHtml);
      } else if (req.url?.startsWith("/landing")) {
        landings.push(req.url);
        res
          .writeHead(200, { "content-type": "text/html" })
          .end("<!doctype html><title>landed</title><p>landed");
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => target?.listen(0, "127.0.0.1", resolve));
    targetOrigin = `http://127.0.0.1:${(target.address() as AddressInfo).port}`;
  }, 90_000);

  afterAll(async () => {
    await context?.close().catch(() => {});
    await dev?.stop();
    await new Promise((resolve) => (target ? target.close(resolve) : resolve(undefined)));
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("records the open and the click, and the click lands on its exact target", async () => {
    const apiToken = await new SignJWT({ scope: "send events:read" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(ACCOUNT)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(vars.JWT_SECRET));
    const api = (pathname: string, init: RequestInit = {}) =>
      fetch(`${origin}${pathname}`, {
        ...init,
        headers: { authorization: `Bearer ${apiToken}`, "content-type": "application/json", ...init.headers },
      });

    const landing = `${targetOrigin}/landing?a=1&b=2#frag`;
    const instrumented = await api("/v1/messages/instrument", {
      method: "POST",
      body: JSON.stringify({
        email_id: EMAIL_ID,
        recipient: "Reader@Example.com",
        campaign: "e2e",
        tags: ["browser"],
        html:
          "<!doctype html><html><head><title>Hello</title></head><body><h1>Hello</h1>" +
          `<p><a id="cta" href="${targetOrigin}/landing?a=1&amp;b=2#frag" data-mt-name="cta">Read more</a></p>` +
          "</body></html>",
      }),
    });
    expect(instrumented.status).toBe(200);
    const body = (await instrumented.json()) as { html: string; pixel_url: string; links_tracked: number };
    expect(body.links_tracked).toBe(1);
    expect(body.pixel_url.startsWith(`${origin}/o/`)).toBe(true);
    emailHtml = body.html;

    context = await chromium.launchPersistentContext(path.join(dir, "chromium"), {
      executablePath: CHROMIUM,
      headless: true,
      args: CHROMIUM_ARGS,
      userAgent: USER_AGENT,
      timeout: 30_000,
    });
    const page = context.pages()[0] ?? (await context.newPage());
    const pixel = page.waitForResponse((r) => r.url() === body.pixel_url);
    await page.goto(`${targetOrigin}/email`);
    const pixelResponse = await pixel;
    expect(pixelResponse.status()).toBe(200);
    expect(pixelResponse.headers()["content-type"]).toBe("image/gif");
    expect(await page.evaluate(() => document.querySelector("img")?.naturalWidth)).toBe(1);

    const link = await page.getAttribute("#cta", "href");
    expect(link?.startsWith(`${origin}/c/`)).toBe(true);
    await page.click("#cta");
    await page.waitForURL(landing);
    expect(page.url()).toBe(landing);
    expect(landings).toEqual(["/landing?a=1&b=2"]);

    // The queue consumer writes in batches (max_batch_timeout): poll until both are there.
    const events = await until("the open and the click in GET /v1/events", 30_000, async () => {
      const res = await api(`/v1/events?email_id=${EMAIL_ID}`);
      const list = ((await res.json()) as { data: Record<string, any>[] }).data;
      return list.length >= 2 ? list : undefined;
    });
    expect(events.map((e) => e.type).sort()).toEqual(["email.clicked", "email.opened"]);
    for (const e of events) {
      expect(e).toMatchObject({ recipient: "reader@example.com", campaign: "e2e", tags: ["browser"] });
      expect(e.tracking).toMatchObject({ user_agent: USER_AGENT, bot: null });
    }
    const click = events.find((e) => e.type === "email.clicked");
    expect(click?.tracking).toMatchObject({ url: landing, link_name: "cta" });
  });
});
