import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { BOUNCE_CLASS_RULES } from "../../src/compat/sparkpost/bounce-class";
import { canonicalReason, SPARKPOST_TYPES } from "../../src/compat/sparkpost/event-map";
import { keywordMatches, keywordsOf } from "../../src/compat/sparkpost/filters";
import { openSparkPostPage, sparkPostQueryFrom } from "../../src/compat/sparkpost/query";
import type { EventRecord, EventType } from "../../src/events/record";
import { call, event, freshAccount, json, mintToken } from "../helpers";
import { getJson, jsonAfter, seedEvents, seedText } from "./support";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const SEED = seedText("004_");
const PATH = "/compat/sparkpost/api/v1/events/message";

async function sp(account: string, query: string, options: { scope?: string; bare?: boolean } = {}) {
  const token = await mintToken(account, options.scope ?? "events:read");
  return getJson(`${PATH}${query ? `?${query}` : ""}`, {
    authorization: options.bare === false ? `Bearer ${token}` : token,
  });
}

/** Follows links.next to the end; returns every result and the pages' sizes. */
async function walk(account: string, query: string) {
  const token = await mintToken(account, "events:read");
  let path: string | null = `${PATH}?${query}`;
  const results: any[] = [];
  const totals = new Set<number>();
  let pages = 0;
  while (path) {
    const res = await call("GET", path, { headers: { authorization: token } });
    expect(res.status).toBe(200);
    const body = await json(res);
    results.push(...body.results);
    totals.add(body.total_count);
    pages += 1;
    path = body.links.next ?? null;
    if (path) expect(path.startsWith(`${PATH}?`)).toBe(true);
    else expect(body.links).toEqual({});
  }
  return { results, totals: [...totals], pages };
}

const ids = (results: { event_id: string }[]) => results.map((r) => r.event_id);

