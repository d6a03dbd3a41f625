import { describe, expect, it, vi } from "vitest";
import { call, eventsDb, freshAccount, json, mintToken } from "./helpers";

const post = async (body: unknown, scope = "send", account = freshAccount()) =>
  call("POST", "/v1/messages", { token: await mintToken(account, scope), body });

describe("POST /v1/messages", () => {
  it("accepts an object with messages or a bare array, and answers 202", async () => {
    const a = await post({ messages: [{ email_id: "email_1" }, { email_id: "email_2", tags: ["x"] }] });
    expect(a.status).toBe(202);
    expect(await a.json()).toEqual({ object: "registration", accepted: 2 });
    const b = await post([{ email_id: "email_3", topic: "news" }]);
    expect(b.status).toBe(202);
  });

  it("registers for another account only with admin", async () => {
    const target = freshAccount();
    const denied = await post({ account_id: target, messages: [{ email_id: "e" }] });
    expect(denied.status).toBe(403);
    const admin = await post(
      { account_id: target, messages: [{ email_id: "email_admin", campaign: "ops" }] },
      "admin",
      "ops",
    );
    expect(admin.status).toBe(202);
    await vi.waitFor(
      async () => {
        const row = await eventsDb(target)
          .prepare("SELECT campaign FROM messages WHERE account_id = ? AND email_id = 'email_admin'")
          .bind(target)
          .first();
        expect(row).toEqual({ campaign: "ops" });
      },
      { timeout: 10_000, interval: 100 },
    );
  });

  const bad: [string, unknown, string][] = [
    ["no messages", {}, "messages"],
    ["empty list", { messages: [] }, "messages"],
    ["missing email_id", { messages: [{ campaign: "x" }] }, "messages"],
    ["bad topic", { messages: [{ email_id: "e", topic: "Has Spaces" }] }, "messages"],
    ["bad tag", { messages: [{ email_id: "e", tags: ["no spaces allowed"] }] }, "messages"],
    ["eleven tags", { messages: [{ email_id: "e", tags: "abcdefghijk".split("") }] }, "messages"],
    ["repeated email_id", { messages: [{ email_id: "e" }, { email_id: "e" }] }, "messages"],
    ["over 1,000", { messages: Array.from({ length: 1001 }, (_, i) => ({ email_id: `e${i}` })) }, "messages"],
  ];
  it.each(bad)("rejects %s with 400 naming the field", async (_name, body, param) => {
    const res = await post(body);
    expect(res.status).toBe(400);
    const err = (await json(res)).error;
    expect(err.type).toBe("validation_error");
    expect(err.param).toBe(param);
  });

  it("lists every fault of a body with several", async () => {
    const res = await post({ messages: [{ email_id: "" }], extra: 1, account_id: 5 });
    const err = (await json(res)).error;
    expect(err.errors.length).toBeGreaterThan(1);
    expect(err.errors.map((e: { param: string }) => e.param)).toEqual(
      expect.arrayContaining(["messages", "account_id"]),
    );
  });

  it("answers 400 for broken JSON, 415 for another media type and 413 over 1 MiB", async () => {
    const token = await mintToken(freshAccount(), "send");
    const broken = await call("POST", "/v1/messages", {
      token,
      rawBody: "{",
      headers: { "content-type": "application/json" },
    });
    expect(broken.status).toBe(400);
    const form = await call("POST", "/v1/messages", {
      token,
      rawBody: "a=1",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(form.status).toBe(415);
    expect((await json(form)).error.type).toBe("unsupported_media_type");
    const big = JSON.stringify({ messages: [{ email_id: "e", subject: "x".repeat(1024 * 1024) }] });
    const huge = await call("POST", "/v1/messages", {
      token,
      rawBody: big,
      headers: { "content-type": "application/json" },
    });
    expect(huge.status).toBe(413);
  });

  it("requires the send scope", async () => {
    expect((await post({ messages: [{ email_id: "e" }] }, "events:read")).status).toBe(403);
    expect((await call("POST", "/v1/messages", { body: { messages: [] } })).status).toBe(401);
  });
});
