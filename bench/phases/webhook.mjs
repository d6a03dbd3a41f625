// Phase 1b, the SES webhook: POST /webhooks/ses with a signed SNS Notification carrying an SES
// Delivery event, under the same load generator. Measures requests/s, latency, workerd CPU per
// notification (signature verification with a cached certificate, parsing, the queue send) and the
// binding calls per notification. SNS signs with the repository's test key pair
// (test/ses/fixtures), whose certificate a loopback server serves, as SNS_CERT_HOST_PATTERN allows.
import { randomUUID, sign } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import autocannon from "autocannon";
import { timedBar } from "../lib/progress.mjs";
import { round, summarize } from "../lib/stats.mjs";

const ROOT = path.join(import.meta.dirname, "..", "..");
const FIXTURES = path.join(ROOT, "test", "ses", "fixtures");
export const BENCH_TOPIC = "arn:aws:sns:us-east-1:000000000000:mailtrail-bench";
export const BENCH_SES_ACCOUNT = "acct_bench_ses";

function stringToSign(m) {
  const pairs = [
    ["Message", m.Message],
    ["MessageId", m.MessageId],
    ["Timestamp", m.Timestamp],
    ["TopicArn", m.TopicArn],
    ["Type", m.Type],
  ];
  return pairs.map(([k, v]) => `${k}\n${v}\n`).join("");
}

/** An SES event-publishing Delivery for one recipient, as SNS delivers it (SignatureVersion 2). */
function notification(certUrl, keyPem) {
  const now = new Date();
  const sesMessageId = `0100019${randomUUID().replaceAll("-", "").slice(0, 9)}-${randomUUID()}-000000`;
  const ses = {
    eventType: "Delivery",
    mail: {
      timestamp: new Date(now.getTime() - 3000).toISOString(),
      source: "News <news@mail.example.com>",
      sourceArn: "arn:aws:ses:us-east-1:000000000000:identity/mail.example.com",
      sendingAccountId: "000000000000",
      messageId: sesMessageId,
      destination: ["reader@example.com"],
      headersTruncated: false,
      commonHeaders: {
        from: ["News <news@mail.example.com>"],
        to: ["reader@example.com"],
        messageId: `<${sesMessageId}@email.amazonses.com>`,
        subject: "Your weekly digest",
      },
      tags: {
        "ses:configuration-set": ["mailtrail"],
        email_id: [`email_${randomUUID()}`],
        campaign: ["weekly-digest"],
        template_id: ["digest-v3"],
      },
    },
    delivery: {
      timestamp: now.toISOString(),
      processingTimeMillis: 2800,
      recipients: ["reader@example.com"],
      smtpResponse: "250 2.0.0 OK  1700000000 a1b2c3d4e5f6.123 - gsmtp",
      reportingMTA: "a8-50.smtp-out.amazonses.com",
      remoteMtaIp: "192.0.2.10",
    },
  };
  const msg = {
    Type: "Notification",
    MessageId: randomUUID(),
    TopicArn: BENCH_TOPIC,
    Message: JSON.stringify(ses),
    Timestamp: now.toISOString(),
    SignatureVersion: "2",
    SigningCertURL: certUrl,
    UnsubscribeURL: `${certUrl}?Action=Unsubscribe`,
  };
  msg.Signature = sign("sha256", Buffer.from(stringToSign(msg)), keyPem).toString("base64");
  return msg;
}

export async function webhookPhase({ app, client, options }) {
  const keyFile = path.join(FIXTURES, "test-key.pem");
  const certFile = path.join(FIXTURES, "test-cert.pem");
  if (!existsSync(keyFile) || !existsSync(certFile)) {
    return { available: false, reason: "no SNS test key pair in test/ses/fixtures" };
  }
  const cert = readFileSync(certFile, "utf8");
  let certFetches = 0;
  const server = http.createServer((_req, res) => {
    certFetches += 1;
    res.writeHead(200, { "content-type": "application/x-pem-file" });
    res.end(cert);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const certUrl = `http://127.0.0.1:${server.address().port}/SimpleNotificationService-bench.pem`;
    const body = JSON.stringify(notification(certUrl, readFileSync(keyFile, "utf8")));
    const headers = {
      "content-type": "text/plain; charset=UTF-8",
      "x-amz-sns-message-type": "Notification",
      "user-agent": "Amazon Simple Notification Service Agent",
    };
    const url = `${app.url}/webhooks/ses`;
    const first = await fetch(url, { method: "POST", headers, body });
    const text = await first.text();
    if (first.status === 404 || first.status === 405) {
      return { available: false, reason: `POST /webhooks/ses answered ${first.status}` };
    }
    if (first.status !== 200) {
      return {
        available: false,
        reason: `POST /webhooks/ses answered ${first.status}: ${text.slice(0, 200)}`,
      };
    }
    await autocannon({
      url,
      method: "POST",
      headers,
      body,
      connections: options.connections,
      duration: options.warmup,
    });
    const before = await client.counters();
    const cpu0 = app.cpuSeconds();
    const latencies = [];
    const statuses = {};
    const stop = timedBar("  SES webhook (POST /webhooks/ses)", options.seconds);
    const instance = autocannon({
      url,
      method: "POST",
      headers,
      body,
      connections: options.connections,
      duration: options.seconds,
    });
    instance.on("response", (_c, status, _b, ms) => {
      latencies.push(ms);
      statuses[status] = (statuses[status] ?? 0) + 1;
    });
    const result = await instance;
    stop();
    const cpu1 = app.cpuSeconds();
    const after = await client.counters();
    const handled = after.requests - before.requests;
    const lat = summarize(latencies);
    return {
      available: true,
      route: "POST /webhooks/ses (SES Delivery, 1 recipient)",
      rps: round(latencies.length / result.duration),
      p50_ms: round(lat.p50),
      p99_ms: round(lat.p99),
      cpu_ms_per_request: cpu0 === null ? null : round(((cpu1 - cpu0) * 1000) / latencies.length),
      statuses,
      certificate_fetches: certFetches,
      bindings_per_request: {
        d1_calls: round((after.d1Calls - before.d1Calls) / handled),
        kv_calls: round((after.kvCalls - before.kvCalls) / handled),
        queue_messages: round((after.queueMessages - before.queueMessages) / handled),
      },
    };
  } finally {
    server.close();
  }
}