describe("SparkPost Events API: the seed's examples", () => {
  it("answers the seed's recipients+templates search with the seed's click event, field by field", async () => {
    const account = freshAccount();
    const expected = jsonAfter(
      SEED,
      "GET /api/v1/events/message?recipients=recipient@example.com&templates=my-template",
    );
    const seedEvent = expected.results[0];
    const click = event({
      account_id: account,
      type: "email.clicked",
      occurred_at: Date.now() - HOUR,
      email_id: seedEvent.transmission_id,
      message_id: seedEvent.message_id,
      recipient: seedEvent.rcpt_to,
      from: seedEvent.friendly_from,
      from_domain: seedEvent.sending_domain,
      subject: seedEvent.subject,
      campaign: seedEvent.campaign_id,
      template_id: seedEvent.template_id,
      tags: seedEvent.rcpt_tags,
      tracking: {
        user_agent: seedEvent.user_agent,
        ip_address: seedEvent.ip_address,
        url: seedEvent.target_link_url,
        link_name: seedEvent.target_link_name,
        geo: {
          country: seedEvent.geo_ip.country,
          region: seedEvent.geo_ip.region,
          city: seedEvent.geo_ip.city,
        },
        bot: null,
      },
    });
    await seedEvents([
      click,
      event({ account_id: account, recipient: "recipient@example.com", template_id: "other" }),
    ]);
    const { res, body } = await sp(account, "recipients=recipient@example.com&templates=my-template");
    expect(res.status).toBe(200);
    expect(Object.keys(body)).toEqual(["results", "total_count", "links"]);
    expect(body.total_count).toBe(expected.total_count);
    expect(body.links).toEqual(expected.links);
    const got = body.results[0];
    const mapped = [
      "type",
      "campaign_id",
      "friendly_from",
      "ip_address",
      "message_id",
      "msg_from",
      "rcpt_tags",
      "rcpt_to",
      "raw_rcpt_to",
      "recipient_domain",
      "sending_domain",
      "subject",
      "target_link_name",
      "target_link_url",
      "template_id",
      "transmission_id",
      "user_agent",
    ];
    for (const field of mapped) expect(got[field], field).toEqual(seedEvent[field]);
    expect(got.geo_ip).toEqual({ country: "US", region: "MD", city: "Columbia" });
    expect(got.event_id).toBe(click.id);
    expect(got.timestamp).toBe(new Date(click.occurred_at).toISOString());
  });

  it("pages as the seed shows: links.next repeats the filters, per_page and the cursor, until links is {}", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records = Array.from({ length: 50 }, (_, i) =>
      event({
        account_id: account,
        type: i % 5 === 0 ? "email.opened" : "email.delivered",
        occurred_at: now - 1000 - i * 60_000,
      }),
    );
    // Two events at the same instant: the keyset must still separate them.
    records.push(event({ account_id: account, occurred_at: now - 1000 }));
    await seedEvents(records);
    const first = await sp(account, "events=delivery&per_page=7&cursor=initial");
    expect(first.body.links.next).toMatch(
      /^\/compat\/sparkpost\/api\/v1\/events\/message\?events=delivery&per_page=7&cursor=[A-Za-z0-9_-]+$/,
    );
    const { results, totals, pages } = await walk(account, "events=delivery&per_page=7&cursor=initial");
    const deliveries = records.filter((r) => r.type === "email.delivered");
    expect(totals).toEqual([deliveries.length]);
    expect(pages).toBe(Math.ceil(deliveries.length / 7));
    expect(new Set(ids(results)).size).toBe(results.length);
    expect(ids(results).sort()).toEqual(deliveries.map((r) => r.id).sort());
    // Newest first.
    const times = results.map((r) => Date.parse(r.timestamp));
    expect([...times].sort((a, b) => b - a)).toEqual(times);
    // A small page reads what it returns (plus one row to see that more follow), not a whole chunk.
    const small = await openSparkPostPage(
      env,
      account,
      sparkPostQueryFrom(new URLSearchParams({ per_page: "7" })),
    );
    let step = await small.chunks.next();
    let returned = 0;
    while (!step.done) {
      returned += step.value.length;
      step = await small.chunks.next();
    }
    expect(returned).toBe(7);
    expect(step.value.rowsRead).toBeLessThanOrEqual(8);
    expect(step.value.next).not.toBeNull();
  });

  it("answers …/documentation and …/samples as the seed documents them", async () => {
    const account = freshAccount();
    const token = await mintToken(account, "events:read");
    const doc = await getJson("/compat/sparkpost/api/v1/events/message/documentation", {
      authorization: token,
    });
    expect(doc.res.status).toBe(200);
    const bounceDoc = doc.body.results.find((r: any) => r.type?.sampleValue === "bounce");
    // The seed's one documented entry (its example elides the rest with "…"), verbatim.
    expect(SEED).toContain(
      '"type": {\n"description": "Type of event this record describes",\n"sampleValue": "bounce"\n}',
    );
    expect(bounceDoc.type).toEqual({
      description: "Type of event this record describes",
      sampleValue: "bounce",
    });
    // Every other description is the seed's sentence for that field.
    for (const [field, sentence] of [
      ["bounce_class", "Classification code for a given message (see Bounce Classification Codes)."],
      ["campaign_id", "Campaign of which this message was a part."],
      ["error_code", "Error code by which the remote server described a failed delivery attempt."],
      ["event_id", "Unique event identifier."],
      [
        "raw_reason",
        "Unmodified, exact response returned by the remote server due to a failed delivery attempt.",
      ],
      ["timestamp", "Event date and time, millisecond precision in UTC."],
      ["transmission_id", "Transmission which originated this message."],
    ] as const) {
      expect(SEED).toContain(sentence);
      expect(`${bounceDoc[field].description}.`).toBe(sentence);
    }

    const samples = await getJson("/compat/sparkpost/api/v1/events/message/samples?events=bounce", {
      authorization: token,
    });
    expect(samples.res.status).toBe(200);
    expect(samples.body.results).toHaveLength(1);
    const sample = samples.body.results[0];
    const seedBounce = jsonAfter(SEED, "Remote MTA has permanently rejected a message.");
    for (const field of Object.keys(sample)) {
      if (field === "geo_ip") continue;
      expect(sample[field], field).toEqual(seedBounce[field]);
    }
    expect(Object.keys(sample)).toEqual(
      expect.arrayContaining(["bounce_class", "error_code", "reason", "raw_reason"]),
    );
    const emptyEvents = await getJson("/compat/sparkpost/api/v1/events/message/samples?events=", {
      authorization: token,
    });
    expect(emptyEvents.body.results).toHaveLength(new Set(Object.values(SPARKPOST_TYPES)).size);
    const all = await getJson("/compat/sparkpost/api/v1/events/message/samples", { authorization: token });
    expect(all.body.results.map((r: any) => r.type).sort()).toEqual(
      [...new Set(Object.values(SPARKPOST_TYPES))].sort(),
    );
    const bad = await getJson("/compat/sparkpost/api/v1/events/message/samples?events=nope", {
      authorization: token,
    });
    expect(bad.res.status).toBe(400);
    expect(bad.body.errors[0].message).toBe("invalid params");
  });
});

