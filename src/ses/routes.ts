import * as z from "zod";
import { config } from "../config";
import { ApiError } from "../lib/errors";
import { readBodyText } from "../lib/http";
import { log } from "../lib/log";
import { type App, jsonContent, route } from "../lib/openapi";
import { enqueue } from "../pipeline/enqueue";
import { notificationToMessages } from "./ingest";
import {
  checkAwsHostUrl,
  checkSnsFreshness,
  checkSnsMessage,
  fetchCertificate,
  parseSnsEnvelope,
  type SnsConfirmation,
  snsEnvelopeSchema,
  verifySnsMessage,
} from "./sns";

const MAX_SNS_BYTES = 256 * 1024;
const SUBSCRIBE_TIMEOUT_MS = 10_000;

const errorOf = (description: string) => ({ description });
const receivedSchema = z.object({ received: z.number().int(), ignored: z.string().optional() });

export function registerSesRoutes(app: App): void {
  route(
    app,
    {
      method: "post",
      path: "/webhooks/ses",
      operationId: "receiveSnsMessage",
      security: [],
      summary: "Amazon SNS endpoint for SES notifications",
      description:
        "Point an SNS HTTPS subscription here. Messages are verified (SignatureVersion 1 and 2), topics checked " +
        "against SNS_TOPIC_ARNS, subscriptions confirmed, and each SES notification queued as one event per recipient.",
      tags: ["ingestion"],
      request: {
        // SNS posts its JSON as text/plain; parseSnsEnvelope reads it with this very schema.
        body: {
          content: { "text/plain": { schema: snsEnvelopeSchema } },
          required: true,
        },
      },
      responses: {
        200: jsonContent(receivedSchema, "Accepted: the events are queued, or the message needed no events"),
        400: errorOf("validation_error (not an SNS message) or signature_error (verification failed)"),
        403: errorOf("permission_error: the topic is not in SNS_TOPIC_ARNS"),
        413: errorOf("payload_too_large: over 256 KiB"),
        503: errorOf("unavailable: the queue or the certificate host failed; SNS retries"),
      },
    },
    async (c) => {
      const text = await readBodyText(c.req.raw, MAX_SNS_BYTES, "an SNS message");
      const msg = parseSnsEnvelope(text);
      const hostPattern = config(c.env, "SNS_CERT_HOST_PATTERN");
      // Verification first (SPEC §7), in two steps around the allowlist: the checks that need no
      // network, then the topic, then the certificate fetch, so nothing is fetched for a topic we
      // do not serve and a forged message is a signature error whatever topic it names.
      checkSnsMessage(msg, hostPattern);
      if (!config(c.env, "SNS_TOPIC_ARNS").has(msg.TopicArn)) {
        throw new ApiError("permission_error", "this SNS topic is not allowed (SNS_TOPIC_ARNS)");
      }
      await verifySnsMessage(msg, { hostPattern, fetchCert: fetchCertificate });
      // The Timestamp is signed: checked once the signature proved it is AWS's.
      checkSnsFreshness(msg, Date.now());
      const requestId = c.get("requestId");

      if (msg.Type === "SubscriptionConfirmation") {
        await confirmSubscription(msg, hostPattern);
        log("info", "SNS subscription confirmed", { request_id: requestId, topic_arn: msg.TopicArn });
        return c.json({ received: 0 });
      }
      if (msg.Type === "UnsubscribeConfirmation") {
        // Never re-subscribe: an operator unsubscribed on purpose.
        log("warn", "SNS subscription ended", { request_id: requestId, topic_arn: msg.TopicArn });
        return c.json({ received: 0 });
      }

      const outcome = await notificationToMessages(c.env, msg);
      if (outcome.kind === "ignored") {
        log("info", "SNS notification recorded nothing", {
          request_id: requestId,
          sns_message_id: msg.MessageId,
          reason: outcome.reason,
        });
        return c.json({ received: 0, ignored: outcome.reason });
      }
      // 200 only once the queue holds every event: otherwise 503, and SNS redelivers.
      await enqueue(c.env, outcome.messages);
      return c.json({ received: outcome.messages.length });
    },
  );
}

async function confirmSubscription(msg: SnsConfirmation, hostPattern: RegExp | null): Promise<void> {
  const url = checkAwsHostUrl(msg.SubscribeURL, msg.TopicArn, hostPattern, "subscribe");
  let res: Response;
  try {
    res = await fetch(url.href, { redirect: "manual", signal: AbortSignal.timeout(SUBSCRIBE_TIMEOUT_MS) });
  } catch {
    throw new ApiError(
      "unavailable",
      "the SubscribeURL could not be reached; SNS will resend the confirmation",
    );
  }
  await res.body?.cancel();
  if (!res.ok) throw new ApiError("unavailable", `the SubscribeURL answered ${res.status}`);
}
