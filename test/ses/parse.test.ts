import { describe, expect, it } from "vitest";
import { blankEvent, type EventRecord, eventRecordSchema } from "../../src/events/record";
import { ApiError } from "../../src/lib/errors";
import { eventId } from "../../src/lib/ids";
import { queueMessageSchema, type SuppressEffect } from "../../src/pipeline/messages";
import {
  needsBotClassification,
  parseSesMessage,
  type SesParseResult,
  smtpReplyCode,
  smtpResponseText,
} from "../../src/ses/parse";
import { parseSnsEnvelope, verifySnsMessage } from "../../src/ses/sns";

// Every SES sample of the shared fixtures, by "folder/file".
const sesFiles = Object.fromEntries(
  Object.entries(
    import.meta.glob<string>("../../../shared/fixtures/ses/*/*.json", {
      query: "?raw",
      import: "default",
      eager: true,
    }),
  ).map(([path, text]) => [path.split("/").slice(-2).join("/"), text]),
);
const signedFiles = import.meta.glob<string>("../../../shared/fixtures/sns/signed/django-ses-*", {
  query: "?raw",
  import: "default",
  eager: true,
});

type Json = any;

const SNS_ID = "0b4a4f8e-5b2e-5d6f-9c1a-3f7e2d9a8b10";
const at = (iso: string) => Date.parse(iso);
const fixture = (name: string) => {
  const text = sesFiles[name];
  if (!text) throw new Error(`missing fixture ${name}`);
  return text;
};

const EXAMPLE_ID = "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000";
const EXAMPLE = {
  email_id: EXAMPLE_ID,
  message_id: EXAMPLE_ID,
  from: "sender@example.com",
  from_domain: "example.com",
  subject: "Message sent from Amazon SES",
};
/** The identity-notification samples: From "John Doe <john@example.com>", Message-ID custom-message-ID. */
const JOHN = {
  message_id: "custom-message-ID",
  from: "john@example.com",
  from_domain: "example.com",
  subject: "Hello",
};

interface Expected {
  recipient: string;
  fields: Partial<EventRecord>;
  suppress?: SuppressEffect;
}

interface Case {
  type: EventRecord["type"];
  occurredAt: string;
  shared: Partial<EventRecord>;
  events: Expected[];
}

const HARD_BOUNCE: SuppressEffect = { reason: "hard_bounce", topic: null };
const COMPLAINT: SuppressEffect = { reason: "complaint", topic: null };

