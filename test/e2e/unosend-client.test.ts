/**
 * The official Unosend client (`@unosend/node`, pinned) pointed at mailtrail with `baseUrl` set to
 * `<wrangler dev>/compat/unosend/v1`, as a platform moving from Unosend would: it lists events, reads
 * metrics and link clicks, and creates, lists, gets and deletes suppressions, on real local D1, KV
 * and Queues. Data arrives through the real tracking paths (an instrumented email, its pixel and a
 * click), so the rollups the metrics read were written by the queue consumer.
 */
import { randomBytes } from "node:crypto";
import { Unosend } from "@unosend/node";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startWranglerDev, until } from "./wrangler-dev";

const ACCOUNT = `acct_uno_${randomBytes(4).toString("hex")}`;
const PERSON_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

describe("the @unosend/node client against /compat/unosend/v1", () => {
  const secret = randomBytes(36).toString("base64url");
  let dev: DevServer | undefined;
  let client: Unosend;
  let token = "";

  beforeAll(async () => {
    dev = await startWranglerDev({
      JWT_SECRET: secret,
      TRACKING_KEYS: randomBytes(32).toString("base64url"),
      PUBLIC_BASE_URL: "{origin}",
    });
    token = await new SignJWT({ scope: "send events:read suppressions:read suppressions:write" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(ACCOUNT)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(secret));
    client = new Unosend(token, { baseUrl: `${dev.origin}/compat/unosend/v1` });
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
  });

  it("lists events and reads metrics and link clicks of tracked mail", async () => {
    const origin = dev?.origin ?? "";
    for (const [i, recipient] of ["ann@example.com", "bob@example.com"].entries()) {
      const res = await fetch(`${origin}/v1/messages/instrument`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({
          email_id: `email_uno_${i}`,
          recipient,
          subject: "Launch",
          html: '<html><body><a href="https://example.com/offer">Offer</a></body></html>',
        }),
      });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { html: string; pixel_url: string };
      expect((await fetch(body.pixel_url, { headers: { "user-agent": PERSON_UA } })).status).toBe(200);
      const href = /href="([^"]+)"/.exec(body.html)?.[1] ?? "";
      const click = await fetch(href.replaceAll("&amp;", "&"), {
        headers: { "user-agent": PERSON_UA },
        redirect: "manual",
      });
      expect(click.status).toBe(302);
    }

    const events = await until("the client to list the tracked events", 45_000, async () => {
      const r = await client.events.list({ days: 1, limit: 50 });
      const list = (r.data as unknown as { data: { type: string }[] } | null)?.data ?? [];
      return list.length === 4 ? list : undefined;
    });
    expect(events.map((e) => e.type).sort()).toEqual(["clicked", "clicked", "opened", "opened"]);
    const opened = await client.events.list({ eventType: "opened", emailId: "email_uno_0" });
    expect(opened.error).toBeNull();

    const metrics = await client.metrics.get({ days: 7 });
    expect(metrics.error).toBeNull();
    expect(metrics.data).toEqual({
      total: 0,
      sent: 0,
      delivered: 0,
      bounced: 0,
      failed: 0,
      queued: 0,
      opens: 2,
      unique_opens: 2,
      clicks: 2,
      unique_clicks: 2,
    });

    const links = await client.metrics.links({ days: 7, limit: 5 });
    expect(links.error).toBeNull();
    expect(links.data).toMatchObject({
      period: { days: 7 },
      links: [{ url: "https://example.com/offer", count: 2 }],
      total_clicks: 2,
    });
  }, 90_000);

  it("creates, lists, gets and deletes suppressions, and reads errors in Unosend's shape", async () => {
    const created = await client.suppressions.create("Carol@Example.com", "manual");
    expect(created.error).toBeNull();
    expect(created.data).toMatchObject({
      email: "carol@example.com",
      reason: "manual",
      metadata: { topic: null },
    });
    const id = (created.data as { id: string }).id;

    const list = await client.suppressions.list({ page: 1, perPage: 10 });
    expect(list.error).toBeNull();
    expect((list.data as unknown as { id: string }[]).map((s) => s.id)).toContain(id);
    expect(list.meta).toMatchObject({ total: 1, page: 1, page_size: 10, pages: 1 });

    const got = await client.suppressions.get(id);
    expect(got.data).toEqual(created.data);

    const deleted = await client.suppressions.delete(id);
    expect(deleted.error).toBeNull();
    expect(deleted.data).toEqual({ id, deleted: true });

    const missing = await client.suppressions.get(id);
    expect(missing.data).toBeNull();
    expect(missing.error).toMatchObject({ code: "NOT_FOUND", statusCode: 404 });

    const refused = await new Unosend("not-a-token", {
      baseUrl: `${dev?.origin}/compat/unosend/v1`,
    }).metrics.get();
    expect(refused.error).toMatchObject({ code: "UNAUTHORIZED", statusCode: 401 });
  }, 60_000);
});
