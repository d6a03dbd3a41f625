// The benchmark's data: a deterministic model of what a platform's email traffic looks like.
//
// Accounts have Zipf-skewed sizes (a few whales, a long tail). Each account sends campaigns (bulk
// sends on a day, one template, one marketing topic, a couple of tags) and transactional mail
// (receipts, password resets: spread over the month, their own templates and topics). Recipients are
// drawn from a per-account pool with a skew, so some addresses receive many emails. Each message
// then lives through SES and tracking events with realistic rates: delivered, a few bounces (mostly
// permanent), rare delays, complaints and unsubscribes, opens (many from image proxies) and clicks.
//
// The same model feeds the query dataset (rows for a bulk load) and the ingest batches (queue
// messages exactly as the producers build them), so both measure the same shapes.
import { apportion, cdfOf, rng, zipfWeights } from "./stats.mjs";

const DAY_MS = 86_400_000;
const MINUTE_MS = 60_000;

const WORDS = [
  "acme",
  "nimbus",
  "orbit",
  "lumen",
  "vertex",
  "harbor",
  "cobalt",
  "maple",
  "quartz",
  "summit",
  "pioneer",
  "atlas",
  "beacon",
  "cedar",
  "delta",
  "ember",
  "falcon",
  "glacier",
  "horizon",
  "iris",
];
const CAMPAIGN_THEMES = [
  "spring-sale",
  "product-launch",
  "weekly-digest",
  "black-friday",
  "webinar-invite",
  "feature-update",
  "winback",
  "newsletter",
  "holiday-promo",
  "survey",
  "case-study",
  "release-notes",
];
const MARKETING_TOPICS = ["newsletter", "product-updates", "promotions", "events", "digest", "tips"];
const TRANSACTIONAL = [
  { template: "password-reset-v3", topic: "security", subject: "Reset your password", weight: 3 },
  { template: "receipt-v7", topic: "billing", subject: "Your receipt", weight: 5 },
  { template: "welcome-v2", topic: "onboarding", subject: "Welcome aboard", weight: 4 },
  { template: "verify-email-v1", topic: null, subject: "Confirm your email address", weight: 4 },
  { template: "invoice-v4", topic: "billing", subject: "Your invoice is ready", weight: 2 },
  { template: "login-alert-v2", topic: "security", subject: "New sign-in to your account", weight: 2 },
  { template: "shipping-update-v5", topic: null, subject: "Your order has shipped", weight: 3 },
];
const TAGS = [
  "vip",
  "trial",
  "paid",
  "eu",
  "us",
  "apac",
  "beta",
  "enterprise",
  "smb",
  "mobile",
  "desktop",
  "churn-risk",
  "winback",
  "q4",
  "referral",
  "partner",
  "new-user",
  "power-user",
  "annual",
  "monthly",
];
const FIRST = ["alex", "sam", "maria", "li", "noah", "emma", "omar", "ana", "yuki", "lars", "zoe", "ravi"];
const LAST = ["smith", "garcia", "chen", "muller", "rossi", "kim", "silva", "novak", "haddad", "jones"];
const MAILBOXES = [
  ["gmail.com", 40],
  ["yahoo.com", 10],
  ["outlook.com", 12],
  ["icloud.com", 10],
  ["hotmail.com", 6],
  ["proton.me", 2],
  ["gmx.de", 3],
  ["company.example", 17],
];
const MAILBOX_CDF = cdfOf(MAILBOXES.map((m) => m[1]));
const USER_AGENTS = {
  person: [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0",
    "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.18129; Pro)",
  ],
  google: "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
  yahoo: "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html",
  apple: "Mozilla/5.0",
};
const GEOS = [
  { country: "US", region: "California", city: "Los Angeles" },
  { country: "US", region: "New York", city: "New York" },
  { country: "DE", region: "Berlin", city: "Berlin" },
  { country: "GB", region: "England", city: "London" },
  { country: "BR", region: "Sao Paulo", city: "Sao Paulo" },
  { country: "IN", region: "Karnataka", city: "Bengaluru" },
  { country: "JP", region: "Tokyo", city: "Tokyo" },
];
const LINK_NAMES = ["cta", "hero", "pricing", "docs", "footer", null];
const BOUNCES = [
  [
    "permanent",
    "General",
    550,
    "550 5.1.1 <{r}>: Recipient address rejected: User unknown in virtual mailbox table",
    60,
  ],
  ["permanent", "NoEmail", 550, "550 5.1.1 The email account that you tried to reach does not exist", 20],
  ["transient", "MailboxFull", 552, "552 5.2.2 The email account that you tried to reach is over quota", 12],
  ["transient", "General", 451, "451 4.3.0 Temporary lookup failure", 4],
  ["undetermined", "Undetermined", null, null, 4],
];
const BOUNCE_CDF = cdfOf(BOUNCES.map((b) => b[4]));