const CASES: Record<string, Case> = {
  "event-publishing/bounce-permanent.json": {
    type: "email.bounced",
    occurredAt: "2017-08-05T00:41:02.669Z",
    shared: { ...EXAMPLE, bounce_type: "permanent", bounce_classification: "General" },
    events: [
      {
        recipient: "recipient@example.com",
        fields: { smtp_code: 550, smtp_response: "550 5.1.1 user unknown" },
        suppress: HARD_BOUNCE,
      },
    ],
  },
  "event-publishing/bounce-transient.json": {
    type: "email.bounced",
    occurredAt: "2019-05-17T16:40:06.766Z",
    shared: {
      email_id: "msgid-000000",
      message_id: "messageid-000000",
      from: "archivehunter@deploydomain.co.uk",
      from_domain: "deploydomain.co.uk",
      subject: "Test one",
      bounce_type: "transient",
      bounce_classification: "General",
    },
    events: [
      {
        recipient: "user@company.com",
        fields: {
          smtp_code: 550,
          smtp_response:
            "550-5.7.1 Unauthenticated email from deploydomain.co.uk is not accepted due to\n" +
            "550-5.7.1 domain's DMARC policy. Please contact the administrator of\n" +
            "550-5.7.1 deploydomain.co.uk domain if this was a legitimate mail. Please visit\n" +
            "550-5.7.1  https://support.google.com/mail/answer/2451690 to learn about the\n" +
            "550 5.7.1 DMARC initiative.",
        },
      },
    ],
  },
  "event-publishing/click.json": {
    type: "email.clicked",
    occurredAt: "2017-08-09T23:51:25.570Z",
    shared: EXAMPLE,
    events: [
      {
        recipient: "recipient@example.com",
        fields: {
          tracking: {
            user_agent:
              "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/60.0.3112.90 Safari/537.36",
            ip_address: "192.0.2.1",
            url: "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html",
            link_name: null,
            geo: null,
            bot: null,
          },
        },
      },
    ],
  },
  "event-publishing/complaint-real-simulator.json": {
    type: "email.complained",
    occurredAt: "2022-03-28T23:59:33.564Z",
    shared: {
      email_id: "0100017fd2f875c4-c2929163-2767-49b1-8513-1a29e428e134-000000",
      message_id: "0100017fd2f875c4-c2929163-2767-49b1-8513-1a29e428e134-000000",
      from: "jesus.islasf@alumno.buap.mx",
      from_domain: "alumno.buap.mx",
      subject: "Complaint Notification",
      complaint_type: "abuse",
    },
    // The mailbox simulator's address: recorded, never suppressed.
    events: [{ recipient: "complaint@simulator.amazonses.com", fields: {} }],
  },
  "event-publishing/complaint.json": {
    type: "email.complained",
    occurredAt: "2017-08-05T00:41:02.669Z",
    shared: { ...EXAMPLE, complaint_type: "abuse" },
    events: [{ recipient: "recipient@example.com", fields: {}, suppress: COMPLAINT }],
  },
  "event-publishing/delivery-delay.json": {
    type: "email.delayed",
    occurredAt: "2020-06-16T00:25:40.095Z",
    // No commonHeaders: from comes from mail.source, message_id is the SES messageId, no subject.
    shared: { ...EXAMPLE, subject: null },
    events: [
      {
        recipient: "recipient@example.com",
        fields: {
          smtp_code: 421,
          smtp_response: "421 4.4.1 Unable to connect to remote host",
          attempt: null,
        },
      },
    ],
  },
  "event-publishing/delivery.json": {
    type: "email.delivered",
    occurredAt: "2016-10-19T23:21:04.133Z",
    shared: EXAMPLE,
    events: [
      {
        recipient: "recipient@example.com",
        fields: { smtp_code: 250, smtp_response: "250 2.6.0 Message received" },
      },
    ],
  },
  "event-publishing/open.json": {
    type: "email.opened",
    occurredAt: "2017-08-09T22:00:19.652Z",
    shared: EXAMPLE,
    events: [
      {
        recipient: "recipient@example.com",
        fields: {
          tracking: {
            user_agent:
              "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_3 like Mac OS X) AppleWebKit/603.3.8 (KHTML, like Gecko) Mobile/14G60",
            ip_address: "192.0.2.1",
            url: null,
            link_name: null,
            geo: null,
            bot: null,
          },
        },
      },
    ],
  },
  "event-publishing/reject.json": {
    type: "email.failed",
    occurredAt: "2016-10-14T17:38:15.211Z",
    shared: { ...EXAMPLE, smtp_response: "Bad content" },
    // The sample's destination really is the sender's address.
    events: [{ recipient: "sender@example.com", fields: {} }],
  },
  "event-publishing/rendering-failure.json": {
    type: "email.failed",
    occurredAt: "2018-01-22T18:43:06.197Z",
    shared: {
      ...EXAMPLE,
      subject: null,
      smtp_response: "Attribute 'attributeName' is not present in the rendering data.",
    },
    events: [{ recipient: "recipient@example.com", fields: {} }],
  },
  "event-publishing/send.json": {
    type: "email.sent",
    occurredAt: "2016-10-14T05:02:16.645Z",
    shared: EXAMPLE,
    events: [{ recipient: "recipient@example.com", fields: {} }],
  },
  "event-publishing/subscription.json": {
    type: "email.unsubscribed",
    occurredAt: "2022-01-12T01:00:17.910Z",
    shared: {
      ...EXAMPLE,
      email_id: "EXAMPLEe4bccb684-777bc8de-afa7-4970-92b0-f515137b1497-000000",
      message_id: "EXAMPLEe4bccb684-777bc8de-afa7-4970-92b0-f515137b1497-000000",
    },
    events: [
      { recipient: "recipient@example.com", fields: {}, suppress: { reason: "unsubscribe", topic: null } },
    ],
  },
  "notifications/bounce-real-simulator.json": {
    type: "email.bounced",
    occurredAt: "2022-04-01T21:24:49.000Z",
    shared: {
      // No Message-ID in commonHeaders: the SES messageId stands in.
      email_id: "0100017fe7043e8e-fc9c357d-a9a4-49bc-a4b4-fa984009d568-000000",
      message_id: "0100017fe7043e8e-fc9c357d-a9a4-49bc-a4b4-fa984009d568-000000",
      from: "jesus.islasf@alumno.buap.mx",
      from_domain: "alumno.buap.mx",
      subject: "Subject Test",
      bounce_type: "permanent",
      bounce_classification: "General",
    },
    events: [
      {
        recipient: "bounce@simulator.amazonses.com",
        fields: { smtp_code: 550, smtp_response: "550 5.1.1 user unknown" },
      },
    ],
  },
  "notifications/bounce-with-dsn.json": {
    type: "email.bounced",
    occurredAt: "2016-01-27T14:59:38.237Z",
    shared: {
      ...JOHN,
      email_id: "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000",
      bounce_type: "permanent",
      bounce_classification: "General",
    },
    // Only the bounced recipient, not every destination.
    events: [
      {
        recipient: "jane@example.com",
        fields: { smtp_code: 550, smtp_response: "550 5.1.1 <jane@example.com>... User" },
        suppress: HARD_BOUNCE,
      },
    ],
  },
  "notifications/bounce-without-dsn.json": {
    type: "email.bounced",
    occurredAt: "2016-01-27T14:59:38.237Z",
    shared: {
      ...JOHN,
      email_id: "00000137860315fd-34208509-5b74-41f3-95c5-22c1edc3c924-000000",
      bounce_type: "permanent",
      bounce_classification: "General",
    },
    events: [
      { recipient: "jane@example.com", fields: {}, suppress: HARD_BOUNCE },
      { recipient: "richard@example.com", fields: {}, suppress: HARD_BOUNCE },
    ],
  },
  "notifications/complaint-with-feedback-report.json": {
    type: "email.complained",
    occurredAt: "2016-01-27T14:59:38.237Z",
    shared: {
      ...JOHN,
      email_id: "000001378603177f-7a5433e7-8edb-42ae-af10-f0181f34d6ee-000000",
      complaint_type: "abuse",
    },
    events: [{ recipient: "richard@example.com", fields: {}, suppress: COMPLAINT }],
  },
  "notifications/complaint-without-feedback-report.json": {
    type: "email.complained",
    occurredAt: "2016-01-27T14:59:38.237Z",
    shared: { ...JOHN, email_id: "0000013786031775-163e3910-53eb-4c8e-a04a-f29debf88a84-000000" },
    events: [{ recipient: "richard@example.com", fields: {}, suppress: COMPLAINT }],
  },
  "notifications/delivery.json": {
    type: "email.delivered",
    occurredAt: "2016-01-27T14:59:38.237Z",
    shared: { ...JOHN, email_id: "0000014644fe5ef6-9a483358-9170-4cb4-a269-f5dcdf415321-000000" },
    events: [
      {
        recipient: "jane@example.com",
        fields: { smtp_code: 250, smtp_response: "250 ok:  Message 64111812 accepted" },
      },
    ],
  },
};

