import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import bouncePermanent from "../../../shared/fixtures/ses/event-publishing/bounce-permanent.json?raw";
import { config } from "../../src/config";
import type { Env } from "../../src/env";
import { ApiError } from "../../src/lib/errors";
import { clearSigningKeyCache } from "../../src/ses/sns";
import { call, consume, event, eventMessage, eventsDb, freshAccount, json, mintToken } from "../helpers";
import { AWS_CERT_URL, notification, signed, testCertPem } from "../ses/sns-fixtures";

/** Finding 9: the smaller ones, each with the test that reproduced it. */

afterEach(() => {
  vi.restoreAllMocks();
  clearSigningKeyCache();
});

describe("queue batches are sized in bytes", () => {
  it("registers 100 messages whose subjects are 2,000 three-byte characters each", async () => {
    const account = freshAccount();
    const subject = "€".repeat(2000); // 2,000 UTF-16 units, 6,000 bytes
    const messages = Array.from({ length: 100 }, (_, i) => ({ email_id: `email_${i}`, subject }));
    const res = await call("POST", "/v1/messages", {
      token: await mintToken(account, "send"),
      body: { messages },
    });
    expect(res.status).toBe(202);
    await vi.waitFor(
      async () => {
        const row = await eventsDb(account)
          .prepare("SELECT COUNT(*) AS n FROM messages WHERE account_id = ? AND subject = ?")
          .bind(account, subject)
          .first<{ n: number }>();
        expect(row?.n).toBe(100);
      },
      { timeout: 20_000, interval: 200 },
    );
  });
});

describe("plan names are looked up as own properties only", () => {
  it.each(["constructor", "toString", "__proto__", "hasOwnProperty", "valueOf"])(
    "PUT /v1/accounts/{id} refuses %s",
    async (plan) => {
      const account = freshAccount();
      const res = await call("PUT", `/v1/accounts/${account}`, {
        token: await mintToken(freshAccount("ops"), "admin"),
        body: { plan },
      });
      expect(res.status).toBe(400);
      expect((await json(res)).error).toMatchObject({ type: "validation_error", param: "plan" });
      const stored = await env.DB.prepare("SELECT plan FROM accounts WHERE id = ?").bind(account).first();
      expect(stored).toBeNull();
    },
  );

  it("reads an account whose stored plan is `constructor` as the default plan, and its events answer", async () => {
    const account = freshAccount();
    await env.DB.prepare(
      "INSERT INTO accounts (id, plan, created_at, updated_at) VALUES (?, 'constructor', 0, 0)",
    )
      .bind(account)
      .run();
    const token = await mintToken(account, "events:read");
    expect(await json(await call("GET", "/v1/account", { token }))).toEqual({
      id: account,
      plan: "starter",
      retention_days: 3,
    });
    expect((await call("GET", "/v1/events", { token })).status).toBe(200);
  });
});

describe("an internationalised domain and its punycode are one address", () => {
  it("stores the ASCII form, finds it by either spelling, and an SES bounce adds no second entry", async () => {
    const account = freshAccount();
    const token = await mintToken(account, "suppressions:read suppressions:write send");
    const unicode = "leser@bücher.example";
    const ascii = "leser@xn--bcher-kva.example";
    const put = await call("PUT", `/v1/suppressions/${encodeURIComponent(unicode)}`, { token });
    expect(put.status).toBe(200);
    expect((await json(put)).email).toBe(ascii);

    const byAscii = await call("GET", `/v1/suppressions/${encodeURIComponent(ascii)}`, { token });
    expect(byAscii.status).toBe(200);
    const check = await call("POST", "/v1/suppressions/check", { token, body: { emails: [unicode, ascii] } });
    expect((await json(check)).data.map((d: { suppressed: boolean }) => d.suppressed)).toEqual([true, true]);

    // SES reports the punycode form: one entry, not two.
    await consume([
      eventMessage(event({ account_id: account, type: "email.bounced", recipient: ascii }), {
        reason: "hard_bounce",
        topic: null,
      }),
    ]);
    const row = await eventsDb(account)
      .prepare("SELECT COUNT(*) AS n FROM suppressions WHERE account_id = ?")
      .bind(account)
      .first<{ n: number }>();
    expect(row?.n).toBe(1);
    const removed = await call("DELETE", `/v1/suppressions/${encodeURIComponent(unicode)}`, { token });
    expect(await json(removed)).toEqual({ deleted: 1, email: ascii });
  });

  it("finds an SES event by either spelling of the recipient in GET /v1/events", async () => {
    const account = freshAccount();
    await consume([eventMessage(event({ account_id: account, recipient: "leser@xn--bcher-kva.example" }))]);
    const token = await mintToken(account, "events:read");
    for (const recipient of ["leser@bücher.example", "Leser@XN--BCHER-KVA.example"]) {
      const body = await json(
        await call("GET", `/v1/events?recipient=${encodeURIComponent(recipient)}`, { token }),
      );
      expect(body.data, recipient).toHaveLength(1);
    }
  });
});

