import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import bouncePermanent from "../../../shared/fixtures/ses/event-publishing/bounce-permanent.json?raw";
import bounceTransient from "../../../shared/fixtures/ses/event-publishing/bounce-transient.json?raw";
import { newApp } from "../../src/app";
import type { Env } from "../../src/env";
import { clearSigningKeyCache } from "../../src/ses/sns";
import { call, eventsDb, json } from "../helpers";
import {
  AWS_CERT_URL,
  confirmation,
  notification,
  SUBSCRIBE_URL,
  signed,
  signedFiles,
  TOPIC,
  testCertPem,
} from "./sns-fixtures";

const SHARED_TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-shared";

afterEach(() => {
  vi.restoreAllMocks();
  clearSigningKeyCache();
});

/** Intercepts only the outbound fetches to AWS: certificates and SubscribeURLs. */
function interceptAws(certs: Record<string, string> = { [AWS_CERT_URL]: testCertPem }) {
  return vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
    const url = input instanceof Request ? input.url : String(input);
    if (certs[url]) return new Response(certs[url]);
    if (url.startsWith("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"))
      return new Response("<ok/>");
    return new Response("not found", { status: 404 });
  });
}

/** An SES bounce for fresh recipients, tagged with a fresh email_id so each test reads only its own rows. */
function sesBounce(recipients: string[], tags: Record<string, string[]> = {}, base = bouncePermanent) {
  const ses = JSON.parse(base);
  const emailId = `email_${crypto.randomUUID()}`;
  ses.mail.destination = recipients;
  ses.mail.tags = { ...ses.mail.tags, email_id: [emailId], ...tags };
  ses.bounce.bouncedRecipients = recipients.map((emailAddress) => ({
    emailAddress,
    action: "failed",
    status: "5.1.1",
    diagnosticCode: "smtp; 550 5.1.1 user unknown",
  }));
  return { message: JSON.stringify(ses), emailId };
}

const post = (body: unknown, headers: Record<string, string> = {}) =>
  call("POST", "/webhooks/ses", {
    rawBody: typeof body === "string" ? body : JSON.stringify(body),
    headers: {
      "content-type": "text/plain; charset=UTF-8",
      "x-amz-sns-message-type": "Notification",
      ...headers,
    },
  });

async function eventsOf(account: string, emailId: string) {
  const { results } = await eventsDb(account)
    .prepare("SELECT * FROM events WHERE account_id = ? AND email_id = ? ORDER BY recipient")
    .bind(account, emailId)
    .all<Record<string, unknown>>();
  return results;
}

/** Waits for the real queue to deliver to the consumer and the rows to appear. */
async function settle<T>(read: () => Promise<T>, check: (value: T) => void): Promise<T> {
  let last: T | undefined;
  await vi.waitFor(
    async () => {
      last = await read();
      check(last);
    },
    { timeout: 10_000, interval: 100 },
  );
  return last as T;
}

const randomRecipient = () => `r${crypto.randomUUID().slice(0, 8)}@example.com`;

