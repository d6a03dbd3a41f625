import * as z from "zod";
import {
  bareAddress,
  blankEvent,
  domainOf,
  type EventRecord,
  type EventType,
  TOPIC_PATTERN,
  type Tracking,
} from "../events/record";
import { ApiError } from "../lib/errors";
import { canonicalAddress } from "../lib/idna";
import { eventId } from "../lib/ids";
import { type KnownProvider, providerOfDomain, providerOfServer } from "../mailbox/providers";
import type { SuppressEffect } from "../pipeline/messages";
import { isSimulatorAddress } from "../suppressions/address";

/**
 * SES JSON (the Message of an SNS Notification) → events, one per recipient (SPEC §6, §7, §8).
 * Both formats: event publishing (`eventType`) and identity notifications (`notificationType`).
 */

export interface SesParsedItem {
  event: EventRecord;
  suppress?: SuppressEffect;
  /** Deliveries and bounces: the provider that runs the receiving server, when SES's report names one. */
  mailbox_provider?: KnownProvider;
}

/**
 * `account_id` of every event is "": notificationToMessages (ses/ingest.ts) fills it in from the
 * topic binding or `accountTag`. Opens and clicks carry `tracking.bot = null` and `geo = null`:
 * ingest runs them through the tracking classifier before queuing (see `needsBotClassification`),
 * like our own pixel and redirect.
 */
export type SesParseResult =
  | { kind: "events"; accountTag: string | null; items: SesParsedItem[] }
  | { kind: "ignored"; reason: string };

/** SES types we record, by the spelling SES uses in both formats. */
const SES_EVENT_TYPES: Record<string, EventType> = {
  Send: "email.sent",
  Delivery: "email.delivered",
  DeliveryDelay: "email.delayed",
  Bounce: "email.bounced",
  Complaint: "email.complained",
  Open: "email.opened",
  Click: "email.clicked",
  Subscription: "email.unsubscribed",
  Reject: "email.failed",
  "Rendering Failure": "email.failed",
};

const text = z.string().nullish();

const mailSchema = z.object({
  timestamp: z.string(),
  messageId: z.string().min(1),
  source: text,
  destination: z.array(z.string()).nullish(),
  commonHeaders: z.object({ from: z.array(z.string()).nullish(), subject: text, messageId: text }).nullish(),
  // Event publishing only: message tags as {name: [values]}.
  tags: z.record(z.string(), z.array(z.string())).nullish(),
});
type Mail = z.infer<typeof mailSchema>;

const dsnRecipient = z.object({ emailAddress: z.string(), status: text, diagnosticCode: text });

const bounceSchema = z.object({
  bounceType: z.string(),
  bounceSubType: text,
  bouncedRecipients: z.array(dsnRecipient),
  timestamp: text,
  reportingMTA: text,
  remoteMtaIp: text,
});
const complaintSchema = z.object({
  complainedRecipients: z.array(z.object({ emailAddress: z.string() })),
  complaintFeedbackType: text,
  timestamp: text,
});
const deliverySchema = z.object({
  recipients: z.array(z.string()),
  smtpResponse: text,
  timestamp: text,
  reportingMTA: text,
  remoteMtaIp: text,
});
const delaySchema = z.object({ delayedRecipients: z.array(dsnRecipient), timestamp: text });
const openSchema = z.object({ userAgent: text, ipAddress: text, timestamp: text });
const clickSchema = openSchema.extend({
  link: text,
  linkTags: z.record(z.string(), z.array(z.string())).nullish(),
});
const topicPreferences = z
  .object({
    unsubscribeAll: z.boolean().nullish(),
    topicSubscriptionStatus: z
      .array(z.object({ topicName: z.string(), subscriptionStatus: z.string() }))
      .nullish(),
  })
  .nullish();
const subscriptionSchema = z.object({
  timestamp: text,
  newTopicPreferences: topicPreferences,
  oldTopicPreferences: topicPreferences,
});
const rejectSchema = z.object({ reason: text });
const failureSchema = z.object({ errorMessage: text });

