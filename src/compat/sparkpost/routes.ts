import * as z from "zod";
import { actingAccount, principalOf } from "../../auth/middleware";
import type { ErrorType } from "../../lib/errors";
import { type App, route } from "../../lib/openapi";
import { COMMA_LIST, MAX_LIST_VALUES, splitList } from "../../lib/params";
import { type ErrorMapper, surfaceErrorResponses, surfaceErrors } from "../errors";
import { requireSparkPostScope } from "./auth";
import { BOUNCE_CLASSES } from "./bounce-class";
import {
  documentationOf,
  FIELD_DESCRIPTIONS,
  KNOWN_SPARKPOST_TYPES,
  MAPPED_SPARKPOST_TYPES,
  type SparkPostField,
  type SparkPostType,
  sampleOf,
} from "./event-map";
import {
  MAX_KEYWORDS,
  openSparkPostPage,
  SPARKPOST_PREFIX,
  sparkPostQueryRequest,
  streamSparkPostPage,
  toSparkPostQuery,
} from "./query";

/** SparkPost's short error messages, by mailtrail error type; mailtrail's own message is the description. */
const MESSAGES: Record<ErrorType, string> = {
  validation_error: "invalid params",
  signature_error: "invalid params",
  authentication_error: "Unauthorized.",
  permission_error: "Forbidden.",
  not_found: "resource not found",
  method_not_allowed: "method not allowed",
  payload_too_large: "request too large",
  unsupported_media_type: "unsupported media type",
  rate_limit_exceeded: "Too many requests",
  internal_error: "internal server error",
  configuration_error: "internal server error",
  unavailable: "service unavailable",
};

export const sparkPostErrorMapper: ErrorMapper = (error) => ({
  errors: [{ message: MESSAGES[error.type], description: error.message }],
});

const errorSchema = z
  .object({ errors: z.array(z.object({ message: z.string(), description: z.string() })) })
  .meta({ id: "SparkPostError" });
const errors = surfaceErrorResponses(errorSchema);
const tags = ["compat: SparkPost"];
const security = [{ bearer: [] }];

/** Every field any type carries, documented from the one description table; `type` says which apply. */
const sparkPostEventSchema = z
  .object({
    ...Object.fromEntries(
      (Object.keys(FIELD_DESCRIPTIONS) as SparkPostField[]).map((field) => [
        field,
        z.unknown().optional().meta({ description: FIELD_DESCRIPTIONS[field] }),
      ]),
    ),
    type: z.enum(MAPPED_SPARKPOST_TYPES as [SparkPostType, ...SparkPostType[]]),
  })
  .meta({
    id: "SparkPostMessageEvent",
    description:
      "A message event in SparkPost's shape. Each type carries its own fields (see …/documentation): every type " +
      "the common ones (type, event_id, timestamp, message_id, transmission_id, rcpt_to, raw_rcpt_to, " +
      "recipient_domain, friendly_from, msg_from, sending_domain, subject, campaign_id, template_id, rcpt_tags); " +
      "delay, bounce and policy_rejection error_code, reason, raw_reason, bounce_class; delivery, delay and bounce " +
      "num_retries; spam_complaint fbtype; open and click ip_address, user_agent, geo_ip; click target_link_url " +
      "and target_link_name. A field mailtrail does not know is null.",
  });

