import type { EventType } from "../../events/record";
import type { PublicEvent } from "../../events/serialize";

/**
 * mailtrail events as SparkPost message events (SPEC §16). One table: each mailtrail type, its
 * SparkPost type, and the fields that type carries. Values follow SparkPost's conventions: numbers
 * that SparkPost sends as strings (error_code, num_retries, bounce_class) are strings here too.
 */

export const SPARKPOST_TYPES = {
  "email.sent": "injection",
  "email.delivered": "delivery",
  "email.delayed": "delay",
  "email.bounced": "bounce",
  "email.complained": "spam_complaint",
  "email.failed": "policy_rejection",
  "email.suppressed": "policy_rejection",
  "email.opened": "open",
  "email.clicked": "click",
  "email.unsubscribed": "list_unsubscribe",
} as const satisfies Record<EventType, string>;
export type SparkPostType = (typeof SPARKPOST_TYPES)[EventType];
export const MAPPED_SPARKPOST_TYPES = [...new Set(Object.values(SPARKPOST_TYPES))] as SparkPostType[];

/**
 * SparkPost's other message event types: valid in `events=`, never produced by mailtrail (so they
 * match nothing), as SparkPost's documentation lists them.
 */
export const UNMAPPED_SPARKPOST_TYPES = [
  "out_of_band",
  "generation_failure",
  "generation_rejection",
  "initial_open",
  "amp_open",
  "amp_initial_open",
  "amp_click",
  "link_unsubscribe",
  "sms_status",
] as const;
export const KNOWN_SPARKPOST_TYPES: readonly string[] = [
  ...MAPPED_SPARKPOST_TYPES,
  ...UNMAPPED_SPARKPOST_TYPES,
];

const COMMON = [
  "type",
  "event_id",
  "timestamp",
  "message_id",
  "transmission_id",
  "rcpt_to",
  "raw_rcpt_to",
  "recipient_domain",
  "friendly_from",
  "msg_from",
  "sending_domain",
  "subject",
  "campaign_id",
  "template_id",
  "rcpt_tags",
] as const;
const FAILURE = ["error_code", "reason", "raw_reason", "bounce_class"] as const;
const ENGAGEMENT = ["ip_address", "user_agent", "geo_ip"] as const;

/** The fields each SparkPost type carries; a field whose value mailtrail lacks is null. */
export const SPARKPOST_FIELDS = {
  injection: [...COMMON],
  delivery: [...COMMON, "num_retries"],
  delay: [...COMMON, ...FAILURE, "num_retries"],
  bounce: [...COMMON, ...FAILURE, "num_retries"],
  spam_complaint: [...COMMON, "fbtype"],
  policy_rejection: [...COMMON, ...FAILURE],
  open: [...COMMON, ...ENGAGEMENT],
  click: [...COMMON, ...ENGAGEMENT, "target_link_url", "target_link_name"],
  list_unsubscribe: [...COMMON],
} as const satisfies Record<SparkPostType, readonly string[]>;
export type SparkPostField = (typeof SPARKPOST_FIELDS)[SparkPostType][number];

const IPV4 = /\b(?:\d{1,3}\.){3}\d{1,3}\b/g;
/** SparkPost's `reason` is the response canonicalized: IP addresses become a.b.c.d. */
export const canonicalReason = (text: string | null) =>
  text === null ? null : text.replace(IPV4, "a.b.c.d");

const str = (n: number | null) => (n === null ? null : String(n));

/** Every field a mailtrail event can give SparkPost, before the type's field list picks some. */
function allFields(event: PublicEvent, bounceClass: number | null): Record<SparkPostField, unknown> {
  const tracking = event.tracking;
  const at = event.recipient.lastIndexOf("@");
  return {
    type: SPARKPOST_TYPES[event.type],
    event_id: event.id,
    timestamp: event.occurred_at,
    message_id: event.message_id,
    transmission_id: event.email_id,
    rcpt_to: event.recipient,
    raw_rcpt_to: event.recipient,
    recipient_domain: at >= 0 ? event.recipient.slice(at + 1) : null,
    friendly_from: event.from,
    msg_from: event.from,
    sending_domain: event.from_domain,
    subject: event.subject,
    campaign_id: event.campaign,
    template_id: event.template_id,
    rcpt_tags: event.tags,
    num_retries: str(event.attempt),
    error_code: str(event.smtp_code),
    reason: canonicalReason(event.smtp_response),
    raw_reason: event.smtp_response,
    bounce_class: str(bounceClass),
    fbtype: event.complaint_type,
    ip_address: tracking?.ip_address ?? null,
    user_agent: tracking?.user_agent ?? null,
    geo_ip: tracking?.geo ?? null,
    target_link_url: tracking?.url ?? null,
    target_link_name: tracking?.link_name ?? null,
  };
}

export function toSparkPostEvent(event: PublicEvent, bounceClass: number | null): Record<string, unknown> {
  const values = allFields(event, bounceClass);
  const out: Record<string, unknown> = {};
  for (const field of SPARKPOST_FIELDS[SPARKPOST_TYPES[event.type]]) out[field] = values[field];
  return out;
}

/**
 * Field descriptions for …/events/message/documentation: SparkPost's own wording where its
 * documentation gives one (the seed), without the final period as its documentation endpoint
 * shows them; the rest written in the same voice.
 */