/** Per-recipient facts of one SES record, before the shared dimensions are added. */
interface Plan {
  type: EventType;
  /** The type's own timestamp; mail.timestamp stands in when absent. */
  timestamp: string | null | undefined;
  recipients: Array<{ address: string; fields?: Partial<EventRecord>; server?: KnownProvider | null }>;
  fields?: Partial<EventRecord>;
  /** Applied to every recipient except the mailbox simulator's. */
  suppress?: SuppressEffect;
}

function invalid(message: string): ApiError {
  return new ApiError("validation_error", message);
}

function block<T extends z.ZodType>(record: Record<string, unknown>, name: string, schema: T): z.infer<T> {
  const parsed = schema.safeParse(record[name]);
  if (!parsed.success) throw invalid(`SES message has no valid "${name}" object`);
  return parsed.data;
}

function clip(value: string | null | undefined, max: number): string | null {
  if (value === null || value === undefined) return null;
  return value.length > max ? value.slice(0, max) : value;
}

/** An SMTP response as SES gives it, less the `smtp; ` diagnostic-type prefix. */
export function smtpResponseText(value: string | null | undefined): string | null {
  if (!value) return null;
  const stripped = value.replace(/^\s*smtp;\s*/i, "").trim();
  return stripped === "" ? null : clip(stripped, 4000);
}

/** The first three-digit SMTP reply code (2xx–5xx) in a response, or null (not 5.1.1). */
export function smtpReplyCode(value: string | null | undefined): number | null {
  if (!value) return null;
  const match = /(?<![\d.])([2-5]\d\d)(?![\d.])/.exec(value);
  return match?.[1] ? Number(match[1]) : null;
}

/**
 * smtp_code and smtp_response of a bounced or delayed recipient. The response is its diagnosticCode,
 * else its enhanced status code (5.1.1) as the only reason SES gave; the code comes from the
 * diagnosticCode only: mapping an enhanced status to a reply code would be a guess, so it stays null.
 */
function dsnFields(recipient: z.infer<typeof dsnRecipient>): Partial<EventRecord> {
  const response = smtpResponseText(recipient.diagnosticCode) ?? clip(recipient.status?.trim() || null, 4000);
  return { smtp_code: smtpReplyCode(recipient.diagnosticCode), smtp_response: response };
}

function bounceType(value: string): EventRecord["bounce_type"] {
  const lower = value.toLowerCase();
  return lower === "permanent" || lower === "transient" ? lower : "undetermined";
}

function tracking(data: z.infer<typeof clickSchema>, url: string | null): Tracking {
  return {
    user_agent: data.userAgent ?? null,
    ip_address: data.ipAddress ?? null,
    url,
    // SES link tags are free-form; a `link_name` tag (ses:tags="link_name:…") is the only obvious name.
    link_name: clip(data.linkTags?.link_name?.[0], 256),
    geo: null,
    bot: null,
  };
}

/**
 * A Subscription record is an unsubscribe when the recipient opted out of everything or out of some
 * topic they were not already out of. Opting back in records nothing.
 */
function subscriptionIsUnsubscribe(data: z.infer<typeof subscriptionSchema>): boolean {
  const next = data.newTopicPreferences;
  if (!next) return true; // SES sends Subscription records for unsubscribes; without detail, take it as one.
  if (next.unsubscribeAll === true) return true;
  const before = new Map(
    (data.oldTopicPreferences?.topicSubscriptionStatus ?? []).map((t) => [t.topicName, t.subscriptionStatus]),
  );
  return (next.topicSubscriptionStatus ?? []).some(
    (t) => t.subscriptionStatus === "OptOut" && before.get(t.topicName) !== "OptOut",
  );
}

function destinations(mail: Mail): Plan["recipients"] {
  return (mail.destination ?? []).map((address) => ({ address }));
}