describe("SparkPost pure helpers", () => {
  it.each([
    ["550 host 192.0.2.10 said no", "550 host a.b.c.d said no"],
    ["MAIL REFUSED - IP (17.99.99.99) is in black list", "MAIL REFUSED - IP (a.b.c.d) is in black list"],
    ["550 5.1.1 user unknown", "550 5.1.1 user unknown"],
  ])("canonicalReason(%s)", (raw, canonical) => {
    expect(canonicalReason(raw)).toBe(canonical);
  });

  it.each([
    ["blackfriday-specials", false, ["blackfriday", "specials"]],
    ["BlackFriday_members", false, ["blackfriday", "members"]],
    ["mail.Example.com", true, ["mail", "example", "com"]],
    ["mail.example.com", false, ["mail.example.com"]],
    ["  a -- b__c ", false, ["a", "b", "c"]],
    ["Été", false, ["Été"]],
  ] as const)("keywordsOf(%s, periods %s)", (value, periods, words) => {
    expect(keywordsOf(value, periods)).toEqual(words);
  });
});

describe("SparkPost Events API: parameters", () => {
  it.each([
    ["per_page=10001", "per_page"],
    ["per_page=0", "per_page"],
    ["from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "from"],
    ["from=yesterday", "from"],
    ["events=delivery,bogus", "bogus"],
    ["bounce_classes=7", "bounce_classes"],
    ["campaigns=--", "campaigns"],
    ["colour=red", "colour"],
    ["cursor=not-a-cursor", "cursor"],
    ["delimiter=;;", "delimiter"],
    ["ab_test_versions=1", "ab_tests"],
    ["campaigns=a%00b", "control characters"],
  ])("%s is a 400 in SparkPost's error shape", async (query, mention) => {
    const { res, body } = await sp(freshAccount(), query);
    expect(res.status).toBe(400);
    expect(res.headers.get("request-id")).toBeTruthy();
    expect(Object.keys(body)).toEqual(["errors"]);
    expect(body.errors).toHaveLength(1);
    expect(Object.keys(body.errors[0]).sort()).toEqual(["description", "message"]);
    expect(body.errors[0].message).toBe("invalid params");
    expect(body.errors[0].description).toContain(mention);
  });

  it("defaults to the last 24 hours, per_page 1000, and honours from/to and the delimiter", async () => {
    const account = freshAccount();
    const now = Date.now();
    const recent = event({ account_id: account, occurred_at: now - 23 * HOUR, campaign: "a" });
    const older = event({ account_id: account, occurred_at: now - 25 * HOUR, campaign: "b" });
    await seedEvents([recent, older]);
    expect(ids((await sp(account, "")).body.results)).toEqual([recent.id]);
    const from = new Date(now - 26 * HOUR).toISOString().replace(/\.\d{3}Z$/, "Z");
    const to = new Date(now - 24 * HOUR).toISOString().replace(/\.\d{3}Z$/, "Z");
    expect(ids((await sp(account, `from=${from}&to=${to}`)).body.results)).toEqual([older.id]);
    // `to` is exclusive.
    const exact = new Date(older.occurred_at).toISOString();
    expect(ids((await sp(account, `from=${from}&to=${exact}`)).body.results)).toEqual([]);
    expect(ids((await sp(account, `from=${from}&campaigns=a;b&delimiter=;`)).body.results)).toEqual([
      recent.id,
      older.id,
    ]);
    const q = sparkPostQueryFrom(new URLSearchParams(""));
    expect(q.perPage).toBe(1000);
  });

  it("clamps the window to the plan's retention", async () => {
    const account = freshAccount();
    const now = Date.now();
    const inside = event({ account_id: account, occurred_at: now - 2 * DAY });
    const outside = event({ account_id: account, occurred_at: now - 5 * DAY });
    await seedEvents([inside, outside]);
    const from = new Date(now - 10 * DAY).toISOString();
    const { body } = await sp(account, `from=${from}`);
    expect(ids(body.results)).toEqual([inside.id]);
    expect(body.total_count).toBe(1);
  });
});

describe("SparkPost Events API: mapping", () => {
  it("maps every mailtrail type to its SparkPost type, and each `events` value back", async () => {
    const account = freshAccount();
    const now = Date.now();
    const types = Object.keys(SPARKPOST_TYPES) as EventType[];
    const records = types.map((type, i) =>
      event({ account_id: account, type, occurred_at: now - (i + 1) * 60_000 }),
    );
    await seedEvents(records);
    const { body } = await sp(account, "");
    expect(body.results.map((r: any) => r.type)).toEqual(types.map((t) => SPARKPOST_TYPES[t]));
    for (const spType of new Set(Object.values(SPARKPOST_TYPES))) {
      const expected = records.filter((r) => SPARKPOST_TYPES[r.type] === spType).map((r) => r.id);
      expect(ids((await sp(account, `events=${spType}`)).body.results), spType).toEqual(expected);
    }
    expect((await sp(account, "events=amp_click")).body.results).toEqual([]);
  });

  it("maps the fields of a bounce: error_code, reason canonicalized, raw_reason, num_retries, bounce_class", async () => {
    const account = freshAccount();
    const bounce = event({
      account_id: account,
      type: "email.bounced",
      bounce_type: "permanent",
      bounce_classification: "General",
      smtp_code: 550,
      smtp_response: "550 5.1.1 <user@example.com>: host 192.0.2.10 said: user unknown",
      attempt: 3,
      from: "News@Mail.Example.com",
      from_domain: "mail.example.com",
      recipient: "user@example.com",
    });
    await seedEvents([bounce]);
    const [got] = (await sp(account, "")).body.results;
    expect(got).toMatchObject({
      type: "bounce",
      error_code: "550",
      reason: "550 5.1.1 <user@example.com>: host a.b.c.d said: user unknown",
      raw_reason: bounce.smtp_response,
      num_retries: "3",
      bounce_class: "10",
      rcpt_to: "user@example.com",
      recipient_domain: "example.com",
      sending_domain: "mail.example.com",
      friendly_from: "News@Mail.Example.com",
    });
    expect(got).not.toHaveProperty("user_agent");
  });

  const BOUNCE_CASES: [string, Partial<EventRecord>, number | null][] = [
    [
      "undetermined",
      { type: "email.bounced", bounce_type: "undetermined", bounce_classification: "Undetermined" },
      1,
    ],
    [
      "NoEmail",
      {
        type: "email.bounced",
        bounce_type: "permanent",
        bounce_classification: "NoEmail",
        smtp_response: "550 5.1.1 unknown",
      },
      10,
    ],
    [
      "General 5.1.1",
      {
        type: "email.bounced",
        bounce_type: "permanent",
        bounce_classification: "General",
        smtp_response: "550 5.1.1 unknown",
      },
      10,
    ],
    [
      "OnAccountSuppressionList",
      { type: "email.bounced", bounce_type: "permanent", bounce_classification: "OnAccountSuppressionList" },
      25,
    ],
    [
      "Suppressed",
      { type: "email.bounced", bounce_type: "permanent", bounce_classification: "Suppressed" },
      25,
    ],
    [
      "UnsubscribedRecipient",
      { type: "email.bounced", bounce_type: "permanent", bounce_classification: "UnsubscribedRecipient" },
      90,
    ],
    [
      "MailboxFull",
      { type: "email.bounced", bounce_type: "transient", bounce_classification: "MailboxFull" },
      22,
    ],
    [
      "MessageTooLarge",
      { type: "email.bounced", bounce_type: "transient", bounce_classification: "MessageTooLarge" },
      23,
    ],
    [
      "ContentRejected",
      { type: "email.bounced", bounce_type: "transient", bounce_classification: "ContentRejected" },
      52,
    ],
    [
      "AttachmentRejected",
      { type: "email.bounced", bounce_type: "transient", bounce_classification: "AttachmentRejected" },
      53,
    ],
    [
      "transient 4.4.7",
      {
        type: "email.bounced",
        bounce_type: "transient",
        bounce_classification: "General",
        smtp_response: "4.4.7",
      },
      24,
    ],
    [
      "transient 4.4.4 DNS",
      {
        type: "email.bounced",
        bounce_type: "transient",
        bounce_classification: "General",
        smtp_response: "451-4.4.4 no MX",
      },
      21,
    ],
    [
      "permanent 5.4.4 stays hard",
      {
        type: "email.bounced",
        bounce_type: "permanent",
        bounce_classification: "General",
        smtp_response: "550 5.4.4 unrouteable",
      },
      10,
    ],
    [
      "permanent 5.7.1 block",
      {
        type: "email.bounced",
        bounce_type: "permanent",
        bounce_classification: "General",
        smtp_response: "554 5.7.1 blocked (#5.7.1)",
      },
      50,
    ],
    [
      "transient 4.7.1",
      {
        type: "email.bounced",
        bounce_type: "transient",
        bounce_classification: "General",
        smtp_response: "421 4.7.1 not authorised",
      },
      54,
    ],
    [
      "transient 4.2.2",
      {
        type: "email.bounced",
        bounce_type: "transient",
        bounce_classification: "General",
        smtp_response: "452 4.2.2 over quota",
      },
      22,
    ],
    [
      "transient general",
      {
        type: "email.bounced",
        bounce_type: "transient",
        bounce_classification: "General",
        smtp_response: "451 try later",
      },
      20,
    ],
    ["delay", { type: "email.delayed", smtp_response: "421 try later" }, 70],
    ["delay 4.4.1", { type: "email.delayed", smtp_response: "4.4.1 no answer" }, 24],
    ["suppressed", { type: "email.suppressed" }, 25],
    ["failed", { type: "email.failed", smtp_response: "Virus detected" }, 25],
  ];

  it("derives bounce_class from SES's bounce type, subtype and status, and filters on it", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records = BOUNCE_CASES.map(([, fields], i) =>
      event({ account_id: account, occurred_at: now - (i + 1) * 60_000, ...fields }),
    );
    await seedEvents(records);
    const { body } = await sp(account, "per_page=100");
    const byId = new Map(body.results.map((r: any) => [r.event_id, r.bounce_class]));
    BOUNCE_CASES.forEach(([name, , expected], i) => {
      expect(byId.get(records[i]?.id ?? ""), name).toBe(expected === null ? undefined : String(expected));
    });
    for (const cls of [10, 22, 25]) {
      const expected = records.filter((_, i) => BOUNCE_CASES[i]?.[2] === cls).map((r) => r.id);
      const { body: filtered } = await sp(account, `bounce_classes=${cls}`);
      expect(ids(filtered.results), `bounce_classes=${cls}`).toEqual(expected);
      expect(filtered.total_count).toBe(expected.length);
    }
    expect(BOUNCE_CLASS_RULES.every((r) => r.why.length > 0)).toBe(true);
  });
});

