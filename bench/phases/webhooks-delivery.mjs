// Phase: webhooks end to end. Signed SES Delivery notifications are POSTed to /webhooks/ses of a
// Worker served with the repository's queue settings (wrangler.toml: batch sizes and timeouts of
// both consumers); each new event is fanned out to one endpoint and POSTed to a local receiver,
// which verifies every signature with the `standardwebhooks` library. Measured:
// - latency from "event accepted" (POST /webhooks/ses answered 200) to "webhook received", p50/p95,
//   at a steady rate;
// - deliveries per second for a burst (first acceptance to last delivery);
// - D1 rows written (and read) by the delivery consumer per delivery, from D1's own statement meta.
import { randomUUID, sign } from "node:crypto";
import { readFileSync } from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { SignJWT } from "jose";
import { Webhook } from "standardwebhooks";
import { unstable_readConfig } from "wrangler";
import { benchClient } from "../lib/client.mjs";
import { startWorker } from "../lib/instances.mjs";
import { percentile, round } from "../lib/stats.mjs";

const ROOT = path.join(import.meta.dirname, "..", "..");
const FIXTURES = path.join(ROOT, "test", "ses", "fixtures");
const TOPIC = "arn:aws:sns:us-east-1:000000000000:mailtrail-bench";
const ACCOUNT = "acct_bench_ses";

/** The consumers exactly as wrangler.toml declares them (the "default queue settings"). */
function queueConsumers() {
  const config = unstable_readConfig({ config: path.join(ROOT, "wrangler.toml") }, { hideWarnings: true });
  return Object.fromEntries(
    (config.queues?.consumers ?? []).map((c) => [
      c.queue,
      {
        maxBatchSize: c.max_batch_size,
        maxBatchTimeout: c.max_batch_timeout,
        maxRetries: c.max_retries,
        ...(c.dead_letter_queue ? { deadLetterQueue: c.dead_letter_queue } : {}),
        ...(c.retry_delay !== undefined ? { retryDelay: c.retry_delay } : {}),
      },
    ]),
  );
}

function signedDelivery(certUrl, keyPem, emailId) {
  const now = new Date();
  const sesMessageId = `0100-${randomUUID()}`;
  const ses = {
    eventType: "Delivery",
    mail: {
      timestamp: now.toISOString(),
      source: "News <news@mail.example.com>",
      messageId: sesMessageId,
      destination: ["reader@example.com"],
      commonHeaders: { from: ["News <news@mail.example.com>"], subject: "Your weekly digest" },
      tags: { email_id: [emailId], campaign: ["weekly-digest"] },
    },
    delivery: {
      timestamp: now.toISOString(),
      recipients: ["reader@example.com"],
      smtpResponse: "250 2.0.0 OK",
    },
  };
  const msg = {
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
    .map((k) => `${k}\n${msg[k]}\n`)
    .join("");
  msg.Signature = sign("sha256", Buffer.from(toSign), keyPem).toString("base64");
  return msg;
}

function summarize(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p) => (sorted.length === 0 ? null : percentile(sorted, p));
  return { p50: at(50), p95: at(95), p99: at(99), max: sorted.length ? sorted[sorted.length - 1] : null };
}

/** An email.delivered queue message (the shape the SES edge sends), every §8 field present. */
function deliveredEvent(emailId, occurredAt) {
  return {
    type: "event",
    event: {
      id: `evt_${randomUUID().replaceAll("-", "")}`,
      account_id: ACCOUNT,
      type: "email.delivered",
      occurred_at: occurredAt,
      email_id: emailId,
      message_id: null,
      from: "news@mail.example.com",
      from_domain: "mail.example.com",
      recipient: "reader@example.com",
      subject: "Your weekly digest",
      topic: null,
      campaign: "weekly-digest",
      template_id: null,
      tags: [],
      smtp_code: 250,
      smtp_response: "250 2.0.0 OK",
      bounce_type: null,
      bounce_classification: null,
      complaint_type: null,
      attempt: null,
      tracking: null,
    },
  };
}