function planFor(
  sesType: string,
  record: Record<string, unknown>,
  mail: Mail,
  topic: string | null,
): Plan | string {
  const type = SES_EVENT_TYPES[sesType];
  if (!type) return `SES type ${JSON.stringify(sesType.slice(0, 64))} is not recorded`;
  switch (sesType) {
    case "Bounce": {
      const data = block(record, "bounce", bounceSchema);
      const kind = bounceType(data.bounceType);
      return {
        type,
        timestamp: data.timestamp,
        recipients: data.bouncedRecipients.map((r) => ({
          address: r.emailAddress,
          fields: dsnFields(r),
          server: providerOfServer({
            smtpResponse: r.diagnosticCode,
            remoteMtaIp: data.remoteMtaIp,
            reportingMTA: data.reportingMTA,
          }),
        })),
        fields: { bounce_type: kind, bounce_classification: clip(data.bounceSubType, 128) },
        // Transient and undetermined bounces may recover: only a permanent one suppresses.
        ...(kind === "permanent" ? { suppress: { reason: "hard_bounce", topic: null } } : {}),
      };
    }
    case "Complaint": {
      const data = block(record, "complaint", complaintSchema);
      return {
        type,
        timestamp: data.timestamp,
        recipients: data.complainedRecipients.map((r) => ({ address: r.emailAddress })),
        fields: { complaint_type: clip(data.complaintFeedbackType, 128) },
        suppress: { reason: "complaint", topic: null },
      };
    }
    case "Delivery": {
      const data = block(record, "delivery", deliverySchema);
      const server = providerOfServer(data);
      return {
        type,
        timestamp: data.timestamp,
        recipients: data.recipients.map((address) => ({ address, server })),
        fields: {
          smtp_code: smtpReplyCode(data.smtpResponse),
          smtp_response: smtpResponseText(data.smtpResponse),
        },
      };
    }
    case "DeliveryDelay": {
      // SES gives no attempt count for a delay, so `attempt` stays null.
      const data = block(record, "deliveryDelay", delaySchema);
      return {
        type,
        timestamp: data.timestamp,
        recipients: data.delayedRecipients.map((r) => ({ address: r.emailAddress, fields: dsnFields(r) })),
      };
    }
    case "Open": {
      const data = block(record, "open", openSchema);
      return {
        type,
        timestamp: data.timestamp,
        recipients: destinations(mail),
        fields: { tracking: tracking(data, null) },
      };
    }
    case "Click": {
      const data = block(record, "click", clickSchema);
      const fields = { tracking: tracking(data, data.link ?? null) };
      return { type, timestamp: data.timestamp, recipients: destinations(mail), fields };
    }
    case "Subscription": {
      const data = block(record, "subscription", subscriptionSchema);
      if (!subscriptionIsUnsubscribe(data)) return "SES Subscription record is not an unsubscribe";
      // Opting out of everything suppresses every topic even when the message had one.
      const all = data.newTopicPreferences?.unsubscribeAll === true;
      return {
        type,
        timestamp: data.timestamp,
        recipients: destinations(mail),
        // Without a topic tag, the registered message's topic applies (the consumer looks it up).
        suppress:
          all || topic !== null
            ? { reason: "unsubscribe", topic: all ? null : topic }
            : { reason: "unsubscribe", topic: null, inherit_topic: true },
      };
    }
    case "Reject": {
      const data = block(record, "reject", rejectSchema);
      const fields = { smtp_response: clip(data.reason, 4000) };
      return { type, timestamp: null, recipients: destinations(mail), fields };
    }
    case "Rendering Failure": {
      const data = block(record, "failure", failureSchema);
      const fields = { smtp_response: clip(data.errorMessage, 4000) };
      return { type, timestamp: null, recipients: destinations(mail), fields };
    }
    default: // Send: nothing beyond the mail object.
      return { type, timestamp: null, recipients: destinations(mail) };
  }
}

function epochMs(value: string | null | undefined): number | null {
  if (!value) return null;
  const ms = Date.parse(value);
  return Number.isFinite(ms) && ms >= 0 ? ms : null;
}

/** First value of an SES message tag, when it is a usable string. */
function tagValue(mail: Mail, name: string, max: number): string | null {
  const value = mail.tags?.[name]?.[0];
  return value && value.length <= max ? value : null;
}