const MESSAGE_EVENTS_DESCRIPTION = [
  "SparkPost's Events API search over mailtrail's events, for clients written against SparkPost: point the",
  "client's origin at `…/compat/sparkpost` and send mailtrail's JWT as the API key (`Authorization: <JWT>`,",
  "or `Bearer <JWT>`), with `events:read`.",
  "\n\n**Window**: `from` inclusive (default 24 hours ago, or 24 hours before `to` when `to` is earlier),",
  "`to` exclusive (default now), ISO 8601; clamped silently to the plan's retention.",
  "\n\n**Filters** are lists split at `delimiter` (default `,`); values are OR'd within a filter, filters AND'd.",
  "`recipients` and `from_addresses` compare case-insensitively; `event_ids`, `messages`/`message_ids`",
  "(the Message-ID header or SES message id), `transmissions`/`transmission_ids` (mailtrail's email_id) exactly.",
  "Keyword search on `recipient_domains`, `sending_domains`, `subjects`, `reasons`, `campaigns`, `templates`:",
  "a field's words are its value split at spaces, dashes and underscores (and periods for the two domain",
  "filters); a value matches when each of its words is one of the field's words (`blackfriday` matches",
  "`blackfriday-specials` and `BlackFriday_members`, `friday` matches neither). Case is folded for ASCII",
  "letters (as SQLite does); other letters compare exactly. `reasons` searches the raw SMTP response.",
  "`bounce_classes` takes SparkPost's classification codes (1-100). `sending_ips`, `ip_pools`, `subaccounts`,",
  "`mailbox_providers`, `mailbox_provider_regions`, `ab_tests`, `ab_test_versions` are accepted; mailtrail",
  "has none of those, so no event matches them; `ab_test_versions` requires `ab_tests`. Unknown parameters",
  "are a 400.",
  `\n\n**Limits**: a list takes at most ${MAX_LIST_VALUES} values; a keyword filter at most ${MAX_KEYWORDS} keywords`,
  "in all (the words of all its values); beyond, 400 naming the parameter.",
  "\n\n**Rules between fields**: `delimiter` (one character, default `,`) splits every list, so a generated",
  "client that sends arrays comma-joined keeps the default; `from` must be before `to`.",
  "\n\n**Mapping**: email.sent→injection, delivered→delivery, delayed→delay, bounced→bounce,",
  "complained→spam_complaint, failed and suppressed→policy_rejection, opened→open, clicked→click,",
  "unsubscribed→list_unsubscribe. Each type carries its SparkPost fields (see …/documentation); a field",
  "mailtrail does not know is null; `error_code`, `num_retries` and `bounce_class` are strings as in",
  "SparkPost; `reason` is the SMTP response with IP addresses canonicalized to a.b.c.d, `raw_reason` as",
  "received; spam_complaint also carries `fbtype` (the complaint feedback type). `bounce_class` is derived",
  "from SES's bounce type, subtype and enhanced status code: undetermined 1; NoEmail and other hard",
  "bounces 10; SES suppression list, email.suppressed and email.failed 25; UnsubscribedRecipient 90;",
  "MailboxFull or x.2.2 22; MessageTooLarge or x.3.4 23; ContentRejected 52; AttachmentRejected 53;",
  "soft x.1.2/x.4.3/x.4.4 21, soft x.4.1/x.4.2/x.4.7 24, soft x.7.1 54, x.7.x 50; other soft bounces 20;",
  "delays 70.",
  "\n\n**Paging**: `per_page` 1-10,000 (default 1,000); follow `links.next` (the path under",
  "`/compat/sparkpost`, every filter repeated, the next `cursor`) until `links` is `{}`. A page reads at",
  "most 10,000 rows of D1: with a rare filter it may hold fewer than `per_page` results (even none) and",
  "still have `links.next`. `total_count` is counted once, on the `initial` page (at most once a minute per",
  "account and search); later pages carry that figure. With `events` as the only filter it is read from the",
  "hourly event counts (one row per hour of the window, plus the events of its partial first and last",
  "hours); with any other filter, or after an erasure that removed events of the window, it counts the",
  "window's events. The body is streamed, so a 10,000-event page stays within the Worker's memory.",
].join(" ");