async function parsedEvents(message: string, snsMessageId = SNS_ID) {
  const result = await parseSesMessage(message, { snsMessageId });
  if (result.kind !== "events") throw new Error(`expected events, got ignored: ${result.reason}`);
  return result;
}

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error("expected a rejection");
}

/** A fixture with its JSON changed by `edit`. */
function edited(name: string, edit: (record: Record<string, Json>) => void): string {
  const record = JSON.parse(fixture(name));
  edit(record);
  return JSON.stringify(record);
}

/** Every event must be writable once the route sets account_id, and every suppress effect queueable. */
function expectQueueable(result: Extract<SesParseResult, { kind: "events" }>) {
  for (const item of result.items) {
    const msg = { type: "event", event: { ...item.event, account_id: "acct_1" }, suppress: item.suppress };
    expect(queueMessageSchema.safeParse(msg).success).toBe(true);
    // account_id is "" until the route fills it in.
    expect(eventRecordSchema.safeParse(item.event).success).toBe(false);
  }
}

describe("every SES sample", () => {
  it("has a case for every fixture file, and a fixture for every case", () => {
    expect(Object.keys(sesFiles).sort()).toEqual(Object.keys(CASES).sort());
    expect(Object.keys(CASES)).toHaveLength(18);
  });

  it.each(Object.entries(CASES))("%s", async (name, c) => {
    const result = await parsedEvents(fixture(name));
    expect(result.accountTag).toBeNull();
    expect(result.items).toHaveLength(c.events.length);
    for (const [i, want] of c.events.entries()) {
      const item = result.items[i];
      const expected: EventRecord = {
        ...blankEvent({
          id: await eventId(SNS_ID, want.recipient),
          account_id: "",
          type: c.type,
          occurred_at: at(c.occurredAt),
          email_id: "",
          recipient: want.recipient,
        }),
        ...c.shared,
        ...want.fields,
      };
      // Every field, so that nothing unexpected slips in.
      expect(item?.event).toStrictEqual(expected);
      if (want.suppress) expect(item?.suppress).toStrictEqual(want.suppress);
      else expect(item).not.toHaveProperty("suppress");
    }
    expectQueueable(result);
  });
});

