import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { suppressingEntry } from "../../src/suppressions/check";
import { call, consume, event, eventMessage, freshAccount, json } from "../helpers";
import { check, d1Rows, mirrorOf, suppress, suppressedReasons, tokensFor } from "./support";

describe("POST /v1/suppressions/check", () => {
  it("answers one result per address, in request order, lowercased", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    await suppress(write, "blocked@example.com");
    const res = await check(send, {
      emails: ["fine@example.com", "Blocked@Example.com", "blocked@example.com"],
    });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({
      data: [
        { email: "fine@example.com", suppressed: false, reason: null },
        { email: "blocked@example.com", suppressed: true, reason: "manual" },
        { email: "blocked@example.com", suppressed: true, reason: "manual" },
      ],
    });
  });

  it("suppresses a topic entry's topic only; an every-topic entry suppresses every send", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    await suppress(write, "topic@example.com", "news");
    await suppress(write, "all@example.com");
    const emails = ["topic@example.com", "all@example.com"];
    expect(await suppressedReasons(send, emails, "news")).toEqual({
      "topic@example.com": "manual",
      "all@example.com": "manual",
    });
    expect(await suppressedReasons(send, emails, "promo")).toEqual({
      "topic@example.com": null,
      "all@example.com": "manual",
    });
    expect(await suppressedReasons(send, emails)).toEqual({
      "topic@example.com": null,
      "all@example.com": "manual",
    });
  });

  it("sees a delete right away: the route updates the mirror after D1", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    await suppress(write, "gone@example.com");
    await suppress(write, "gone@example.com", "news");
    expect(await suppressedReasons(send, ["gone@example.com"], "news")).toEqual({
      "gone@example.com": "manual",
    });

    await call("DELETE", "/v1/suppressions/gone%40example.com", { token: write, headers: {} });
    expect(await mirrorOf(account, "gone@example.com")).toBeNull();
    expect(await suppressedReasons(send, ["gone@example.com"], "news")).toEqual({ "gone@example.com": null });
  });

  it("sees a topic delete: the every-topic entry still suppresses, the topic one no longer matters", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    await suppress(write, "t@example.com", "news");
    await call("DELETE", "/v1/suppressions/t%40example.com?topic=news", { token: write });
    expect(await suppressedReasons(send, ["t@example.com"], "news")).toEqual({ "t@example.com": null });
  });

  it("checks 1,000 addresses across several multi-key gets", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    const emails = Array.from({ length: 1000 }, (_, i) => `bulk${i}@example.com`);
    for (const i of [0, 99, 100, 555, 999]) await suppress(write, emails[i]!);
    const res = await check(send, { emails });
    const { data } = await json<{ data: { email: string; suppressed: boolean }[] }>(res);
    expect(data).toHaveLength(1000);
    expect(data.flatMap((r, i) => (r.suppressed ? [i] : []))).toEqual([0, 99, 100, 555, 999]);
    expect(data.map((r) => r.email)).toEqual(emails);
  });

  it.each([
    [{}, "emails"],
    [{ emails: [] }, "emails"],
    [{ emails: "a@example.com" }, "emails"],
    [{ emails: ["a@example.com", "nope"] }, "emails"],
    [{ emails: [42] }, "emails"],
    [{ emails: Array.from({ length: 1001 }, (_, i) => `x${i}@example.com`) }, "emails"],
    [{ emails: ["a@example.com"], topic: "Not A Topic" }, "topic"],
    [{ emails: ["a@example.com"], email_id: "" }, "email_id"],
    [{ emails: ["a@example.com"], topics: ["news"] }, "body"],
  ])("%j is 400 naming %s", async (body, param) => {
    const { send } = await tokensFor(freshAccount());
    const res = await check(send, body);
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({ type: "validation_error", param });
  });

  it("refuses a body that is not JSON (415), invalid JSON (400) and unknown query parameters", async () => {
    const { send } = await tokensFor(freshAccount());
    const form = await call("POST", "/v1/suppressions/check", {
      token: send,
      rawBody: "emails=a@example.com",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(form.status).toBe(415);
    const broken = await call("POST", "/v1/suppressions/check", {
      token: send,
      rawBody: '{"emails": [',
      headers: { "content-type": "application/json" },
    });
    expect((await json(broken)).error.type).toBe("validation_error");
    const unknown = await call("POST", "/v1/suppressions/check?topic=news", {
      token: send,
      body: { emails: ["a@example.com"] },
    });
    expect((await json(unknown)).error).toMatchObject({ type: "validation_error", param: "topic" });
  });

  it("records email.suppressed for each suppressed address when given an email_id", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    await suppress(write, "bounced@example.com");
    await suppress(write, "news-only@example.com", "news");
    const emailId = `email_${crypto.randomUUID()}`;
    const res = await check(send, {
      emails: ["bounced@example.com", "news-only@example.com", "fine@example.com", "bounced@example.com"],
      topic: "promo",
      email_id: emailId,
    });
    expect(res.status).toBe(200);

    // The real queue delivers to the Worker's own consumer (max_batch_timeout 2 s); poll D1 for its write.
    const rows = await vi.waitFor(
      async () => {
        const { results } = await env.DB.prepare(
          "SELECT id, type, recipient, email_id, topic FROM events WHERE account_id = ? ORDER BY recipient",
        )
          .bind(account)
          .all();
        if (results.length === 0) throw new Error("not consumed yet");
        return results;
      },
      { timeout: 20_000, interval: 250 },
    );
    expect(rows).toEqual([
      {
        id: expect.stringMatching(/^evt_[0-9a-f]{32}$/),
        type: "email.suppressed",
        recipient: "bounced@example.com",
        email_id: emailId,
        topic: "promo",
      },
    ]);

    const events = await tokensFor(account).then((t) =>
      call("GET", `/v1/events?email_id=${emailId}`, { token: t.events }),
    );
    expect((await json(events)).data.map((e: { type: string }) => e.type)).toEqual(["email.suppressed"]);
  });

  it("records nothing without an email_id", async () => {
    const account = freshAccount();
    const { write, send } = await tokensFor(account);
    await suppress(write, "quiet@example.com");
    await check(send, { emails: ["quiet@example.com"] });
    await new Promise((r) => setTimeout(r, 3000));
    const row = await env.DB.prepare("SELECT COUNT(*) AS n FROM events WHERE account_id = ?")
      .bind(account)
      .first();
    expect(row?.n).toBe(0);
  });
});