describe("SparkPost Events API: keyword search", () => {
  const FIELDS: {
    campaign: string;
    subject: string;
    from_domain: string;
    recipient: string;
    smtp_response: string | null;
    template_id: string;
  }[] = [
    {
      campaign: "blackfriday-specials",
      subject: "Summer deals are here!",
      from_domain: "mail.example.com",
      recipient: "a@gmail.com",
      smtp_response: "550 5.1.1 user unknown",
      template_id: "welcome_v2",
    },
    {
      campaign: "BlackFriday_members",
      subject: "Black Friday deals",
      from_domain: "news.shop.io",
      recipient: "b@mail.yahoo.co.uk",
      smtp_response: null,
      template_id: "welcome-v3",
    },
    {
      campaign: "blackfriday flash deals",
      subject: "Hello",
      from_domain: "example.com",
      recipient: "c@example.com",
      smtp_response: "421 mailbox busy",
      template_id: "Receipt",
    },
    {
      campaign: "cyber-monday",
      subject: "Été à Paris with O'Brien",
      from_domain: "examples.com",
      recipient: "d@gmail-like.net",
      smtp_response: null,
      template_id: "welcome",
    },
  ];
  // filter, value → indexes of FIELDS matched
  const CASES: [string, string, number[]][] = [
    ["campaigns", "blackfriday", [0, 1, 2]],
    ["campaigns", "friday", []],
    ["campaigns", "BLACKFRIDAY", [0, 1, 2]],
    ["campaigns", "blackfriday-specials", [0]],
    ["campaigns", "specials_blackfriday", [0]],
    ["campaigns", "blackfriday-specials,cyber-monday", [0, 3]],
    ["campaigns", "flash deals", [2]],
    ["campaigns", "black", []],
    ["subjects", "deals", [0, 1]],
    ["subjects", "summer deals", [0]],
    ["subjects", "here", []],
    ["subjects", "here!", [0]],
    // Case folds for ASCII letters only, as SQLite's lower().
    ["subjects", "été", []],
    ["subjects", "Été paris", [3]],
    ["sending_domains", "example", [0, 2]],
    ["sending_domains", "example.com", [0, 2]],
    ["sending_domains", "mail.example.com", [0]],
    ["sending_domains", "shop", [1]],
    ["sending_domains", "exam", []],
    ["recipient_domains", "gmail", [0, 3]],
    ["recipient_domains", "co.uk", [1]],
    ["recipient_domains", "gmail-like", [3]],
    ["recipient_domains", "like", [3]],
    ["reasons", "unknown", [0]],
    ["reasons", "5.1.1", [0]],
    ["reasons", "busy mailbox", [2]],
    ["templates", "welcome", [0, 1, 3]],
    ["templates", "v2", [0]],
    ["templates", "receipt", [2]],
    // Quotes are data, not SQL.
    ["subjects", "o'brien", [3]],
    ["subjects", "x') OR 1=1 --", []],
  ];
  const COLUMN = {
    campaigns: "campaign",
    subjects: "subject",
    sending_domains: "from_domain",
    recipient_domains: "recipient",
    reasons: "smtp_response",
    templates: "template_id",
  } as const;

  it.each(CASES)("%s=%s", async (filter, value, expected) => {
    // The reference matcher agrees with the table…
    const periods = filter.endsWith("domains");
    const reference = FIELDS.flatMap((f, i) => {
      const raw = f[COLUMN[filter as keyof typeof COLUMN]];
      const field = filter === "recipient_domains" && raw ? raw.slice(raw.indexOf("@") + 1) : raw;
      return value.split(",").some((v) => keywordMatches(field, v, periods)) ? [i] : [];
    });
    expect(reference).toEqual(expected);
    // …and so does D1.
    const account = freshAccount();
    const now = Date.now();
    const records = FIELDS.map((f, i) =>
      event({ account_id: account, occurred_at: now - (i + 1) * 60_000, ...f }),
    );
    await seedEvents(records);
    const { res, body } = await sp(account, `${filter}=${encodeURIComponent(value)}`);
    expect(res.status).toBe(200);
    expect(ids(body.results)).toEqual(expected.map((i) => records[i]?.id));
    expect(body.total_count).toBe(expected.length);
  });

  it("ANDs filters and ORs values", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records = FIELDS.map((f, i) =>
      event({ account_id: account, occurred_at: now - (i + 1) * 60_000, ...f }),
    );
    await seedEvents(records);
    const { body } = await sp(account, "campaigns=blackfriday&subjects=deals,hello&sending_domains=example");
    expect(ids(body.results)).toEqual([records[0]?.id, records[2]?.id]);
    expect((await sp(account, "ip_pools=default")).body.results).toEqual([]);
  });
});