describe("the AWS-signed SES messages", () => {
  it.each([
    ["django-ses-complaint-event-sigv1", "event-publishing/complaint-real-simulator.json"],
    ["django-ses-bounce-notification-sigv1", "notifications/bounce-real-simulator.json"],
  ])("%s verifies and parses like %s", async (signedName, sample) => {
    const body = signedFiles[`../../../shared/fixtures/sns/signed/${signedName}.json`] ?? "";
    const pem = signedFiles[`../../../shared/fixtures/sns/signed/${signedName}.pem`] ?? "";
    const envelope = parseSnsEnvelope(body);
    await verifySnsMessage(envelope, { hostPattern: null, fetchCert: async () => pem });
    const fromEnvelope = await parsedEvents(envelope.Message, envelope.MessageId);
    const fromSample = await parsedEvents(fixture(sample), envelope.MessageId);
    expect(fromEnvelope).toStrictEqual(fromSample);
    expect(fromEnvelope.items[0]?.event.id).toBe(
      await eventId(envelope.MessageId, fromSample.items[0]?.event.recipient ?? ""),
    );
    expect(fromEnvelope.items[0]).not.toHaveProperty("suppress");
  });
});

describe("dimensions from message tags and headers", () => {
  const tagged = (tags: Record<string, string[]>, name = "event-publishing/send.json") =>
    edited(name, (r) => {
      r.mail.tags = { ...r.mail.tags, ...tags };
    });

  it("reads email_id, account_id, topic, campaign and template_id tags", async () => {
    const result = await parsedEvents(
      tagged({
        email_id: ["email_019e1972-e87e-7000-bf74-ba09e0ed0d62"],
        account_id: ["acct_42"],
        topic: ["product.news"],
        campaign: ["Spring"],
        template_id: ["welcome-v2"],
      }),
    );
    expect(result.accountTag).toBe("acct_42");
    expect(result.items[0]?.event).toMatchObject({
      email_id: "email_019e1972-e87e-7000-bf74-ba09e0ed0d62",
      message_id: EXAMPLE_ID,
      topic: "product.news",
      campaign: "Spring",
      template_id: "welcome-v2",
      tags: [],
      account_id: "",
    });
  });

  it.each([["Product News"], ["UPPER"], ["a".repeat(65)], [""]])(
    "drops a topic tag %j that is not a topic",
    async (topic) => {
      const result = await parsedEvents(tagged({ topic: [topic] }));
      expect(result.items[0]?.event.topic).toBeNull();
    },
  );

  it("falls back to the SES messageId for an unusable email_id tag", async () => {
    for (const value of [[], [""], ["x".repeat(257)]]) {
      const result = await parsedEvents(tagged({ email_id: value }));
      expect(result.items[0]?.event.email_id).toBe(EXAMPLE_ID);
    }
  });

  it("answers a null accountTag for an empty or too long account_id tag", async () => {
    expect((await parsedEvents(tagged({ account_id: [""] }))).accountTag).toBeNull();
    expect((await parsedEvents(tagged({ account_id: ["a".repeat(65)] }))).accountTag).toBeNull();
  });

  it("takes the bare address of the From header, else of mail.source", async () => {
    const withName = edited("event-publishing/send.json", (r) => {
      r.mail.commonHeaders.from = ['"News Desk" <News@Mail.Example.COM>'];
    });
    expect((await parsedEvents(withName)).items[0]?.event).toMatchObject({
      from: "News@Mail.Example.COM",
      from_domain: "mail.example.com",
    });
    const noHeaders = edited("event-publishing/send.json", (r) => {
      delete r.mail.commonHeaders;
      r.mail.source = "Bulk <bulk@news.example.org>";
    });
    expect((await parsedEvents(noHeaders)).items[0]?.event).toMatchObject({
      from: "bulk@news.example.org",
      from_domain: "news.example.org",
      subject: null,
      message_id: EXAMPLE_ID,
    });
    const nothing = edited("event-publishing/send.json", (r) => {
      delete r.mail.commonHeaders;
      delete r.mail.source;
    });
    expect((await parsedEvents(nothing)).items[0]?.event).toMatchObject({ from: null, from_domain: null });
  });

  it("clips an overlong subject to what the event record allows", async () => {
    const long = edited("event-publishing/send.json", (r) => {
      r.mail.commonHeaders.subject = "s".repeat(5000);
    });
    const result = await parsedEvents(long);
    expect(result.items[0]?.event.subject).toHaveLength(2000);
    expectQueueable(result);
  });
});