/** Column order of the bench loader's events table (bench/bench-worker.ts, LOADERS.events). */
export const EVENT_COLUMNS = [
  "account_id",
  "occurred_at",
  "id",
  "type",
  "email_id",
  "message_id",
  "from_address",
  "from_domain",
  "recipient",
  "subject",
  "topic",
  "campaign",
  "template_id",
  "tags",
  "smtp_code",
  "smtp_response",
  "bounce_type",
  "bounce_classification",
  "complaint_type",
  "attempt",
  "tracking",
];

const uuid = (r) => {
  const h = r.hex(32);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-7${h.slice(13, 16)}-${"89ab"[r.int(0, 3)]}${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

/**
 * The accounts of a dataset: ids, Zipf event budgets and each account's sending profile.
 * `now` anchors the 30-day window so that a query made minutes later still covers every event.
 */
export function buildUniverse({
  accounts = 100,
  totalEvents,
  days = 30,
  now = Date.now(),
  seed = 42,
  skew = 1.1,
}) {
  const r = rng(seed);
  const budgets = apportion(totalEvents, zipfWeights(accounts, skew));
  const end = now - 5 * MINUTE_MS;
  const start = now - days * DAY_MS + 6 * 60 * MINUTE_MS;
  const list = budgets.map((events, i) => {
    const word = WORDS[i % WORDS.length];
    const slug = `${word}${Math.floor(i / WORDS.length) || ""}`;
    const domains = [`mail.${slug}.com`, `news.${slug}.com`, `notify.${slug}.io`].slice(0, 1 + (i % 3));
    const messages = Math.max(1, Math.round(events / 2.9));
    // Bigger senders run more campaigns; a campaign is one day's bulk send of one template.
    const campaignCount = Math.max(3, Math.min(60, Math.round(3 + 4 * Math.log10(messages + 1))));
    const topics = MARKETING_TOPICS.slice(0, 2 + (i % 4));
    const campaigns = Array.from({ length: campaignCount }, (_, c) => {
      const at = start + r.next() * (end - start - DAY_MS);
      const theme = CAMPAIGN_THEMES[(c + i) % CAMPAIGN_THEMES.length];
      return {
        name: `${theme}-${new Date(at).toISOString().slice(0, 10)}-${c}`,
        at,
        template: `${theme}-v${1 + (c % 4)}`,
        topic: topics[c % topics.length],
        tags: [TAGS[(c * 3 + i) % TAGS.length], ...(c % 2 ? [TAGS[(c * 7 + 5) % TAGS.length]] : [])],
        subject: `${theme.replace(/-/g, " ")}: ${word} news`,
      };
    });
    return {
      id: `acct_${String(i + 1).padStart(3, "0")}_${slug}`,
      rank: i + 1,
      events,
      messages,
      domains,
      senders: domains.map((d, k) => `${["news", "hello", "no-reply"][k % 3]}@${d}`),
      campaigns,
      campaignCdf: cdfOf(zipfWeights(campaignCount, 0.8)),
      recipients: Math.max(20, Math.round(messages / 3)),
      seed: seed * 1000 + i,
    };
  });
  return { accounts: list, window: { start, end }, now, totalEvents, seed };
}

/** A recipient address for a pool index: stable, realistic, lowercased. */
function recipientAddress(account, index) {
  const r = rng(account.seed * 7919 + index);
  const mailbox = MAILBOXES[r.fromCdf(MAILBOX_CDF)][0];
  return `${r.pick(FIRST)}.${r.pick(LAST)}${index}@${mailbox}`;
}

/**
 * The messages of one account, each with its registration dimensions and its events, until the
 * account's event budget is used. Events are SPEC §8 records with epoch-ms `occurred_at`.
 */
export function* accountMessages(universe, account, { budget = account.events } = {}) {
  const r = rng(account.seed);
  const { start, end } = universe.window;
  const recipientCdf = cdfOf(zipfWeights(Math.min(account.recipients, 5000), 0.9));
  const transactionalCdf = cdfOf(TRANSACTIONAL.map((t) => t.weight));
  let emitted = 0;
  let sequence = 0;
  while (emitted < budget) {
    sequence += 1;
    const campaign = r.chance(0.6) ? account.campaigns[r.fromCdf(account.campaignCdf)] : null;
    const transactional = campaign ? null : TRANSACTIONAL[r.fromCdf(transactionalCdf)];
    const sentAt = campaign
      ? Math.min(end - 1, campaign.at + r.exp(40 * MINUTE_MS))
      : start + r.next() * (end - start);
    // Heavy recipients come from the skewed head; the rest of the pool is uniform.
    const recipientIndex = r.chance(0.3) ? r.fromCdf(recipientCdf) : r.int(0, account.recipients - 1);
    const from = account.senders[campaign ? 0 : r.int(0, account.senders.length - 1)];
    const extraTag = r.chance(0.35) ? [TAGS[r.int(0, TAGS.length - 1)]] : [];
    const message = {
      account_id: account.id,
      email_id: `email_${uuid(r)}`,
      ses_message_id: `<0100019${r.hex(9)}-${uuid(r)}-000000@email.amazonses.com>`,
      from,
      from_domain: from.slice(from.indexOf("@") + 1),
      recipient: recipientAddress(account, recipientIndex),
      subject: campaign ? campaign.subject : transactional.subject,
      topic: campaign ? campaign.topic : transactional.topic,
      campaign: campaign ? campaign.name : null,
      template_id: campaign ? campaign.template : transactional.template,
      tags: [...new Set([...(campaign ? campaign.tags : []), ...extraTag])],
      sent_at: Math.floor(sentAt),
    };
    const events = messageEvents(r, message, !campaign).filter((e) => e.occurred_at < end);
    const take = events.slice(0, budget - emitted);
    emitted += take.length;
    yield { message, events: take, sequence };
  }
}

function event(r, message, type, occurredAt, fields = {}) {
  const ses = !["email.opened", "email.clicked", "email.unsubscribed"].includes(type);
  return {
    id: `evt_${r.hex(32)}`,
    account_id: message.account_id,
    type,
    occurred_at: Math.floor(occurredAt),
    email_id: message.email_id,
    // SES notifications carry the SES message id; tracking events only get what registration knows.
    message_id: ses ? message.ses_message_id : null,
    from: message.from,
    from_domain: message.from_domain,
    recipient: message.recipient,
    subject: message.subject,
    topic: message.topic,
    campaign: message.campaign,
    template_id: message.template_id,
    tags: message.tags,
    smtp_code: null,
    smtp_response: null,
    bounce_type: null,
    bounce_classification: null,
    complaint_type: null,
    attempt: null,
    tracking: null,
    ...fields,
  };
}

function trackingFor(r, kind, message, linkName) {
  const roll = r.next();
  const bot =
    roll < 0.3
      ? { kind: "proxy", source: "apple" }
      : roll < 0.45
        ? { kind: "proxy", source: "google" }
        : roll < 0.48
          ? { kind: "proxy", source: "yahoo" }
          : null;
  return {
    user_agent: bot ? USER_AGENTS[bot.source] : r.pick(USER_AGENTS.person),
    ip_address: bot
      ? `17.${r.int(0, 255)}.${r.int(0, 255)}.${r.int(1, 254)}`
      : `203.0.${r.int(0, 255)}.${r.int(1, 254)}`,
    url:
      kind === "click"
        ? `https://www.${message.from_domain.split(".").slice(-2).join(".")}/${linkName ?? "offer"}?utm_source=mailtrail&utm_campaign=${message.campaign ?? message.template_id}`
        : null,
    link_name: kind === "click" ? linkName : null,
    geo: bot?.source === "apple" ? null : r.pick(GEOS),
    bot,
  };
}

/** The life of one message: SES outcomes, then engagement, at realistic rates and delays. */
function messageEvents(r, message, transactional) {
  const t = message.sent_at;
  const out = [event(r, message, "email.sent", t)];
  if (r.chance(0.003)) {
    out.push(
      event(r, message, "email.failed", t + 500, {
        smtp_response: "Message rejected: Email address is not verified.",
      }),
    );
    return out;
  }
  if (r.chance(0.02)) {
    const [bounceType, classification, code, response] = BOUNCES[r.fromCdf(BOUNCE_CDF)];
    out.push(
      event(r, message, "email.bounced", t + 2000 + r.exp(20_000), {
        smtp_code: code,
        smtp_response: response?.replace("{r}", message.recipient) ?? null,
        bounce_type: bounceType,
        bounce_classification: classification,
        suppress: bounceType === "permanent" ? { reason: "hard_bounce", topic: null } : undefined,
      }),
    );
    return out;
  }
  let deliveredAt = t + 1000 + r.exp(3000);
  if (r.chance(0.01)) {
    out.push(
      event(r, message, "email.delayed", t + MINUTE_MS, {
        attempt: 1,
        smtp_code: 421,
        smtp_response: "421 4.7.0 Try again later, closing connection.",
      }),
    );
    deliveredAt = t + 10 * MINUTE_MS + r.exp(20 * MINUTE_MS);
  }
  out.push(
    event(r, message, "email.delivered", deliveredAt, {
      smtp_code: 250,
      smtp_response: `250 2.0.0 OK  ${Math.floor(deliveredAt / 1000)} ${r.hex(10)}.${r.int(100, 999)} - gsmtp`,
    }),
  );
  if (r.chance(0.001)) {
    out.push(
      event(r, message, "email.complained", deliveredAt + r.exp(6 * 60 * MINUTE_MS), {
        complaint_type: r.chance(0.8) ? "abuse" : null,
        suppress: { reason: "complaint", topic: null },
      }),
    );
  }
  if (r.chance(transactional ? 0.55 : 0.32)) {
    let openedAt = deliveredAt + r.exp((transactional ? 20 : 180) * MINUTE_MS);
    const opens = 1 + Math.floor(r.exp(0.7));
    for (let k = 0; k < opens; k++) {
      out.push(
        event(r, message, "email.opened", openedAt, { tracking: trackingFor(r, "open", message, null) }),
      );
      if (r.chance(transactional ? 0.3 : 0.12)) {
        const linkName = r.pick(LINK_NAMES);
        out.push(
          event(r, message, "email.clicked", openedAt + r.exp(MINUTE_MS), {
            tracking: trackingFor(r, "click", message, linkName),
          }),
        );
      }
      openedAt += r.exp(12 * 60 * MINUTE_MS);
    }
  }
  if (!transactional && r.chance(0.003)) {
    out.push(
      event(r, message, "email.unsubscribed", deliveredAt + r.exp(DAY_MS), {
        suppress: { reason: "unsubscribe", topic: message.topic },
      }),
    );
  }
  return out;
}

/** An event as a row of the bulk loader (EVENT_COLUMNS order). */
export function toRow(e) {
  return [
    e.account_id,
    e.occurred_at,
    e.id,
    e.type,
    e.email_id,
    e.message_id,
    e.from,
    e.from_domain,
    e.recipient,
    e.subject,
    e.topic,
    e.campaign,
    e.template_id,
    JSON.stringify(e.tags),
    e.smtp_code,
    e.smtp_response,
    e.bounce_type,
    e.bounce_classification,
    e.complaint_type,
    e.attempt,
    e.tracking && JSON.stringify(e.tracking),
  ];
}

/**
 * An event as its producer queues it (src/pipeline/messages.ts; the event itself is declared in
 * src/db/event-record.ts). SES events carry what the notification carries (common headers and message tags, no registered tags); tracking events carry
 * only what the token holds, and the consumer fills the rest from the registration.
 */
export function toQueueMessage(e) {
  const { suppress, ...record } = e;
  const tracking = ["email.opened", "email.clicked", "email.unsubscribed"].includes(e.type);
  const event = tracking
    ? {
        ...record,
        message_id: null,
        from: null,
        from_domain: null,
        subject: null,
        campaign: null,
        template_id: null,
        tags: [],
      }
    : { ...record, tags: [] };
  return suppress ? { type: "event", event, suppress } : { type: "event", event };
}

/** A message's registration as POST /v1/messages/instrument queues it. */
export function toRegistration(m, registeredAt = m.sent_at - 1000) {
  return {
    type: "register",
    account_id: m.account_id,
    registered_at: registeredAt,
    message: {
      email_id: m.email_id,
      message_id: null,
      from: m.from,
      from_domain: m.from_domain,
      subject: m.subject,
      topic: m.topic,
      campaign: m.campaign,
      template_id: m.template_id,
      tags: m.tags,
    },
  };
}

/**
 * Chunks rows as JSON arrays no larger than maxBytes each (D1 caps a bound string at 2 MB), with
 * at most maxRows rows. Yields { json, rows }.
 */
export function* jsonChunks(rows, { maxBytes = 1_900_000, maxRows = 5000 } = {}) {
  let parts = [];
  let size = 2;
  for (const row of rows) {
    const json = JSON.stringify(row);
    if (parts.length > 0 && (size + json.length + 1 > maxBytes || parts.length >= maxRows)) {
      yield { json: `[${parts.join(",")}]`, rows: parts.length };
      parts = [];
      size = 2;
    }
    parts.push(json);
    size += json.length + 1;
  }
  if (parts.length > 0) yield { json: `[${parts.join(",")}]`, rows: parts.length };
}

/**
 * One event of a given kind for a message, shaped as the model shapes it: a delivery, an open by a
 * person or a proxy, or a permanent bounce that suppresses the address (ingest phase).
 */
export function syntheticEvent(message, kind, seed) {
  const r = rng(seed);
  const at = message.sent_at;
  if (kind === "delivery") {
    return event(r, message, "email.delivered", at + 2500, {
      smtp_code: 250,
      smtp_response: `250 2.0.0 OK  ${Math.floor(at / 1000)} ${r.hex(10)}.${r.int(100, 999)} - gsmtp`,
    });
  }
  if (kind === "open") {
    return event(r, message, "email.opened", at + 3_600_000, {
      tracking: trackingFor(r, "open", message, null),
    });
  }
  if (kind === "bounce") {
    return event(r, message, "email.bounced", at + 4000, {
      smtp_code: 550,
      smtp_response: `550 5.1.1 <${message.recipient}>: Recipient address rejected: User unknown in virtual mailbox table`,
      bounce_type: "permanent",
      bounce_classification: "General",
      suppress: { reason: "hard_bounce", topic: null },
    });
  }
  throw new Error(`unknown kind ${kind}`);
}
