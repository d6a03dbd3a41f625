import type { EventType } from "../../events/record";
import { sqlLiteral } from "../../store";

/**
 * SparkPost's bounce classification codes (support.sparkpost.com "Bounce Classification Codes"),
 * and the rules that derive one from what SES told mailtrail: the event type, bounce_type,
 * bounce_classification (SES bounceSubType) and the enhanced status code in smtp_response.
 *
 * The rules compile to one SQL CASE expression, so the `bounce_class` column of a result and the
 * `bounce_classes` filter (and total_count) are the same computation inside D1.
 */

export const BOUNCE_CLASSES = {
  1: { name: "Undetermined", category: "Undetermined" },
  10: { name: "Invalid Recipient", category: "Hard" },
  20: { name: "Soft Bounce", category: "Soft" },
  21: { name: "DNS Failure", category: "Soft" },
  22: { name: "Mailbox Full", category: "Soft" },
  23: { name: "Too Large", category: "Soft" },
  24: { name: "Timeout", category: "Soft" },
  25: { name: "Admin Failure", category: "Admin" },
  26: { name: "Smart Send Suppression", category: "Admin" },
  30: { name: "Generic Bounce: No RCPT", category: "Hard" },
  40: { name: "Generic Bounce", category: "Soft" },
  50: { name: "Mail Block", category: "Block" },
  51: { name: "Spam Block", category: "Block" },
  52: { name: "Spam Content", category: "Block" },
  53: { name: "Prohibited Attachment", category: "Block" },
  54: { name: "Relaying Denied", category: "Block" },
  60: { name: "Auto-Reply", category: "Soft" },
  70: { name: "Transient Failure", category: "Soft" },
  80: { name: "Subscribe", category: "Admin" },
  90: { name: "Unsubscribe", category: "Hard" },
  100: { name: "Challenge-Response", category: "Soft" },
} as const;
export type BounceClass = keyof typeof BOUNCE_CLASSES;

interface Rule {
  class: BounceClass;
  types: EventType[];
  bounceType?: "permanent" | "transient" | "undetermined";
  /** SES bounceSubType values (bounce_classification). */
  subtypes?: string[];
  /** Enhanced status codes without their class digit (`1.1` matches 4.1.1 and 5.1.1), or prefixes ending in `.`. */
  status?: string[];
  /** Not on a permanent bounce: SES called it hard, so a soft class would contradict the suppression. */
  notPermanent?: true;
  why: string;
}

const BOUNCED: EventType[] = ["email.bounced"];
const FAILED: EventType[] = ["email.bounced", "email.delayed"];

/** First matching rule wins. */
export const BOUNCE_CLASS_RULES: Rule[] = [
  {
    class: 25,
    types: ["email.suppressed", "email.failed"],
    why: "dropped by policy before delivery (suppression list, SES reject)",
  },
  { class: 1, types: BOUNCED, bounceType: "undetermined", why: "SES could not determine the bounce" },
  {
    class: 25,
    types: BOUNCED,
    bounceType: "permanent",
    subtypes: ["Suppressed", "OnAccountSuppressionList"],
    why: "SES's suppression list",
  },
  {
    class: 90,
    types: BOUNCED,
    bounceType: "permanent",
    subtypes: ["UnsubscribedRecipient"],
    why: "the recipient unsubscribed",
  },
  {
    class: 10,
    types: BOUNCED,
    bounceType: "permanent",
    subtypes: ["NoEmail"],
    why: "the address does not exist",
  },
  { class: 22, types: BOUNCED, subtypes: ["MailboxFull"], why: "mailbox full" },
  { class: 23, types: BOUNCED, subtypes: ["MessageTooLarge"], why: "message too large" },
  { class: 52, types: BOUNCED, subtypes: ["ContentRejected"], why: "content rejected" },
  { class: 53, types: BOUNCED, subtypes: ["AttachmentRejected"], why: "attachment rejected" },
  { class: 22, types: FAILED, status: ["2.2"], why: "x.2.2 mailbox full" },
  { class: 23, types: FAILED, status: ["3.4"], why: "x.3.4 message too big" },
  {
    class: 21,
    types: FAILED,
    status: ["1.2", "4.3", "4.4"],
    notPermanent: true,
    why: "bad destination domain, DNS or routing failure",
  },
  {
    class: 24,
    types: FAILED,
    status: ["4.1", "4.2", "4.7"],
    notPermanent: true,
    why: "no answer, bad connection, delivery time expired",
  },
  {
    class: 54,
    types: FAILED,
    status: ["7.1"],
    bounceType: "transient",
    why: "x.7.1 on a soft failure: relaying or delivery not authorised",
  },
  { class: 50, types: FAILED, status: ["7."], why: "x.7.x security or policy block" },
  {
    class: 10,
    types: BOUNCED,
    bounceType: "permanent",
    why: "any other hard bounce (5.1.x unknown user, 5.2.1 disabled…)",
  },
  { class: 20, types: BOUNCED, bounceType: "transient", why: "any other soft bounce" },
  { class: 70, types: ["email.delayed"], why: "delivery temporarily delayed" },
  { class: 40, types: BOUNCED, why: "a bounce without a type" },
];

const list = (values: readonly string[]) => values.map(sqlLiteral).join(", ");

/**
 * smtp_response with the punctuation that may precede an enhanced status code (`550-5.1.1`,
 * `#5.1.0`, `(5.7.1)`, `[5.4.1]`) turned into spaces, and a leading space: ` 4.2.2` then finds a
 * status code at a word start.
 */
const STATUS_TEXT =
  "(' ' || replace(replace(replace(replace(COALESCE(smtp_response, ''), '-', ' '), '#', ' '), '(', ' '), '[', ' '))";

function statusSql(codes: string[]): string {
  return codes
    .flatMap((code) => ["4", "5"].map((cls) => `instr(${STATUS_TEXT}, ${sqlLiteral(` ${cls}.${code}`)}) > 0`))
    .join(" OR ");
}

function ruleSql(rule: Rule): string {
  const parts = [`type IN (${list(rule.types)})`];
  if (rule.bounceType) parts.push(`bounce_type = ${sqlLiteral(rule.bounceType)}`);
  if (rule.subtypes) parts.push(`bounce_classification IN (${list(rule.subtypes)})`);
  if (rule.notPermanent) parts.push("COALESCE(bounce_type, '') <> 'permanent'");
  if (rule.status) parts.push(`(${statusSql(rule.status)})`);
  return parts.join(" AND ");
}

/** The SQL expression of an events row's SparkPost bounce_class (an integer, or NULL where none applies). */
export const BOUNCE_CLASS_SQL = `(CASE ${BOUNCE_CLASS_RULES.map((r) => `WHEN ${ruleSql(r)} THEN ${r.class}`).join(" ")} ELSE NULL END)`;

export const isBounceClass = (n: number): n is BounceClass => Object.hasOwn(BOUNCE_CLASSES, n);