describe("recipients", () => {
  it("records one event per destination with distinct deterministic ids", async () => {
    const message = edited("event-publishing/send.json", (r) => {
      r.mail.destination = ["a@example.com", '"Bea" <B@Example.com>', "c@example.com"];
    });
    const result = await parsedEvents(message);
    expect(result.items.map((i) => i.event.recipient)).toEqual([
      "a@example.com",
      "b@example.com",
      "c@example.com",
    ]);
    const ids = result.items.map((i) => i.event.id);
    expect(new Set(ids).size).toBe(3);
    expect(ids[1]).toBe(await eventId(SNS_ID, "b@example.com"));
  });

  it("names the same events on redelivery and new ones for another SNS message", async () => {
    const message = fixture("notifications/bounce-without-dsn.json");
    const first = await parsedEvents(message, "sns-1");
    const again = await parsedEvents(message, "sns-1");
    const other = await parsedEvents(message, "sns-2");
    expect(again.items.map((i) => i.event.id)).toEqual(first.items.map((i) => i.event.id));
    expect(other.items[0]?.event.id).not.toBe(first.items[0]?.event.id);
  });

  it("records the same address once, whatever its case", async () => {
    const message = edited("event-publishing/send.json", (r) => {
      r.mail.destination = ["dup@example.com", "DUP@example.com", "Dup <dup@EXAMPLE.com>"];
    });
    const result = await parsedEvents(message);
    expect(result.items).toHaveLength(1);
    expect(result.items[0]?.event.recipient).toBe("dup@example.com");
  });

  it("lowercases a bounced recipient and skips one without an address", async () => {
    const message = edited("notifications/bounce-without-dsn.json", (r) => {
      r.bounce.bouncedRecipients = [
        { emailAddress: "Jane.Doe@Example.COM" },
        { emailAddress: "not an address" },
      ];
    });
    const result = await parsedEvents(message);
    expect(result.items.map((i) => i.event.recipient)).toEqual(["jane.doe@example.com"]);
  });

  it("answers ignored when no recipient is left", async () => {
    const message = edited("notifications/complaint-without-feedback-report.json", (r) => {
      r.complaint.complainedRecipients = [];
    });
    const result = await parseSesMessage(message, { snsMessageId: SNS_ID });
    expect(result).toMatchObject({ kind: "ignored" });
  });

  it("suppresses real recipients but not the mailbox simulator's in one bounce", async () => {
    const message = edited("notifications/bounce-without-dsn.json", (r) => {
      r.bounce.bouncedRecipients = [
        { emailAddress: "bounce@simulator.amazonses.com" },
        { emailAddress: "real@example.com" },
      ];
    });
    const result = await parsedEvents(message);
    expect(result.items[0]).not.toHaveProperty("suppress");
    expect(result.items[1]?.suppress).toEqual(HARD_BOUNCE);
  });
});