describe("POST /webhooks/ses notifications", () => {
  it("records one event per recipient of a permanent bounce and suppresses each, in D1 and KV", async () => {
    interceptAws();
    const recipients = [randomRecipient(), randomRecipient(), randomRecipient()];
    const { message, emailId } = sesBounce(recipients);
    const res = await post(await signed(notification({ Message: message, MessageId: crypto.randomUUID() })));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ received: 3 });
    const rows = await settle(
      () => eventsOf("acct_bound", emailId),
      (r) => expect(r).toHaveLength(3),
    );
    expect(rows.map((r) => r.recipient)).toEqual([...recipients].sort());
    expect(rows[0]).toMatchObject({ type: "email.bounced", bounce_type: "permanent", smtp_code: 550 });
    for (const recipient of recipients) {
      await settle(
        () => env.SUPPRESSIONS.get(`sup:acct_bound:${recipient}`, "json"),
        (v) => expect(v).toEqual([expect.objectContaining({ topic: null, reason: "hard_bounce" })]),
      );
    }
  });

  it("leaves exactly one event per recipient when SNS redelivers the same message", async () => {
    interceptAws();
    const recipients = [randomRecipient(), randomRecipient()];
    const { message, emailId } = sesBounce(recipients);
    const msg = await signed(
      notification({ Message: message, MessageId: crypto.randomUUID(), SignatureVersion: "1" }),
    );
    for (let i = 0; i < 3; i++) expect((await post(msg)).status).toBe(200);
    await settle(
      () => eventsOf("acct_bound", emailId),
      (r) => expect(r).toHaveLength(2),
    );
    // Give any straggling deliveries time to land, then check again.
    await new Promise((r) => setTimeout(r, 2500));
    expect(await eventsOf("acct_bound", emailId)).toHaveLength(2);
  });

  it("never suppresses on a transient bounce", async () => {
    interceptAws();
    const recipient = randomRecipient();
    const { message, emailId } = sesBounce([recipient], {}, bounceTransient);
    const ses = JSON.parse(message);
    ses.bounce.bounceType = "Transient";
    expect(
      (
        await post(
          await signed(notification({ Message: JSON.stringify(ses), MessageId: crypto.randomUUID() })),
        )
      ).status,
    ).toBe(200);
    await settle(
      () => eventsOf("acct_bound", emailId),
      (r) => expect(r[0]).toMatchObject({ bounce_type: "transient" }),
    );
    expect(await env.SUPPRESSIONS.get(`sup:acct_bound:${recipient}`)).toBeNull();
    const row = await eventsDb(recipient)
      .prepare("SELECT 1 FROM suppressions WHERE account_id = 'acct_bound' AND email = ?")
      .bind(recipient)
      .first();
    expect(row).toBeNull();
  });

  it("takes the account from the account_id tag on an unbound topic, and records nothing without one", async () => {
    interceptAws();
    const tagged = sesBounce([randomRecipient()], { account_id: ["acct_tagged"] });
    const res = await post(
      await signed(
        notification({ TopicArn: SHARED_TOPIC, Message: tagged.message, MessageId: crypto.randomUUID() }),
      ),
    );
    expect(await res.json()).toEqual({ received: 1 });
    await settle(
      () => eventsOf("acct_tagged", tagged.emailId),
      (r) => expect(r).toHaveLength(1),
    );

    const untagged = sesBounce([randomRecipient()]);
    const none = await post(
      await signed(
        notification({ TopicArn: SHARED_TOPIC, Message: untagged.message, MessageId: crypto.randomUUID() }),
      ),
    );
    expect(none.status).toBe(200);
    expect((await json(none)).received).toBe(0);
  });

  it("lets a bound topic win over the account_id tag", async () => {
    interceptAws();
    const { message, emailId } = sesBounce([randomRecipient()], { account_id: ["acct_intruder"] });
    await post(await signed(notification({ Message: message, MessageId: crypto.randomUUID() })));
    await settle(
      () => eventsOf("acct_bound", emailId),
      (r) => expect(r).toHaveLength(1),
    );
    expect(await eventsOf("acct_intruder", emailId)).toHaveLength(0);
  });

  it("answers 200 and records nothing for an SES type it does not map", async () => {
    interceptAws();
    const msg = await signed(
      notification({ Message: JSON.stringify({ eventType: "Teleport", mail: { messageId: "x" } }) }),
    );
    const res = await post(msg);
    expect(res.status).toBe(200);
    expect((await json(res)).received).toBe(0);
  });

  it("verifies and records real AWS-signed SES messages (mailbox simulator: recorded, never suppressed)", async () => {
    const pem = signedFiles["django-ses-complaint-event-sigv1.pem"] ?? "";
    interceptAws({
      "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-7ff5318490ec183fbaddaa2a969abfda.pem":
        pem,
    });
    for (const file of [
      "django-ses-complaint-event-sigv1.json",
      "django-ses-bounce-notification-sigv1.json",
    ]) {
      // Signed years ago: delivered, as far as the route can tell, a minute after AWS signed it.
      const body = signedFiles[file] ?? "";
      vi.useFakeTimers({ toFake: ["Date"] });
      vi.setSystemTime(Date.parse(JSON.parse(body).Timestamp) + 60_000);
      try {
        const res = await post(body);
        expect(res.status, file).toBe(200);
        expect((await json(res)).received, file).toBe(1);
      } finally {
        vi.useRealTimers();
      }
    }
    await settle(
      async () =>
        (
          await eventsDb("acct_django")
            .prepare(
              "SELECT type, recipient FROM events WHERE account_id = 'acct_django' AND recipient LIKE '%@simulator.amazonses.com' ORDER BY type",
            )
            .all()
        ).results,
      (r) => expect(r.map((x) => x.type)).toEqual(["email.bounced", "email.complained"]),
    );
    const suppressed = await eventsDb("acct_django")
      .prepare("SELECT COUNT(*) AS n FROM suppressions WHERE account_id = 'acct_django'")
      .first<{ n: number }>();
    expect(suppressed?.n).toBe(0);
  });
});