export function registerSparkPostRoutes(app: App): void {
  app.use(`${SPARKPOST_PREFIX}/*`, surfaceErrors(sparkPostErrorMapper));

  route(
    app,
    {
      method: "get",
      path: `${SPARKPOST_PREFIX}/api/v1/events/message`,
      operationId: "sparkpostSearchMessageEvents",
      summary: "Search message events (SparkPost Events API)",
      description: MESSAGE_EVENTS_DESCRIPTION,
      tags,
      security,
      request: { query: sparkPostQueryRequest },
      responses: {
        200: {
          description: "A page of message events",
          content: {
            "application/json": {
              schema: z
                .object({
                  results: z.array(sparkPostEventSchema),
                  total_count: z.number().int(),
                  links: z.object({ next: z.string().optional() }),
                })
                .meta({ id: "SparkPostMessageEventPage" }),
            },
          },
        },
        ...errors,
      },
    },
    requireSparkPostScope("events:read"),
    async (c, input) => {
      const query = toSparkPostQuery(input.query, new URL(c.req.url).searchParams);
      const accountId = actingAccount(principalOf(c), query.accountId);
      const page = await openSparkPostPage(c.env, accountId, query);
      return new Response(streamSparkPostPage(page), {
        headers: { "Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store" },
      });
    },
  );

  route(
    app,
    {
      method: "get",
      path: `${SPARKPOST_PREFIX}/api/v1/events/message/documentation`,
      operationId: "sparkpostMessageEventsDocumentation",
      summary: "Describe the message event fields (SparkPost)",
      description:
        "As SparkPost documents it: `results` holds one object per event type mailtrail produces, mapping each " +
        "field of that type to its `description` and a `sampleValue` (the sample's value).",
      tags,
      security,
      request: { query: z.object({}) },
      responses: {
        200: {
          description: "Field descriptions per event type",
          content: {
            "application/json": {
              schema: z
                .object({
                  results: z.array(
                    z.record(z.string(), z.object({ description: z.string(), sampleValue: z.unknown() })),
                  ),
                })
                .meta({ id: "SparkPostDocumentation" }),
            },
          },
        },
        ...errors,
      },
    },
    requireSparkPostScope("events:read"),
    (c) => {
      return c.json({ results: MAPPED_SPARKPOST_TYPES.map(documentationOf) });
    },
  );

  route(
    app,
    {
      method: "get",
      path: `${SPARKPOST_PREFIX}/api/v1/events/message/samples`,
      operationId: "sparkpostMessageEventSamples",
      summary: "Sample message events (SparkPost)",
      description:
        "One sample event per type in `events` (default: every type mailtrail produces), in the shape the search " +
        "returns, with the values of SparkPost's own samples. SparkPost types mailtrail never produces are " +
        `accepted and have no sample. Bounce classification codes: ${Object.entries(BOUNCE_CLASSES)
          .map(([code, c]) => `${code} ${c.name}`)
          .join(", ")}.`,
      tags,
      security,
      request: {
        query: z.object({
          events: z
            .preprocess(
              // `events=` with no value asks for every type, as leaving it out does.
              (value) => (value === "" ? undefined : splitList(value)),
              z
                .array(
                  z.enum(KNOWN_SPARKPOST_TYPES as [string, ...string[]], {
                    error: "must be SparkPost message event types",
                  }),
                )
                .max(KNOWN_SPARKPOST_TYPES.length)
                .optional(),
            )
            .optional()
            .meta({ ...COMMA_LIST, description: "event types; default all" }),
        }),
      },
      responses: {
        200: {
          description: "Sample events",
          content: {
            "application/json": {
              schema: z.object({ results: z.array(sparkPostEventSchema) }).meta({ id: "SparkPostSamples" }),
            },
          },
        },
        ...errors,
      },
    },
    requireSparkPostScope("events:read"),
    (c, { query }) => {
      const types = query.events
        ? MAPPED_SPARKPOST_TYPES.filter((t) => query.events?.includes(t))
        : MAPPED_SPARKPOST_TYPES;
      return c.json({ results: types.map(sampleOf) });
    },
  );
}