describe("bounces", () => {
  const bounce = (edit: (b: Record<string, Json>) => void) =>
    edited("event-publishing/bounce-permanent.json", (r) => edit(r.bounce));

  it.each([
    ["Transient", "transient"],
    ["Undetermined", "undetermined"],
    ["Permanent", "permanent"],
    ["SomethingNew", "undetermined"],
  ])("maps bounceType %s to %s and suppresses only permanent ones", async (bounceType, expected) => {
    const result = await parsedEvents(bounce((b) => (b.bounceType = bounceType)));
    expect(result.items[0]?.event.bounce_type).toBe(expected);
    if (expected === "permanent") expect(result.items[0]?.suppress).toEqual(HARD_BOUNCE);
    else expect(result.items[0]).not.toHaveProperty("suppress");
  });

  it("keeps a bounceSubType as the classification, null when absent", async () => {
    const sub = await parsedEvents(bounce((b) => (b.bounceSubType = "MailboxFull")));
    expect(sub.items[0]?.event.bounce_classification).toBe("MailboxFull");
    const none = await parsedEvents(bounce((b) => delete b.bounceSubType));
    expect(none.items[0]?.event.bounce_classification).toBeNull();
  });

  it("uses the enhanced status as the response when there is no diagnosticCode, with no code", async () => {
    const result = await parsedEvents(
      bounce((b) => {
        b.bouncedRecipients = [{ emailAddress: "recipient@example.com", status: "5.1.1", action: "failed" }];
      }),
    );
    expect(result.items[0]?.event).toMatchObject({ smtp_code: null, smtp_response: "5.1.1" });
  });

  it("falls back to mail.timestamp when the bounce timestamp is missing or invalid", async () => {
    for (const ts of [undefined, "yesterday"]) {
      const result = await parsedEvents(bounce((b) => (b.timestamp = ts)));
      expect(result.items[0]?.event.occurred_at).toBe(at("2017-08-05T00:40:02.012Z"));
    }
  });
});