describe("POST /webhooks/ses verification and errors", () => {
  it("answers 403 for a topic not allowed, fetching nothing", async () => {
    const fetchSpy = interceptAws();
    const res = await post(
      await signed(notification({ TopicArn: "arn:aws:sns:us-east-1:123456789012:other" })),
    );
    expect(res.status).toBe(403);
    expect((await json(res)).error.type).toBe("permission_error");
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it("answers signature_error, not permission_error, for a forged message whatever its topic", async () => {
    const fetchSpy = interceptAws();
    const forged = notification({
      TopicArn: "arn:aws:sns:us-east-1:123456789012:other",
      SigningCertURL: "https://evil.example.com/SimpleNotificationService-abc.pem",
      Signature: "c2lnbmVk",
    });
    const res = await post(forged);
    expect(res.status).toBe(400);
    expect((await json(res)).error.type).toBe("signature_error");
    expect(fetchSpy).not.toHaveBeenCalled();
  });

  it("answers 400 signature_error for a tampered message and records nothing", async () => {
    interceptAws();
    const { message, emailId } = sesBounce([randomRecipient()]);
    const msg = await signed(notification({ Message: message, MessageId: crypto.randomUUID() }));
    const res = await post({ ...msg, Message: message.replace("Permanent", "Transient") });
    expect(res.status).toBe(400);
    expect((await json(res)).error.type).toBe("signature_error");
    await new Promise((r) => setTimeout(r, 2500));
    expect(await eventsOf("acct_bound", emailId)).toHaveLength(0);
  });

  it("rejects the real tampered AWS fixtures, and a certificate URL off the AWS host", async () => {
    interceptAws();
    for (const file of [
      "notification-sigv1-2019-TAMPERED.json",
      "notification-sigv1-2015-verisign-TAMPERED.json",
    ]) {
      // Their topics are not ours: allowed or not, they never verify. Ours, re-signed by nobody, must not either.
      const msg = JSON.parse(signedFiles[file] ?? "{}");
      const res = await post({ ...msg, TopicArn: TOPIC });
      expect(res.status, file).toBe(400);
      expect((await json(res)).error.type).toBe("signature_error");
    }
    const offHost = await signed(
      notification({ SigningCertURL: "https://s3.amazonaws.com/SimpleNotificationService-abc.pem" }),
    );
    expect((await json(await post(offHost))).error.type).toBe("signature_error");
  });

  it("answers validation_error for bodies that are not SNS messages", async () => {
    for (const body of ["not json", "{}", '{"Type": 5}', "[1,2]"]) {
      const res = await post(body);
      expect(res.status, body).toBe(400);
      expect((await json(res)).error.type, body).toBe("validation_error");
    }
  });

  it("answers validation_error for a verified Notification whose Message is not SES JSON", async () => {
    interceptAws();
    for (const Message of ["plain text", '{"hello":"world"}']) {
      const res = await post(await signed(notification({ Message })));
      expect(res.status, Message).toBe(400);
      expect((await json(res)).error.type).toBe("validation_error");
    }
  });

  it("answers 413 to a 10 MB body and keeps answering", async () => {
    const huge = `{"Type":"Notification","Message":"${"x".repeat(10 * 1024 * 1024)}"}`;
    const res = await post(huge);
    expect(res.status).toBe(413);
    expect((await json(res)).error.type).toBe("payload_too_large");
    expect((await call("GET", "/healthz")).status).toBe(200);
  });

  it("answers 503 when the queue refuses the send, writes nothing, and records once when SNS retries", async () => {
    interceptAws();
    const recipients = [randomRecipient(), randomRecipient()];
    const { message, emailId } = sesBounce(recipients);
    const msg = await signed(notification({ Message: message, MessageId: crypto.randomUUID() }));
    // The real queue, behind a wrapper that makes its sends fail the way an outage does.
    const failing = new Proxy(env.EVENTS_QUEUE, {
      get(target, prop) {
        if (prop === "send" || prop === "sendBatch")
          return () => Promise.reject(new Error("queue unavailable"));
        return Reflect.get(target, prop);
      },
    });
    const ctx = createExecutionContext();
    const res = await newApp().fetch(
      new Request("https://mailtrail.test/webhooks/ses", { method: "POST", body: JSON.stringify(msg) }),
      { ...(env as unknown as Env), EVENTS_QUEUE: failing },
      ctx,
    );
    await waitOnExecutionContext(ctx);
    expect(res.status).toBe(503);
    expect((await json(res)).error.type).toBe("unavailable");
    await new Promise((r) => setTimeout(r, 2500));
    expect(await eventsOf("acct_bound", emailId)).toHaveLength(0);

    expect((await post(msg)).status).toBe(200);
    await settle(
      () => eventsOf("acct_bound", emailId),
      (r) => expect(r).toHaveLength(2),
    );
  });
});

describe("subscriptions", () => {
  it("confirms a verified SubscriptionConfirmation by fetching its SubscribeURL", async () => {
    const fetchSpy = interceptAws();
    const res = await post(await signed(confirmation("SubscriptionConfirmation")), {
      "x-amz-sns-message-type": "SubscriptionConfirmation",
    });
    expect(res.status).toBe(200);
    const urls = fetchSpy.mock.calls.map(([input]) => (input instanceof Request ? input.url : String(input)));
    expect(urls).toContain(SUBSCRIBE_URL.replace(/ /g, "%20"));
  });

  it("fetches nothing for a SubscribeURL off the AWS host", async () => {
    const fetchSpy = interceptAws();
    const evil = "https://evil.example.com/?Action=ConfirmSubscription";
    const res = await post(await signed(confirmation("SubscriptionConfirmation", { SubscribeURL: evil })));
    expect(res.status).toBe(400);
    expect((await json(res)).error.type).toBe("signature_error");
    const urls = fetchSpy.mock.calls.map(([input]) => (input instanceof Request ? input.url : String(input)));
    expect(urls.some((u) => u.startsWith("https://evil.example.com"))).toBe(false);
  });

  it("rejects a real AWS-signed confirmation for a topic it does not serve", async () => {
    const res = await post(signedFiles["subscription-confirmation-sigv1.json"] ?? "");
    expect(res.status).toBe(403);
  });

  it("logs an UnsubscribeConfirmation and never re-subscribes", async () => {
    const fetchSpy = interceptAws();
    const res = await post(await signed(confirmation("UnsubscribeConfirmation")));
    expect(res.status).toBe(200);
    const urls = fetchSpy.mock.calls.map(([input]) => (input instanceof Request ? input.url : String(input)));
    expect(urls.some((u) => u.includes("ConfirmSubscription"))).toBe(false);
  });
});
