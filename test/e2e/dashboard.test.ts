/**
 * The dashboard end to end, in Node: `wrangler dev` serves /dashboard as static assets and the API
 * from the Worker, on real local D1 and Queues. Data is seeded through the real ingestion paths:
 * signed SNS notifications of SES deliveries, bounces and complaints (our test certificate, served
 * from loopback as SNS_CERT_HOST_PATTERN allows), and tracked opens (people and Gmail's proxy) and
 * clicks. Debian's Chromium, through playwright-core, opens /dashboard, enters a token, and checks
 * that the charts and the events table show the seeded data; a screenshot is saved as an artifact
 * in test/e2e/artifacts/ (gitignored), at desktop and phone widths.
 */
import { createSign, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { SignJWT } from "jose";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startWranglerDev, until } from "./wrangler-dev";

const ROOT = path.resolve(import.meta.dirname, "../..");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const HAVE_CHROMIUM = existsSync(CHROMIUM);
const IN_CI = process.env.CI === "true";
const ARTIFACTS = path.join(import.meta.dirname, "artifacts");
const FIXTURES = path.resolve(ROOT, "../shared/fixtures/ses/event-publishing");
const ACCOUNT = `acct_dash_${randomBytes(4).toString("hex")}`;
const TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events";
const PERSON_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";
const GMAIL_PROXY_UA =
  "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)";

/**
 * SNS's string to sign for a Notification without Subject (SPEC §7: each name and value followed
 * by a newline). Written out here: src/ses/sns.ts is typed for workerd, not Node.
 */
function stringToSign(m: {
  Message: string;
  MessageId: string;
  Timestamp: string;
  TopicArn: string;
  Type: string;
}) {
  return [
    "Message",
    m.Message,
    "MessageId",
    m.MessageId,
    "Timestamp",
    m.Timestamp,
    "TopicArn",
    m.TopicArn,
    "Type",
    m.Type,
  ]
    .map((part) => `${part}\n`)
    .join("");
}

/** Every `timestamp` in an SES record set to `at`, so the event falls in the dashboard's window. */
function retime(value: unknown, at: string): unknown {
  if (Array.isArray(value)) return value.map((v) => retime(v, at));
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        k === "timestamp" && typeof v === "string" ? at : retime(v, at),
      ]),
    );
  }
  return value;
}