describe("SparkPost Events API: bounded pages", () => {
  it("reads at most 10,000 rows a page: a rare match past them comes on a later page", async () => {
    const account = freshAccount();
    const now = Date.now();
    const records: EventRecord[] = [];
    // One email each, as real mail is: 10,050 events of one email_id make every consumer batch's
    // rollup statements walk that email's growing history (quadratic seeding, not what is tested).
    for (let i = 0; i < 10_050; i++)
      records.push(
        event({ account_id: account, email_id: `email_${i}`, occurred_at: now - 1000 - i * 1000 }),
      );
    const rare = event({
      account_id: account,
      occurred_at: now - 1000 - 10_040 * 1000 - 500,
      campaign: "needle-in-haystack",
    });
    records.push(rare);
    await seedEvents(records);
    const first = await sp(account, `campaigns=needle&from=${new Date(now - 2 * DAY).toISOString()}`);
    expect(first.res.status).toBe(200);
    expect(first.body.results).toEqual([]);
    expect(first.body.total_count).toBe(1);
    expect(first.body.links.next).toBeTruthy();
    const { results } = await walk(account, `campaigns=needle&from=${new Date(now - 2 * DAY).toISOString()}`);
    expect(ids(results)).toEqual([rare.id]);

    // Rows read, from D1's own counter, for a full 10,000-event page.
    const query = sparkPostQueryFrom(
      new URLSearchParams({ per_page: "10000", from: new Date(now - 2 * DAY).toISOString() }),
    );
    const page = await openSparkPostPage(env, account, query);
    let returned = 0;
    let result: any;
    for (;;) {
      const step = await page.chunks.next();
      if (step.done) {
        result = step.value;
        break;
      }
      returned += step.value.length;
    }
    // D1 counts the row each keyset seek lands on: two 5,000-row statements return 9,999 events,
    // less the rows total_count read (they come out of the request's budget).
    expect(page.countRowsRead).toBeGreaterThan(0);
    expect(returned).toBe(9_999 - page.countRowsRead);
    expect(result.rowsRead + page.countRowsRead).toBeLessThanOrEqual(10_000);
    expect(page.totalCount).toBe(10_051);
    // Filters cost no extra reads: a page stays within 10,000, and total_count reads the window once.
    const cases: Record<string, string>[] = [
      { campaigns: "needle" },
      { events: "delivery,bounce,open" },
      { bounce_classes: "10,25" },
    ];
    for (const filters of cases) {
      const q = sparkPostQueryFrom(
        new URLSearchParams({ per_page: "10000", from: new Date(now - 2 * DAY).toISOString(), ...filters }),
      );
      const p = await openSparkPostPage(env, account, q);
      let step = await p.chunks.next();
      while (!step.done) step = await p.chunks.next();
      // The page's budget is what the count left, or half of it after a count past the budget (a count of the window).
      const request = step.value.rowsRead + Math.min(p.countRowsRead, 5_000);
      expect(request, JSON.stringify(filters)).toBeLessThanOrEqual(10_000);
      expect(request, JSON.stringify(filters)).toBeGreaterThanOrEqual(9_990);
      expect(p.countRowsRead, JSON.stringify(filters)).toBeLessThanOrEqual(10_052);
    }
    const full = await sp(account, `per_page=10000&from=${new Date(now - 2 * DAY).toISOString()}`);
    expect(full.body.results).toHaveLength(9_999);
    const rest = await call("GET", full.body.links.next, {
      headers: { authorization: await mintToken(account, "events:read") },
    });
    const restBody = await json(rest);
    expect(restBody.results).toHaveLength(52);
    expect(restBody.links).toEqual({});
    expect(new Set([...ids(full.body.results), ...ids(restBody.results)]).size).toBe(10_051);
  }, 120_000);

  it("refuses a cursor reused with other filters", async () => {
    const account = freshAccount();
    await seedEvents([event({ account_id: account }), event({ account_id: account })]);
    const { body } = await sp(account, "per_page=1");
    const cursor = new URL(body.links.next, "https://x").searchParams.get("cursor");
    const reused = await sp(account, `per_page=1&events=delivery&cursor=${cursor}`);
    expect(reused.res.status).toBe(400);
    expect(reused.body.errors[0].description).toContain("cursor");
    // per_page may change between pages.
    expect((await sp(account, `per_page=5&cursor=${cursor}`)).res.status).toBe(200);
  });
});