describe("opens and clicks", () => {
  it("takes link_name from a link_name link tag", async () => {
    const message = edited("event-publishing/click.json", (r) => {
      r.click.linkTags = { link_name: ["header-cta"], other: ["x"] };
    });
    const result = await parsedEvents(message);
    expect(result.items[0]?.event.tracking?.link_name).toBe("header-cta");
  });

  it("records null user agent and IP when SES gives none", async () => {
    const message = edited("event-publishing/open.json", (r) => {
      delete r.open.userAgent;
      delete r.open.ipAddress;
    });
    const result = await parsedEvents(message);
    expect(result.items[0]?.event.tracking).toEqual({
      user_agent: null,
      ip_address: null,
      url: null,
      link_name: null,
      geo: null,
      bot: null,
    });
  });

  it("flags opens and clicks, and only them, for bot classification", async () => {
    for (const [name, expected] of [
      ["event-publishing/open.json", true],
      ["event-publishing/click.json", true],
      ["event-publishing/send.json", false],
      ["event-publishing/delivery.json", false],
      ["event-publishing/bounce-permanent.json", false],
    ] as const) {
      const result = await parsedEvents(fixture(name));
      expect(needsBotClassification(result.items[0]?.event as EventRecord)).toBe(expected);
    }
  });
});

describe("subscription", () => {
  const subscription = (edit: (s: Record<string, Json>) => void, topic?: string) =>
    edited("event-publishing/subscription.json", (r) => {
      edit(r.subscription);
      if (topic) r.mail.tags.topic = [topic];
    });

  it("suppresses every topic when the recipient unsubscribed from all, even for a message with a topic", async () => {
    const result = await parsedEvents(subscription(() => {}, "product.news"));
    expect(result.items[0]?.event.topic).toBe("product.news");
    expect(result.items[0]?.suppress).toEqual({ reason: "unsubscribe", topic: null });
  });

  it("suppresses the message's topic when the recipient opted out of a topic", async () => {
    const edit = (s: Record<string, Json>) => {
      s.newTopicPreferences = {
        unsubscribeAll: false,
        topicSubscriptionStatus: [{ topicName: "Weekly", subscriptionStatus: "OptOut" }],
      };
      s.oldTopicPreferences = {
        unsubscribeAll: false,
        topicSubscriptionStatus: [{ topicName: "Weekly", subscriptionStatus: "OptIn" }],
      };
    };
    const withTopic = await parsedEvents(subscription(edit, "weekly"));
    expect(withTopic.items[0]?.event.type).toBe("email.unsubscribed");
    expect(withTopic.items[0]?.suppress).toEqual({ reason: "unsubscribe", topic: "weekly" });
    const withoutTopic = await parsedEvents(subscription(edit));
    expect(withoutTopic.items[0]?.suppress).toEqual({
      reason: "unsubscribe",
      topic: null,
      inherit_topic: true,
    });
  });

  it("takes a Subscription record without preferences as an unsubscribe", async () => {
    const result = await parsedEvents(subscription((s) => delete s.newTopicPreferences, "weekly"));
    expect(result.items[0]?.suppress).toEqual({ reason: "unsubscribe", topic: "weekly" });
  });

  it("ignores a Subscription record that only opts in", async () => {
    const message = subscription((s) => {
      s.newTopicPreferences = {
        unsubscribeAll: false,
        topicSubscriptionStatus: [
          { topicName: "Weekly", subscriptionStatus: "OptIn" },
          { topicName: "Daily", subscriptionStatus: "OptOut" },
        ],
      };
      s.oldTopicPreferences = {
        unsubscribeAll: false,
        topicSubscriptionStatus: [
          { topicName: "Weekly", subscriptionStatus: "OptOut" },
          { topicName: "Daily", subscriptionStatus: "OptOut" },
        ],
      };
    });
    const result = await parseSesMessage(message, { snsMessageId: SNS_ID });
    expect(result).toMatchObject({ kind: "ignored" });
  });

  it("never suppresses the mailbox simulator", async () => {
    const message = edited("event-publishing/subscription.json", (r) => {
      r.mail.destination = ["success@simulator.amazonses.com"];
    });
    const result = await parsedEvents(message);
    expect(result.items[0]?.event.type).toBe("email.unsubscribed");
    expect(result.items[0]).not.toHaveProperty("suppress");
  });
});