export const FIELD_DESCRIPTIONS: Record<SparkPostField, string> = {
  type: "Type of event this record describes",
  event_id: "Unique event identifier",
  timestamp: "Event date and time, millisecond precision in UTC",
  message_id: "SparkPost-cluster-wide unique identifier for this message",
  transmission_id: "Transmission which originated this message",
  rcpt_to: "Lowercase version of recipient address used on this message's SMTP envelope",
  raw_rcpt_to: "Actual recipient address used on this message's SMTP envelope",
  recipient_domain: "Domain part of the recipient address used on this message's SMTP envelope",
  friendly_from: "Friendly sender or 'From' header in the original email",
  msg_from: "Sender address used on this message's SMTP envelope",
  sending_domain: "Domain part of the sender or 'From' header in the original email",
  subject: "Subject line from the email header",
  campaign_id: "Campaign of which this message was a part",
  template_id: "Slug of the template used to construct this message",
  rcpt_tags: "Tags applied to the message which generated this event",
  num_retries:
    "Number of failed attempts before this message was successfully delivered; when the first attempt succeeds, zero",
  error_code: "Error code by which the remote server described a failed delivery attempt",
  reason: "Canonicalized text of the response returned by the remote server due to a failed delivery attempt",
  raw_reason: "Unmodified, exact response returned by the remote server due to a failed delivery attempt",
  bounce_class: "Classification code for a given message (see Bounce Classification Codes)",
  fbtype: "Type of spam report entered against this message",
  ip_address:
    "IP address of the host to which SparkPost delivered this message; in engagement events, the IP address of the host where the HTTP request originated",
  user_agent: "Value of the browser's User-Agent header",
  geo_ip: "Geographic location based on the IP address, including country, region and city",
  target_link_url: "URL of the target link",
  target_link_name: "Name of the link for which a click event was generated",
};

/** The sample event: the values of SparkPost's own samples (the seed) as a mailtrail event. */
const SAMPLE_BASE: PublicEvent = {
  id: "92356927693813856",
  object: "event",
  type: "email.bounced",
  occurred_at: "2019-06-16T19:02:09.373Z",
  email_id: "65832150921904138",
  message_id: "000443ee14578172be22",
  from: "sender@example.com",
  from_domain: "example.com",
  recipient: "recipient@example.com",
  subject: "Summer deals are here!",
  topic: null,
  campaign: "Example Campaign Name",
  template_id: "templ-1234",
  tags: ["male", "US"],
  smtp_code: null,
  smtp_response: null,
  bounce_type: null,
  bounce_classification: null,
  complaint_type: null,
  attempt: null,
  tracking: null,
};
const SAMPLE_FAILURE = {
  smtp_code: 554,
  smtp_response: "MAIL REFUSED - IP (17.99.99.99) is in black list",
  attempt: 2,
};
const SAMPLE_TRACKING = {
  user_agent:
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_3) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/41.0.2272.118 Safari/537.36",
  ip_address: "18.236.253.72",
  url: null,
  link_name: null,
  geo: { country: "US", region: "MD", city: "Columbia" },
  bot: null,
};

export const SAMPLES: Record<SparkPostType, { event: PublicEvent; bounceClass: number | null }> = {
  injection: { event: { ...SAMPLE_BASE, type: "email.sent" }, bounceClass: null },
  delivery: { event: { ...SAMPLE_BASE, type: "email.delivered", attempt: 2 }, bounceClass: null },
  delay: { event: { ...SAMPLE_BASE, ...SAMPLE_FAILURE, type: "email.delayed" }, bounceClass: 70 },
  bounce: {
    event: { ...SAMPLE_BASE, ...SAMPLE_FAILURE, type: "email.bounced", bounce_type: "undetermined" },
    bounceClass: 1,
  },
  spam_complaint: {
    event: { ...SAMPLE_BASE, type: "email.complained", complaint_type: "abuse" },
    bounceClass: null,
  },
  policy_rejection: {
    event: { ...SAMPLE_BASE, ...SAMPLE_FAILURE, type: "email.suppressed" },
    bounceClass: 25,
  },
  open: { event: { ...SAMPLE_BASE, type: "email.opened", tracking: SAMPLE_TRACKING }, bounceClass: null },
  click: {
    event: {
      ...SAMPLE_BASE,
      type: "email.clicked",
      tracking: { ...SAMPLE_TRACKING, url: "http://example.com", link_name: "Example Link Name" },
    },
    bounceClass: null,
  },
  list_unsubscribe: { event: { ...SAMPLE_BASE, type: "email.unsubscribed" }, bounceClass: null },
};

export const sampleOf = (type: SparkPostType) => {
  const { event, bounceClass } = SAMPLES[type];
  return toSparkPostEvent(event, bounceClass);
};

/** …/documentation: per event type, each field's description and the sample's value. */
export function documentationOf(
  type: SparkPostType,
): Record<string, { description: string; sampleValue: unknown }> {
  const sample = sampleOf(type);
  const out: Record<string, { description: string; sampleValue: unknown }> = {};
  for (const field of SPARKPOST_FIELDS[type]) {
    out[field] = { description: FIELD_DESCRIPTIONS[field], sampleValue: sample[field] };
  }
  return out;
}