describe("automatic suppressions from the consumer", () => {
  it("a hard bounce lands in D1 and KV, is listed by the API and suppresses checks", async () => {
    const account = freshAccount();
    const { read, send } = await tokensFor(account);
    const bounce = event({
      account_id: account,
      type: "email.bounced",
      recipient: "hard@example.com",
      email_id: "email_bounce-1",
      bounce_type: "permanent",
      occurred_at: Date.parse("2026-04-09T10:30:09.000Z"),
    });
    const result = await consume([eventMessage(bounce, { reason: "hard_bounce", topic: null })]);
    expect(result.explicitAcks).toHaveLength(1);

    expect(await d1Rows(account)).toEqual([
      {
        email: "hard@example.com",
        topic: "",
        reason: "hard_bounce",
        email_id: "email_bounce-1",
        suppressed_at: bounce.occurred_at,
      },
    ]);
    expect(await mirrorOf(account, "hard@example.com")).toEqual([
      { topic: null, reason: "hard_bounce", suppressed_at: bounce.occurred_at },
    ]);
    const list = await json(await call("GET", "/v1/suppressions", { token: read }));
    expect(list.data).toEqual([
      {
        id: expect.stringMatching(/^sup_/),
        email: "hard@example.com",
        reason: "hard_bounce",
        topic: null,
        email_id: "email_bounce-1",
        suppressed_at: "2026-04-09T10:30:09.000Z",
        expires_at: null,
        email_hash: null,
      },
    ]);
    expect(await suppressedReasons(send, ["hard@example.com"], "news")).toEqual({
      "hard@example.com": "hard_bounce",
    });

    // A manual PUT afterwards returns the automatic entry unchanged.
    const { write } = await tokensFor(account);
    expect(await suppress(write, "hard@example.com")).toEqual(list.data[0]);
  });
});

describe("suppressingEntry", () => {
  const all = { topic: null, reason: "complaint", suppressed_at: 1 };
  const news = { topic: "news", reason: "unsubscribe", suppressed_at: 2 };
  it.each([
    [null, null, null],
    [[], "news", null],
    [[news], null, null],
    [[news], "promo", null],
    [[news], "news", news],
    [[all], null, all],
    [[all], "news", all],
    [[news, all], "news", all],
    ["garbage", "news", null],
  ])("entries %j with topic %s → %j", (entries, topic, expected) => {
    expect(suppressingEntry(entries as never, topic)).toEqual(expected);
  });
});