describe("SparkPost Events API: authentication and isolation", () => {
  it("takes the bare token SparkPost clients send, or Bearer", async () => {
    const account = freshAccount();
    const e = event({ account_id: account });
    await seedEvents([e]);
    expect(ids((await sp(account, "")).body.results)).toEqual([e.id]);
    expect(ids((await sp(account, "", { bare: false })).body.results)).toEqual([e.id]);
  });

  it("answers auth failures in SparkPost's shape with native status codes", async () => {
    const account = freshAccount();
    const none = await getJson(PATH);
    expect(none.res.status).toBe(401);
    expect(none.body).toEqual({ errors: [{ message: "Unauthorized.", description: expect.any(String) }] });
    const forged = await mintToken(account, "events:read", {
      secret: "another-secret-another-secret-0123456789",
    });
    expect((await getJson(PATH, { authorization: forged })).res.status).toBe(401);
    expect((await getJson(PATH, { authorization: "Basic abc" })).res.status).toBe(401);
    const wrongScope = await sp(account, "", { scope: "send" });
    expect(wrongScope.res.status).toBe(403);
    expect(wrongScope.body.errors[0].message).toBe("Forbidden.");
    const notFound = await getJson("/compat/sparkpost/api/v1/nothing", {
      authorization: await mintToken(account, "events:read"),
    });
    expect(notFound.res.status).toBe(404);
    expect(notFound.body.errors[0].message).toBe("resource not found");
    const wrongMethod = await call("POST", PATH);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toContain("GET");
    expect((await json(wrongMethod)).errors[0].message).toBe("method not allowed");
  });

  it("never shows another account's events; admin may name one", async () => {
    const owner = freshAccount();
    const e = event({ account_id: owner });
    await seedEvents([e]);
    const intruder = freshAccount();
    expect((await sp(intruder, "")).body.results).toEqual([]);
    expect((await sp(intruder, `event_ids=${e.id}`)).body.total_count).toBe(0);
    expect((await sp(intruder, `account_id=${owner}`)).res.status).toBe(403);
    expect(ids((await sp("ops", `account_id=${owner}`, { scope: "admin" })).body.results)).toEqual([e.id]);
  });
});
