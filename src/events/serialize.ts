import type { EventType, Tracking } from "./record";

/** A row of `events` as D1 returns it (snake_case columns). */
export interface EventDbRow {
  account_id: string;
  occurred_at: number;
  id: string;
  type: string;
  email_id: string;
  message_id: string | null;
  from_address: string | null;
  from_domain: string | null;
  recipient: string;
  subject: string | null;
  topic: string | null;
  campaign: string | null;
  template_id: string | null;
  tags: string;
  smtp_code: number | null;
  smtp_response: string | null;
  bounce_type: string | null;
  bounce_classification: string | null;
  complaint_type: string | null;
  attempt: number | null;
  tracking: string | null;
}

/** The public event object of SPEC §8: every field present, `null` where it does not apply. */
export function toPublicEvent(row: EventDbRow) {
  return {
    id: row.id,
    object: "event" as const,
    type: row.type as EventType,
    occurred_at: new Date(row.occurred_at).toISOString(),
    email_id: row.email_id,
    message_id: row.message_id,
    from: row.from_address,
    from_domain: row.from_domain,
    recipient: row.recipient,
    subject: row.subject,
    topic: row.topic,
    campaign: row.campaign,
    template_id: row.template_id,
    tags: JSON.parse(row.tags) as string[],
    smtp_code: row.smtp_code,
    smtp_response: row.smtp_response,
    bounce_type: row.bounce_type,
    bounce_classification: row.bounce_classification,
    complaint_type: row.complaint_type,
    attempt: row.attempt,
    tracking: row.tracking === null ? null : (JSON.parse(row.tracking) as Tracking),
  };
}
export type PublicEvent = ReturnType<typeof toPublicEvent>;