/** The lowercased bare address of a recipient entry (ASCII domain), or null when it holds none. */
function recipientAddress(raw: string): string | null {
  const bare = bareAddress(raw.trim());
  return bare && bare.length <= 320 ? canonicalAddress(bare) : null;
}

/**
 * Parses the SES JSON of one SNS Notification. Ids are deterministic, from the SNS MessageId and the
 * recipient, so a redelivered notification names the same events.
 * Throws `validation_error` for a Message that is not SES JSON; answers `ignored` for SES types that
 * are not recorded (including `AmazonSnsSubscriptionSucceeded`, which has no mail object).
 */
export async function parseSesMessage(
  message: string,
  ctx: { snsMessageId: string },
): Promise<SesParseResult> {
  let record: unknown;
  try {
    record = JSON.parse(message);
  } catch {
    throw invalid("SNS Message is not JSON; expected an SES notification");
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) {
    throw invalid("SNS Message is not an SES notification object");
  }
  const fields = record as Record<string, unknown>;
  const sesType = fields.eventType ?? fields.notificationType;
  if (typeof sesType !== "string") {
    throw invalid("SNS Message is not an SES notification (no eventType or notificationType)");
  }
  if (!SES_EVENT_TYPES[sesType])
    return { kind: "ignored", reason: `SES type ${JSON.stringify(sesType.slice(0, 64))} is not recorded` };

  const mailParsed = mailSchema.safeParse(fields.mail);
  if (!mailParsed.success) throw invalid("SES notification has no valid mail object");
  const mail = mailParsed.data;

  const topicTag = tagValue(mail, "topic", 64);
  const topic = topicTag && TOPIC_PATTERN.test(topicTag) ? topicTag : null;
  const plan = planFor(sesType, fields, mail, topic);
  if (typeof plan === "string") return { kind: "ignored", reason: plan };

  const occurredAt = epochMs(plan.timestamp) ?? epochMs(mail.timestamp);
  if (occurredAt === null) throw invalid("SES notification has no valid timestamp");

  const headers = mail.commonHeaders;
  const fromHeader = bareAddress(headers?.from?.[0]) ?? bareAddress(mail.source);
  const from = fromHeader && fromHeader.length <= 320 ? fromHeader : null;
  const shared: Partial<EventRecord> = {
    message_id: clip(headers?.messageId || mail.messageId, 998),
    from,
    from_domain: clip(domainOf(from), 255),
    subject: clip(headers?.subject, 2000),
    topic,
    campaign: tagValue(mail, "campaign", 256),
    template_id: tagValue(mail, "template_id", 256),
  };
  const emailId = tagValue(mail, "email_id", 256) ?? mail.messageId.slice(0, 256);

  const seen = new Set<string>();
  const items: SesParsedItem[] = [];
  for (const entry of plan.recipients) {
    const recipient = recipientAddress(entry.address);
    // An entry without an address cannot be attributed; the same address twice is one event (same id).
    if (!recipient || seen.has(recipient)) continue;
    seen.add(recipient);
    const event: EventRecord = {
      ...blankEvent({
        id: await eventId(ctx.snsMessageId, recipient),
        account_id: "",
        type: plan.type,
        occurred_at: occurredAt,
        email_id: emailId,
        recipient,
      }),
      ...shared,
      ...plan.fields,
      ...entry.fields,
    };
    const suppress = isSimulatorAddress(recipient) ? undefined : plan.suppress;
    const item: SesParsedItem = suppress ? { event, suppress: { ...suppress } } : { event };
    // Learned only for domains that are not a provider's own (those are known from the domain).
    const domain = domainOf(recipient);
    if (entry.server && domain && providerOfDomain(domain) === null) item.mailbox_provider = entry.server;
    items.push(item);
  }
  if (items.length === 0) return { kind: "ignored", reason: `SES ${sesType} record names no recipient` };

  const accountTag = tagValue(mail, "account_id", 64);
  return { kind: "events", accountTag, items };
}

/** Opens and clicks from SES's own tracking: ses/ingest.ts classifies them (proxy, scanner, person) first. */
export function needsBotClassification(event: EventRecord): boolean {
  return event.type === "email.opened" || event.type === "email.clicked";
}
