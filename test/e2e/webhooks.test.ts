/**
 * Webhooks end to end, in Node: `wrangler dev` (real local D1 and Queues), a local receiver, and the
 * `standardwebhooks` library verifying what arrives, as a customer's receiver would. An SES
 * notification posted to /webhooks/ses (signed with the repository's test key pair, whose
 * certificate a loopback server serves, as SNS_CERT_HOST_PATTERN allows) and an open through
 * /o/{token} each arrive signed at the receiver.
 */
import { randomBytes, randomUUID, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { SignJWT } from "jose";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startWranglerDev, until } from "./wrangler-dev";

const FIXTURES = path.resolve(import.meta.dirname, "../ses/fixtures");
const ACCOUNT = `acct_e2e_wh_${randomBytes(4).toString("hex")}`;
const TOPIC = "arn:aws:sns:us-east-1:000000000000:mailtrail-e2e-webhooks";
const DESKTOP_UA =
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

describe("webhooks through wrangler dev", () => {
  const jwtSecret = randomBytes(36).toString("base64url");
  let dev: DevServer | undefined;
  let local: Server | undefined;
  let localOrigin = "";
  const received: Received[] = [];
  const cert = readFileSync(path.join(FIXTURES, "test-cert.pem"), "utf8");
  const key = readFileSync(path.join(FIXTURES, "test-key.pem"), "utf8");

  beforeAll(async () => {
    // One loopback server: the SNS signing certificate, and the webhook receiver.
    local = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        if (req.url === "/SimpleNotificationService-e2e.pem") {
          res.writeHead(200, { "content-type": "application/x-pem-file" }).end(cert);
        } else if (req.url === "/hook" && req.method === "POST") {
          received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
          res.writeHead(204).end();
        } else {
          res.writeHead(404).end();
        }
      });
    });
    await new Promise<void>((resolve) => local?.listen(0, "127.0.0.1", resolve));
    localOrigin = `http://127.0.0.1:${(local.address() as AddressInfo).port}`;
    dev = await startWranglerDev({
      JWT_SECRET: jwtSecret,
      TRACKING_KEYS: randomBytes(32).toString("base64url"),
      SECRETS_KEY: randomBytes(32).toString("base64url"),
      PUBLIC_BASE_URL: "{origin}",
      SNS_TOPIC_ARNS: `${TOPIC}=${ACCOUNT}`,
      SNS_CERT_HOST_PATTERN: "127\\.0\\.0\\.1",
      WEBHOOK_ALLOW_INSECURE_URLS: "true",
    });
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
    await new Promise((resolve) => (local ? local.close(resolve) : resolve(undefined)));
  });

  it("an SES notification and an open each arrive at the receiver, signed the Standard Webhooks way", async () => {
    const origin = dev!.origin;
    const token = await new SignJWT({ scope: "send events:read webhooks:read webhooks:write" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(ACCOUNT)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(jwtSecret));
    const api = (pathname: string, init: RequestInit = {}) =>
      fetch(`${origin}${pathname}`, {
        ...init,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers },
      });

    const created = await api("/v1/webhooks", {
      method: "POST",
      body: JSON.stringify({ url: `${localOrigin}/hook`, event_types: ["email.delivered", "email.opened"] }),
    });
    expect(created.status).toBe(201);
    const endpoint = (await created.json()) as { id: string; secret: string };
    const wh = new Webhook(endpoint.secret);

    // 1. An SES Delivery through SNS.
    const emailId = `email_${randomUUID()}`;
    const now = new Date();
    const ses = {
      eventType: "Delivery",
      mail: {
        timestamp: now.toISOString(),
        source: "News <news@mail.example.com>",
        messageId: `0100-${randomUUID()}`,
        destination: ["reader@example.com"],
        commonHeaders: { from: ["News <news@mail.example.com>"], subject: "Digest" },
        tags: { email_id: [emailId], campaign: ["e2e"] },
      },
      delivery: {
        timestamp: now.toISOString(),
        recipients: ["reader@example.com"],
        smtpResponse: "250 2.0.0 OK",
      },
    };
    const certUrl = `${localOrigin}/SimpleNotificationService-e2e.pem`;
    const sns: Record<string, string> = {
      Type: "Notification",
      MessageId: randomUUID(),
      TopicArn: TOPIC,
      Message: JSON.stringify(ses),
      Timestamp: now.toISOString(),
      SignatureVersion: "2",
      SigningCertURL: certUrl,
      UnsubscribeURL: `${certUrl}?Action=Unsubscribe`,
    };
    const toSign = ["Message", "MessageId", "Timestamp", "TopicArn", "Type"]
      .map((k) => `${k}\n${sns[k]}\n`)
      .join("");
    sns.Signature = sign("sha256", Buffer.from(toSign), key).toString("base64");
    const posted = await fetch(`${origin}/webhooks/ses`, {
      method: "POST",
      headers: { "content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification" },
      body: JSON.stringify(sns),
    });
    expect(posted.status).toBe(200);
    const sesCall = await until("the SES event at the receiver", 30_000, async () => received[0]);
    const delivered = wh.verify(sesCall.body, sesCall.headers as Record<string, string>) as Record<
      string,
      any
    >;
    expect(delivered).toMatchObject({
      type: "email.delivered",
      data: {
        object: "event",
        type: "email.delivered",
        email_id: emailId,
        campaign: "e2e",
        recipient: "reader@example.com",
      },
    });
    expect(sesCall.headers["webhook-id"]).toBe(delivered.data.id);
    expect(sesCall.headers["user-agent"]).toBe("mailtrail-webhooks/1");

    // 2. An open through the pixel of an instrumented message.
    const instrumented = await api("/v1/messages/instrument", {
      method: "POST",
      body: JSON.stringify({
        email_id: emailId,
        recipient: "reader@example.com",
        html: "<html><body><p>Hi</p></body></html>",
        campaign: "e2e",
      }),
    });
    expect(instrumented.status).toBe(200);
    const { pixel_url } = (await instrumented.json()) as { pixel_url: string };
    const pixel = await fetch(pixel_url, { headers: { "user-agent": DESKTOP_UA } });
    expect(pixel.status).toBe(200);
    const openCall = await until("the open at the receiver", 30_000, async () => received[1]);
    const opened = wh.verify(openCall.body, openCall.headers as Record<string, string>) as Record<
      string,
      any
    >;
    expect(opened).toMatchObject({
      type: "email.opened",
      data: { type: "email.opened", email_id: emailId, tracking: { user_agent: DESKTOP_UA, bot: null } },
    });
    // A wrong secret does not verify: the signature is really checked.
    expect(() =>
      new Webhook(`whsec_${randomBytes(32).toString("base64")}`).verify(
        openCall.body,
        openCall.headers as Record<string, string>,
      ),
    ).toThrow();

    // Both deliveries are recorded.
    const list = (await (await api(`/v1/webhooks/${endpoint.id}/deliveries`)).json()) as {
      data: Record<string, unknown>[];
    };
    expect(list.data.map((d) => [d.event_type, d.status, d.attempts]).sort()).toEqual([
      ["email.delivered", "succeeded", 1],
      ["email.opened", "succeeded", 1],
    ]);
  }, 90_000);
});
