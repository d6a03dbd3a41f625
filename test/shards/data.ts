import { blankEvent, type EventRecord } from "../../src/events/record";
import type { QueueMessage, SuppressEffect } from "../../src/pipeline/messages";

/**
 * One account's mail, the same whatever the account id: registrations, every kind of event (ties on
 * occurred_at included, so the id decides the order), suppressions from bounces, complaints and
 * unsubscribes, and a manual one. Times are fixed once per test file, so every layout stores the
 * very same rows.
 */

const NOW = Math.floor(Date.now() / 60_000) * 60_000 - 3_600_000;
const EMAILS = 36;

export const emailIdOf = (i: number) => `email_layout_${String(i).padStart(4, "0")}`;

export function layoutData(account: string): {
  messages: QueueMessage[];
  events: EventRecord[];
  manualSuppressions: string[];
} {
  const messages: QueueMessage[] = [];
  const events: EventRecord[] = [];
  for (let i = 0; i < EMAILS; i++) {
    const email_id = emailIdOf(i);
    const recipient = `reader${i % 9}@example.com`;
    const sentAt = NOW - (EMAILS - i) * 4 * 3_600_000;
    const campaign = i % 3 === 0 ? "spring" : i % 3 === 1 ? "summer" : null;
    const topic = i % 4 === 0 ? "news" : null;
    messages.push({
      type: "register",
      account_id: account,
      registered_at: sentAt - 1000,
      message: {
        email_id,
        message_id: `<${email_id}@mail.example.com>`,
        from: "news@mail.example.com",
        from_domain: "mail.example.com",
        subject: `Issue ${i}`,
        topic,
        campaign,
        template_id: i % 2 === 0 ? "tpl-a" : "tpl-b",
        tags: i % 5 === 0 ? ["promo", "q2"] : ["weekly"],
      },
    });
    const add = (
      type: EventRecord["type"],
      at: number,
      extra: Partial<EventRecord> = {},
      suppress?: SuppressEffect,
    ) => {
      const e: EventRecord = {
        ...blankEvent({
          id: `evt_layout${String(i).padStart(4, "0")}${type.slice("email.".length)}`,
          account_id: account,
          type,
          occurred_at: at,
          email_id,
          recipient,
        }),
        ...extra,
      };
      events.push(e);
      messages.push(suppress ? { type: "event", event: e, suppress } : { type: "event", event: e });
    };
    add("email.sent", sentAt);
    if (i % 7 === 0) {
      add(
        "email.bounced",
        sentAt + 2_000,
        {
          bounce_type: "permanent",
          bounce_classification: "General",
          smtp_code: 550,
          smtp_response: "550 5.1.1 user unknown",
        },
        { reason: "hard_bounce", topic: null },
      );
      continue;
    }
    // Two emails share one delivery instant: their order is the id's.
    add("email.delivered", i % 6 === 1 ? NOW - 30 * 3_600_000 : sentAt + 2_000, {
      smtp_code: 250,
      smtp_response: "250 ok",
    });
    if (i % 2 === 0) {
      add("email.opened", sentAt + 60_000, {
        tracking: {
          user_agent: "Mozilla/5.0",
          ip_address: "203.0.113.7",
          url: null,
          link_name: null,
          geo: { country: "NL", region: null, city: null },
          bot: i % 4 === 0 ? { kind: "proxy", source: "google" } : null,
        },
      });
    }
    if (i % 3 === 1) {
      add("email.clicked", sentAt + 120_000, {
        tracking: {
          user_agent: "Mozilla/5.0",
          ip_address: "203.0.113.7",
          url: `https://example.com/offer/${i % 2}`,
          link_name: i % 2 ? "offer" : null,
          geo: null,
          bot: null,
        },
      });
    }
    if (i % 11 === 5)
      add(
        "email.complained",
        sentAt + 300_000,
        { complaint_type: "abuse" },
        { reason: "complaint", topic: null },
      );
    if (i % 8 === 4)
      add("email.unsubscribed", sentAt + 400_000, {}, { reason: "unsubscribe", topic: "news" });
  }
  return { messages, events, manualSuppressions: ["manual@example.com", "reader3@example.com"] };
}