describe("types that are not recorded", () => {
  it.each([
    [
      "an inbound Received notification",
      { notificationType: "Received", mail: { timestamp: "x", messageId: "m" } },
    ],
    [
      "the SNS subscription notice SES sends (no mail object)",
      { notificationType: "AmazonSnsSubscriptionSucceeded", message: "You have successfully subscribed" },
    ],
    ["a future event type", { eventType: "Teleport", mail: {} }],
  ])("answers ignored for %s", async (_name, record) => {
    const result = await parseSesMessage(JSON.stringify(record), { snsMessageId: SNS_ID });
    expect(result.kind).toBe("ignored");
    expect(result.kind === "ignored" && result.reason).toBeTruthy();
  });
});

describe("messages that are not SES JSON", () => {
  it.each([
    ["not JSON", "Hello world"],
    ["a JSON array", "[]"],
    ["a JSON string", '"Bounce"'],
    ["null", "null"],
    ["no type", JSON.stringify({ mail: { timestamp: "2020-01-01T00:00:00Z", messageId: "m" } })],
    ["a non-string type", JSON.stringify({ eventType: 3, mail: {} })],
    ["a known type without mail", JSON.stringify({ eventType: "Send", send: {} })],
    ["mail without messageId", edited("event-publishing/send.json", (r) => delete r.mail.messageId)],
    [
      "a bounce without its bounce object",
      edited("event-publishing/bounce-permanent.json", (r) => delete r.bounce),
    ],
    [
      "a delivery without recipients",
      edited("event-publishing/delivery.json", (r) => delete r.delivery.recipients),
    ],
    ["a click without its click object", edited("event-publishing/click.json", (r) => delete r.click)],
    [
      "no usable timestamp",
      edited("event-publishing/send.json", (r) => {
        r.mail.timestamp = "not a date";
      }),
    ],
    ["non-string destinations", edited("event-publishing/send.json", (r) => (r.mail.destination = [1, 2]))],
  ])("answers validation_error for %s", async (_name, message) => {
    const err = await rejection(parseSesMessage(message, { snsMessageId: SNS_ID }));
    expect(err.type).toBe("validation_error");
  });
});

describe("SMTP helpers", () => {
  it.each([
    ["smtp; 550 5.1.1 user unknown", "550 5.1.1 user unknown", 550],
    ["SMTP;550 5.1.1 user unknown", "550 5.1.1 user unknown", 550],
    ["250 2.6.0 Message received", "250 2.6.0 Message received", 250],
    ["250 ok:  Message 64111812 accepted", "250 ok:  Message 64111812 accepted", 250],
    ["smtp; 421 4.4.1 Unable to connect to remote host", "421 4.4.1 Unable to connect to remote host", 421],
    ["smtp; 550-5.7.1 Unauthenticated\n550 5.7.1 DMARC", "550-5.7.1 Unauthenticated\n550 5.7.1 DMARC", 550],
    ["5.1.1", "5.1.1", null],
    ["Message 64111812 accepted", "Message 64111812 accepted", null],
    ["connection to 127.0.2.0 timed out", "connection to 127.0.2.0 timed out", null],
    ["smtp; ", null, null],
    ["", null, null],
  ])("%j → response %j, code %j", (input, response, code) => {
    expect(smtpResponseText(input)).toBe(response);
    expect(smtpReplyCode(input)).toBe(code);
  });

  it("handles null and undefined", () => {
    expect(smtpResponseText(null)).toBeNull();
    expect(smtpReplyCode(undefined)).toBeNull();
  });
});