describe.skipIf(!HAVE_CHROMIUM && !IN_CI)("the dashboard shows seeded metrics and events", () => {
  const secret = randomBytes(36).toString("base64url");
  let origin = "";
  let certOrigin = "";
  let dev: DevServer | undefined;
  let certServer: Server | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    if (!HAVE_CHROMIUM) throw new Error(`CI=true and no Chromium at ${CHROMIUM}`);
    certServer = createServer((_req, res) => {
      res.writeHead(200, { "content-type": "application/x-pem-file" });
      res.end(readFileSync(path.join(ROOT, "test/ses/fixtures/test-cert.pem")));
    });
    await new Promise<void>((resolve) => certServer?.listen(0, "127.0.0.1", resolve));
    certOrigin = `http://127.0.0.1:${(certServer.address() as AddressInfo).port}`;

    dev = await startWranglerDev(
      {
        JWT_SECRET: secret,
        TRACKING_KEYS: randomBytes(32).toString("base64url"),
        PUBLIC_BASE_URL: "{origin}",
        SNS_TOPIC_ARNS: `${TOPIC}=${ACCOUNT}`,
        SNS_CERT_HOST_PATTERN: "^127\\.0\\.0\\.1$",
      },
      { args: ["--test-scheduled"] },
    ); // the alert evaluation runs in the scheduled work: /__scheduled runs it
    origin = dev.origin;
  }, 300_000);

  afterAll(async () => {
    await browser?.close().catch(() => {});
    await dev?.stop();
    await new Promise((resolve) => (certServer ? certServer.close(resolve) : resolve(undefined)));
  });

  it("serves /dashboard as a static page while the API stays on the Worker", async () => {
    const page = await fetch(`${origin}/dashboard`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(await page.text()).toContain('src="/dashboard/app.js"');
    // public/_headers: the page may load scripts from this origin only, and never in a frame.
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    const script = await fetch(`${origin}/dashboard/app.js`);
    expect(script.status).toBe(200);
    expect(await script.text()).not.toMatch(/https?:\/\/(?!www\.w3\.org)/); // nothing from a CDN
    const api = await fetch(`${origin}/v1/metrics`);
    expect(api.status).toBe(401);
  });

  it("charts and lists the seeded events", async () => {
    const token = await new SignJWT({ scope: "send events:read alerts:write" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(ACCOUNT)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(secret));
    const api = (pathname: string, init: RequestInit = {}) =>
      fetch(`${origin}${pathname}`, {
        ...init,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers },
      });

    // SES outcomes through signed SNS notifications: 5 deliveries, 2 bounces, 1 complaint.
    const key = readFileSync(path.join(ROOT, "test/ses/fixtures/test-key.pem"), "utf8");
    const seed: [string, string][] = [
      ...Array.from({ length: 5 }, (_, i) => ["send", `reader${i}@example.com`] as [string, string]),
      ["send", "gone1@example.com"],
      ["send", "gone2@example.com"],
      ...Array.from({ length: 5 }, (_, i) => ["delivery", `reader${i}@example.com`] as [string, string]),
      ["bounce-permanent", "gone1@example.com"],
      ["bounce-permanent", "gone2@example.com"],
      ["complaint", "reader0@example.com"],
    ];
    for (const [i, [fixture, recipient]] of seed.entries()) {
      const record = JSON.parse(
        readFileSync(path.join(FIXTURES, `${fixture}.json`), "utf8").replaceAll(
          "recipient@example.com",
          recipient,
        ),
      );
      const name = recipient.slice(0, recipient.indexOf("@"));
      record.mail.messageId = `dash-${name}-${ACCOUNT}`;
      record.mail.tags = { ...record.mail.tags, campaign: ["launch"], email_id: [`email_dash_${name}`] };
      const message = {
        Type: "Notification" as const,
        MessageId: crypto.randomUUID(),
        TopicArn: TOPIC,
        Message: JSON.stringify(retime(record, new Date(Date.now() - (30 - i) * 60_000).toISOString())),
        Timestamp: new Date().toISOString(),
        SignatureVersion: "2",
        Signature: "",
        SigningCertURL: `${certOrigin}/SimpleNotificationService-test.pem`,
      };
      const signer = createSign("RSA-SHA256");
      signer.update(stringToSign(message));
      message.Signature = signer.sign(key, "base64");
      const res = await fetch(`${origin}/webhooks/ses`, {
        method: "POST",
        headers: { "content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification" },
        body: JSON.stringify(message),
      });
      expect(res.status, await res.text()).toBe(200);
    }

    // Opens by two people and by Gmail's image proxy, and a click, through instrumented emails.
    const opens: [string, string][] = [
      ["reader1@example.com", PERSON_UA],
      ["reader2@example.com", PERSON_UA],
      ["reader3@example.com", GMAIL_PROXY_UA],
    ];
    for (const [i, [recipient, ua]] of opens.entries()) {
      const res = await api("/v1/messages/instrument", {
        method: "POST",
        body: JSON.stringify({
          email_id: `email_dash_open_${i}`,
          recipient,
          campaign: "launch",
          tags: ["dashboard"],
          html: '<html><body><a href="https://example.com/offer">Offer</a></body></html>',
        }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { html: string; pixel_url: string };
      expect((await fetch(body.pixel_url, { headers: { "user-agent": ua } })).status).toBe(200);
      if (i === 0) {
        const href = /href="([^"]+)"/.exec(body.html)?.[1] ?? "";
        const click = await fetch(href.replaceAll("&amp;", "&"), {
          headers: { "user-agent": ua },
          redirect: "manual",
        });
        expect(click.status).toBe(302);
      }
    }

    // The consumer writes in batches: wait until the metrics hold everything.
    const totals = await until("the seeded events in GET /v1/metrics", 45_000, async () => {
      const m = (await (await api("/v1/metrics?days=1")).json()) as { totals: Record<string, number> };
      const t = m.totals;
      return t.sent === 7 &&
        t.delivered === 5 &&
        t.bounced === 2 &&
        t.complained === 1 &&
        t.opened === 3 &&
        t.clicked === 1
        ? t
        : undefined;
    });
    expect(totals).toMatchObject({ opened_by_person: 2, opened_by_proxy: 1, unique_clicked: 1 });

    // An alert rule that this small sample trips (2 permanent bounces of 7 sent), evaluated by the
    // scheduled work on demand; the two default rules stay quiet under their 100 sent.
    const rule = await api("/v1/alerts", {
      method: "POST",
      body: JSON.stringify({
        metric: "bounce_rate",
        threshold: 0.1,
        window: "24h",
        min_sent: 5,
        description: "Small sample bounces",
      }),
    });
    expect(rule.status).toBe(201);
    const ruleId = ((await rule.json()) as { id: string }).id;
    expect((await fetch(`${origin}/__scheduled?cron=*/5+*+*+*+*`)).status).toBe(200);
    await until("the rule to fire", 30_000, async () => {
      const r = (await (await api(`/v1/alerts/${ruleId}`)).json()) as { state: string };
      return r.state === "firing" ? r : undefined;
    });

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
      ],
    });
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    const external: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(origin)) external.push(r.url());
    });
    const consoleErrors: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });

    await page.goto(`${origin}/dashboard`);
    await page.fill("#token", token);
    await page.click("#token-form button");
    expect(await page.evaluate(() => sessionStorage.getItem("mailtrail.token"))).toBe(token);
    expect(await page.evaluate(() => localStorage.length)).toBe(0);

    // Totals, then each chart's bars carry the seeded values (summed over its buckets).
    await page.waitForSelector('[data-stat="Delivered"] b');
    expect(await page.textContent('[data-stat="Delivered"] b')).toBe("5");
    const sumOf = (series: string) =>
      page.$$eval(`rect[data-series="${series}"]`, (rects) =>
        rects.reduce((s, r) => s + Number(r.getAttribute("data-value")), 0),
      );
    // Attached, not visible: when the seeded half hour spans UTC midnight, the first day's bar of
    // deliveries is 0 high (its sends came before midnight, its deliveries after).
    await page.waitForSelector('#chart-delivery rect[data-series="delivered"]', { state: "attached" });
    expect(await sumOf("delivered")).toBe(5);
    expect(await sumOf("bounced")).toBe(2);
    expect(await sumOf("complained")).toBe(1);
    expect(await sumOf("opened_by_person")).toBe(2);
    expect(await sumOf("opened_by_proxy")).toBe(1);
    expect(await sumOf("clicked")).toBe(1);

    // Reputation: too little mail to judge; the rules and the alert that fired.
    await page.waitForSelector('#reputation-status[data-status="insufficient_volume"]');
    expect(await page.textContent("#reputation-status")).toContain("7 sent");
    expect(await page.textContent('#providers tr[data-provider="other"]')).toContain("28.6%");
    await page.waitForSelector("#rules tr[data-rule]");
    const rules = await page.$$eval("#rules tr[data-rule]", (rows) =>
      rows.map((r) => [r.getAttribute("data-state"), r.textContent]),
    );
    expect(rules).toHaveLength(3);
    expect(rules.filter(([state]) => state === "firing").map(([, text]) => text)).toEqual([
      expect.stringContaining("Small sample bounces"),
    ]);
    await page.waitForSelector('#alerts tr[data-type="alert.triggered"]');
    expect(await page.textContent('#alerts tr[data-type="alert.triggered"]')).toContain(
      "Bounce rate triggered",
    );

    // The events table: the newest events, with their types.
    await page.waitForSelector("#events tbody tr[data-event]");
    const types = await page.$$eval("#events tbody tr[data-event]", (rows) =>
      rows.map((r) => r.getAttribute("data-type")),
    );
    expect(types).toHaveLength(19); // 7 sends, 5 deliveries, 2 bounces, 1 complaint, 3 opens, 1 click
    expect(new Set(types)).toEqual(
      new Set([
        "email.sent",
        "email.delivered",
        "email.bounced",
        "email.complained",
        "email.opened",
        "email.clicked",
      ]),
    );

    // Filter the table by type (a §9 filter) and group the metrics by campaign.
    await page.selectOption('#event-filters select[name="event_type"]', "email.bounced");
    await page.click("#event-filters button");
    await page.waitForFunction(() => document.querySelectorAll("#events tbody tr[data-event]").length === 2);
    await page.selectOption('#controls select[name="group_by"]', "campaign");
    await page.click("#controls button");
    await page.waitForSelector('#groups tr[data-group="launch"]');

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard.png"), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(overflow).toBeLessThanOrEqual(0); // no sideways scrolling of the page at phone width
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-phone.png"), fullPage: true });

    expect(external).toEqual([]);
    expect(consoleErrors).toEqual([]);
  });
});