export async function webhooksDeliveryPhase({ bundle, config, secrets, migrations, tmp, options, say }) {
  const cert = readFileSync(path.join(FIXTURES, "test-cert.pem"), "utf8");
  const key = readFileSync(path.join(FIXTURES, "test-key.pem"), "utf8");
  const consumers = queueConsumers();
  const app = await startWorker({
    name: "mailtrail-webhooks",
    bundle,
    config,
    bindings: { ...config.vars, ...secrets, WEBHOOK_ALLOW_INSECURE_URLS: "true" },
    persistDir: path.join(tmp, "webhooks-state"),
    logFile: path.join(tmp, "webhooks-worker.log"),
    queueConsumers: consumers,
  });
  const client = benchClient(app, secrets.BENCH_KEY);
  const arrivals = new Map(); // email_id -> ms (performance.now) when the webhook arrived
  let verified = 0;
  let rejected = 0;
  let secret = "";
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      const at = performance.now();
      if (req.url?.endsWith(".pem")) {
        res.writeHead(200, { "content-type": "application/x-pem-file" }).end(cert);
        return;
      }
      const body = Buffer.concat(chunks).toString("utf8");
      try {
        const payload = new Webhook(secret).verify(body, req.headers);
        verified += 1;
        if (!arrivals.has(payload.data.email_id)) arrivals.set(payload.data.email_id, at);
      } catch {
        rejected += 1;
      }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const local = `http://127.0.0.1:${server.address().port}`;
  const certUrl = `${local}/SimpleNotificationService-bench.pem`;
  try {
    await client.sql(migrations);
    const token = await new SignJWT({ scope: "webhooks:write" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(ACCOUNT)
      .setIssuedAt()
      .setExpirationTime("1h")
      .sign(new TextEncoder().encode(secrets.JWT_SECRET));
    const created = await fetch(`${app.url}/v1/webhooks`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ url: `${local}/hook`, event_types: ["email.delivered"] }),
    });
    if (created.status !== 201) {
      return {
        available: false,
        reason: `POST /v1/webhooks answered ${created.status}: ${await created.text()}`,
      };
    }
    secret = (await created.json()).secret;

    const accepted = new Map(); // email_id -> ms when POST /webhooks/ses answered 200
    const post = async () => {
      const emailId = `email_${randomUUID()}`;
      const body = JSON.stringify(signedDelivery(certUrl, key, emailId));
      const res = await fetch(`${app.url}/webhooks/ses`, {
        method: "POST",
        headers: { "content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification" },
        body,
      });
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`POST /webhooks/ses answered ${res.status}`);
      accepted.set(emailId, performance.now());
      return emailId;
    };
    const waitFor = async (ids, timeoutMs) => {
      const deadline = performance.now() + timeoutMs;
      while (performance.now() < deadline && !ids.every((id) => arrivals.has(id))) {
        await new Promise((r) => setTimeout(r, 20));
      }
      return ids.filter((id) => arrivals.has(id)).length;
    };

    // Warm-up: certificate cache, isolates, first batches.
    await waitFor([await post()], 30_000);

    // 1. Steady rate: latency from acceptance to arrival.
    say(`  steady: ${options.steadyEvents} notifications at ${options.rate}/s`);
    const loadBefore = os.loadavg()[0];
    const before = await client.call("/__bench/webhook-consumer").then((r) => r.data);
    const cpu0 = app.cpuSeconds();
    const steadyIds = [];
    const start = performance.now();
    const inflight = [];
    for (let i = 0; i < options.steadyEvents; i++) {
      const due = start + (i * 1000) / options.rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      inflight.push(post().then((id) => steadyIds.push(id)));
    }
    await Promise.all(inflight);
    const steadyDelivered = await waitFor(steadyIds, 60_000);
    const latencies = steadyIds
      .filter((id) => arrivals.has(id))
      .map((id) => arrivals.get(id) - accepted.get(id));
    const lat = summarize(latencies);

    // 2. Burst: events put straight onto EVENTS_QUEUE (100 per sendBatch), then until the last
    // delivery: the pipeline's throughput, not the SNS edge's (measured by the webhook phase).
    say(`  burst: ${options.burstEvents} events onto the queue at once`);
    const burstIds = [];
    const messages = [];
    const nowMs = Date.now();
    for (let i = 0; i < options.burstEvents; i++) {
      const emailId = `email_${randomUUID()}`;
      burstIds.push(emailId);
      messages.push(deliveredEvent(emailId, nowMs - 1000 + (i % 1000)));
    }
    const burstStart = performance.now();
    for (let i = 0; i < messages.length; i += 500) {
      await client.call("/__bench/enqueue", { method: "POST", body: messages.slice(i, i + 500) });
    }
    for (const id of burstIds) accepted.set(id, burstStart);
    const postedAt = performance.now();
    const burstDelivered = await waitFor(burstIds, 180_000);
    const lastArrival = Math.max(...burstIds.filter((id) => arrivals.has(id)).map((id) => arrivals.get(id)));
    const cpu1 = app.cpuSeconds();
    // Let late retries (if any) land before reading the consumer's totals.
    await new Promise((r) => setTimeout(r, 1500));
    const after = await client.call("/__bench/webhook-consumer").then((r) => r.data);
    const deliveries = steadyDelivered + burstDelivered;
    const rowsWritten = after.rows_written - before.rows_written;
    const burstLat = summarize(
      burstIds.filter((id) => arrivals.has(id)).map((id) => arrivals.get(id) - accepted.get(id)),
    );
    return {
      available: true,
      queue_settings: consumers,
      // The machine's 1-minute load average around the measurement (other work competes for its cores).
      load_average: { before: round(loadBefore), after: round(os.loadavg()[0]) },
      endpoints: 1,
      steady: {
        events: options.steadyEvents,
        rate_per_s: options.rate,
        delivered: steadyDelivered,
        p50_ms: round(lat.p50),
        p95_ms: round(lat.p95),
        p99_ms: round(lat.p99),
        max_ms: round(lat.max),
      },
      burst: {
        events: options.burstEvents,
        delivered: burstDelivered,
        enqueue_ms: round(postedAt - burstStart),
        deliveries_per_s: round(burstDelivered / ((lastArrival - burstStart) / 1000)),
        p50_ms: round(burstLat.p50),
        p95_ms: round(burstLat.p95),
      },
      signatures: { verified, rejected },
      consumer: {
        messages: after.messages - before.messages,
        batches: after.batches - before.batches,
        d1_statements_per_delivery: round((after.statements - before.statements) / deliveries),
        d1_rows_read_per_delivery: round((after.rows_read - before.rows_read) / deliveries),
        d1_rows_written_per_delivery: round(rowsWritten / deliveries),
      },
      cpu_ms_per_event_end_to_end: cpu0 === null ? null : round(((cpu1 - cpu0) * 1000) / deliveries),
    };
  } finally {
    server.closeAllConnections();
    server.close();
    await app.stop();
  }
}
