import { config } from "../config";
import type { Env } from "../env";
import { log } from "../lib/log";
import { isAccountId } from "../lib/params";
import type { QueueMessage } from "../pipeline/messages";
import { classifyInteraction } from "../tracking/classify";
import { needsBotClassification, parseSesMessage } from "./parse";
import type { SnsNotification } from "./sns";

export type IngestOutcome =
  | { kind: "queued"; messages: QueueMessage[] }
  | { kind: "ignored"; reason: string };

/**
 * A verified SNS Notification → the queue messages to send. The account comes from the topic's
 * binding in SNS_TOPIC_ARNS (which wins) or the SES `account_id` tag; with neither, nothing is
 * recorded. SES's own opens and clicks are classified like ours: proxies flagged, scanners dropped.
 */
export async function notificationToMessages(env: Env, msg: SnsNotification): Promise<IngestOutcome> {
  const parsed = await parseSesMessage(msg.Message, { snsMessageId: msg.MessageId });
  if (parsed.kind === "ignored") return parsed;

  const bound = config(env, "SNS_TOPIC_ARNS").get(msg.TopicArn) ?? null;
  const tagged = parsed.accountTag !== null && isAccountId(parsed.accountTag) ? parsed.accountTag : null;
  const accountId = bound ?? tagged;
  if (accountId === null) {
    return {
      kind: "ignored",
      reason: "the topic is not bound to an account and the message has no account_id tag",
    };
  }

  const messages: QueueMessage[] = [];
  for (const item of parsed.items) {
    const event = { ...item.event, account_id: accountId };
    if (needsBotClassification(event) && event.tracking) {
      const verdict = classifyInteraction({
        kind: event.type === "email.clicked" ? "click" : "open",
        method: "GET",
        userAgent: event.tracking.user_agent,
      });
      if (verdict.action === "drop") {
        log("info", "SES engagement dropped as machine traffic", {
          event_id: event.id,
          reason: verdict.reason,
        });
        continue;
      }
      event.tracking = { ...event.tracking, bot: verdict.bot };
    }
    messages.push({
      type: "event",
      event,
      ...(item.suppress ? { suppress: item.suppress } : {}),
      ...(item.mailbox_provider ? { mailbox_provider: item.mailbox_provider } : {}),
    });
  }
  return { kind: "queued", messages };
}