describe("SNS_CERT_HOST_PATTERN", () => {
  const parse = (value: string) =>
    config({ ...(env as unknown as Env), SNS_CERT_HOST_PATTERN: value }, "SNS_CERT_HOST_PATTERN");

  it.each([
    ["mail.example.com", "unescaped"],
    ["sns\\.us-east-1\\.amazonaws\\.com|evil.example", "unescaped"],
    [".*", "matches hosts"],
    [".+\\.amazonaws\\.com", "matches hosts"],
    ["[a-z0-9.-]+", "matches hosts"],
  ])("refuses %s with configuration_error", (value, reason) => {
    let err: unknown;
    try {
      parse(value);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).type).toBe("configuration_error");
    expect((err as ApiError).message).toContain("SNS_CERT_HOST_PATTERN");
    expect((err as ApiError).message).toContain(reason);
  });

  it("anchors an accepted pattern at both ends, so no look-alike host matches", () => {
    const pattern = parse("sns\\.test|127\\.0\\.0\\.1|localhost|.*\\.localstack\\.cloud");
    expect(pattern).toBeInstanceOf(RegExp);
    for (const host of ["sns.test", "127.0.0.1", "localhost", "x.localstack.cloud"])
      expect(pattern?.test(host)).toBe(true);
    for (const host of ["sns.test.evil.com", "evilsns.test", "localhost.evil.com", "localstack.cloud.evil"]) {
      expect(pattern?.test(host), host).toBe(false);
    }
  });
});

describe("SNS messages have a maximum age", () => {
  function interceptAws() {
    return vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
      const url = input instanceof Request ? input.url : String(input);
      return url === AWS_CERT_URL ? new Response(testCertPem) : new Response("not found", { status: 404 });
    });
  }

  function bounce(recipient: string) {
    const ses = JSON.parse(bouncePermanent);
    const emailId = `email_${crypto.randomUUID()}`;
    ses.mail.destination = [recipient];
    ses.mail.tags = { ...ses.mail.tags, email_id: [emailId] };
    ses.bounce.bouncedRecipients = [{ emailAddress: recipient, action: "failed", status: "5.1.1" }];
    return JSON.stringify(ses);
  }

  const post = async (ageMs: number, recipient: string) =>
    call("POST", "/webhooks/ses", {
      rawBody: JSON.stringify(
        await signed(
          notification({
            Message: bounce(recipient),
            MessageId: crypto.randomUUID(),
            Timestamp: new Date(Date.now() - ageMs).toISOString(),
          }),
        ),
      ),
      headers: { "content-type": "text/plain; charset=UTF-8" },
    });

  it("refuses a signed bounce replayed more than 6 hours after SNS sent it, recording nothing", async () => {
    interceptAws();
    const recipient = `replayed-${crypto.randomUUID().slice(0, 8)}@example.com`;
    const res = await post(6 * 3600_000 + 60_000, recipient);
    expect(res.status).toBe(400);
    expect((await json(res)).error).toMatchObject({
      type: "signature_error",
      message: expect.stringContaining("6 hours"),
    });
  });

  it("refuses a Timestamp well in the future, and accepts one 5 hours old (SNS's retries last at most an hour)", async () => {
    interceptAws();
    const future = await post(-60 * 60_000, "future@example.com");
    expect(future.status).toBe(400);
    expect((await json(future)).error.type).toBe("signature_error");
    const late = await post(5 * 3600_000, "late@example.com");
    expect(late.status).toBe(200);
    expect((await json(late)).received).toBe(1);
  });
});
