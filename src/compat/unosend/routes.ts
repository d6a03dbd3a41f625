import * as z from "zod";
import { getAccountPlan } from "../../accounts/plans";
import { actingAccount, principalOf, requireScope } from "../../auth/middleware";
import type { Env } from "../../env";
import { offsetEvents } from "../../events/hour-reads";
import { clampWindow } from "../../events/query";
import type { EventType, Tracking } from "../../events/record";
import type { EventDbRow } from "../../events/serialize";
import { validationError } from "../../lib/errors";
import { type App, jsonContent, route } from "../../lib/openapi";
import { accountIdParam, DAY_MS, exactParam, integerParam, limitParam } from "../../lib/params";
import { totalKey } from "../../lib/totals";
import { shardsToRead } from "../../shards/across";
import { accountShards } from "../../shards/route";
import { successFalseErrorSchema, successFalseMapper, surfaceErrorResponses, surfaceErrors } from "../errors";
import { MAX_OFFSET_END } from "../params";
import { registerUnosendMetricsRoute } from "./metrics";
import { registerUnosendSuppressionRoutes } from "./suppressions";

/** Unosend's events API (SPEC §16) over mailtrail's events. */

export const UNOSEND_PREFIX = "/compat/unosend";

/** The one mapping table: the mailtrail types Unosend has, and their Unosend names. */
export const UNOSEND_TYPES = {
  "email.sent": "sent",
  "email.delivered": "delivered",
  "email.opened": "opened",
  "email.clicked": "clicked",
  "email.bounced": "bounced",
  "email.complained": "complained",
  "email.unsubscribed": "unsubscribed",
} as const satisfies Partial<Record<EventType, string>>;
type UnosendType = (typeof UNOSEND_TYPES)[keyof typeof UNOSEND_TYPES];
const BY_UNOSEND = Object.fromEntries(
  Object.entries(UNOSEND_TYPES).map(([m, u]) => [u, m as EventType]),
) as Record<UnosendType, EventType>;
/** Unosend calls bounces hard or soft: SES's permanent is hard; transient and undetermined are soft (not suppressed). */
const BOUNCE_TYPES: Record<string, string> = { permanent: "hard", transient: "soft", undetermined: "soft" };

/** `metadata` per type, as the seed lists it. */
function metadataOf(type: UnosendType, row: EventDbRow): Record<string, unknown> {
  const tracking = row.tracking === null ? null : (JSON.parse(row.tracking) as Tracking);
  switch (type) {
    case "sent":
      return { message_id: row.message_id };
    case "delivered":
      return { smtp_response: row.smtp_response };
    case "opened":
      return { user_agent: tracking?.user_agent ?? null, ip_address: tracking?.ip_address ?? null };
    case "clicked":
      return { url: tracking?.url ?? null, user_agent: tracking?.user_agent ?? null };
    case "bounced":
      return {
        bounce_type: row.bounce_type === null ? null : (BOUNCE_TYPES[row.bounce_type] ?? null),
        reason: row.smtp_response,
      };
    case "complained":
      return { complaint_type: row.complaint_type };
    case "unsubscribed":
      return {};
  }
}

export function toUnosendEvent(row: EventDbRow) {
  const type = UNOSEND_TYPES[row.type as keyof typeof UNOSEND_TYPES];
  return {
    id: row.id,
    email_id: row.email_id,
    type,
    metadata: metadataOf(type, row),
    created_at: new Date(row.occurred_at).toISOString(),
    email: { to: [row.recipient], subject: row.subject },
  };
}

const DEFAULT_DAYS = 7;
const MAX_DAYS = 90;
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;
const UNOSEND_TYPE_NAMES = Object.values(UNOSEND_TYPES) as [UnosendType, ...UnosendType[]];

const unosendEventsQuery = z.object({
  email_id: exactParam(256).optional().meta({ description: "events of one email" }),
  event_type: z
    .enum(UNOSEND_TYPE_NAMES, { error: `must be one of ${UNOSEND_TYPE_NAMES.join(", ")}` })
    .optional()
    .meta({ description: "only events of this type" }),
  days: integerParam(1, MAX_DAYS).default(DEFAULT_DAYS).meta({ description: "1-90, default 7" }),
  limit: limitParam(MAX_LIMIT, DEFAULT_LIMIT),
  offset: integerParam(0, MAX_OFFSET_END - 1)
    .default(0)
    .meta({ description: `from 0, default 0; offset + limit at most ${MAX_OFFSET_END}` }),
  account_id: accountIdParam,
});
type UnosendEventsQuery = Omit<z.output<typeof unosendEventsQuery>, "account_id">;

export async function listUnosendEvents(
  env: Env,
  accountId: string,
  query: UnosendEventsQuery,
  now = Date.now(),
) {
  const { days, limit, offset } = query;
  // The rule between offset and limit (SPEC §18): a page reads the rows before it.
  if (offset + limit > MAX_OFFSET_END)
    throw validationError(
      "offset",
      `offset + limit must be at most ${MAX_OFFSET_END}: narrow the search instead`,
    );
  const eventType = query.event_type ?? null;
  const types: EventType[] = eventType
    ? [BY_UNOSEND[eventType]]
    : (Object.keys(UNOSEND_TYPES) as EventType[]);
  const emailId = query.email_id ?? null;
  const plan = await getAccountPlan(env, accountId);
  const window = clampWindow({ start: now - days * DAY_MS, end: now }, plan.retention_days, now);
  const account = await accountShards(env, accountId);
  const { rows, total, rowsRead, shardRowsRead, short } = await offsetEvents(
    env,
    shardsToRead(account, emailId),
    accountId,
    {
      window,
      types,
      emailId,
      limit,
      offset,
      // Counted at most once a minute per account, query and shard (SPEC §18), not on every page.
      totalKey: totalKey(accountId, "unosend/events", [
        ["days", String(days)],
        ["types", types.join(",")],
        ["email_id", emailId ?? ""],
      ]),
    },
  );
  return {
    body: {
      success: true as const,
      data: {
        data: rows.map(toUnosendEvent),
        pagination: { total, limit, offset, has_more: offset + rows.length < total },
        filters: { email_id: emailId, event_type: eventType, days },
      },
    },
    rowsRead,
    shardRowsRead,
    short,
  };
}

const unosendEventSchema = z
  .object({
    id: z.string(),
    email_id: z.string(),
    type: z.enum(Object.values(UNOSEND_TYPES) as [UnosendType, ...UnosendType[]]),
    metadata: z.record(z.string(), z.unknown()),
    created_at: z.string(),
    email: z.object({ to: z.array(z.string()), subject: z.string().nullable() }),
  })
  .meta({ id: "UnosendEvent" });

const errorSchema = successFalseErrorSchema("UnosendError");

const DESCRIPTION =
  "Unosend's events API over mailtrail's events: email.sent→sent, delivered→delivered, opened→opened, " +
  "clicked→clicked, bounced→bounced, complained→complained, unsubscribed→unsubscribed; no other type is returned. " +
  "`metadata` per type: sent {message_id}; delivered {smtp_response}; opened {user_agent, ip_address}; clicked " +
  "{url, user_agent}; bounced {bounce_type: hard (SES permanent) or soft (transient, undetermined), reason (the SMTP " +
  "response)}; complained {complaint_type}; unsubscribed {}. A value mailtrail lacks is null. `email.to` is the " +
  "event's recipient. `days` (1-90, default 7) looks back from now, clamped silently to the plan's retention; " +
  "`limit` 1-100 (default 50); `offset` from 0; `has_more` is offset + returned < total. Newest first. " +
  "Rule between fields: `offset + limit` at most 10,000 (SPEC §18); beyond, 400 naming `offset`. " +
  "Costs: without `email_id` the page is located by the hourly event counts, not by reading the rows before " +
  "it: one row per hour of the window, the events of the window's partial first and last hours and those of " +
  "the hour holding the page up to it. At most 10,000 D1 rows per shard (SPEC §18): when one hour holds so " +
  "many events of other types that the page does not fit, `data` holds the events found up to there, in " +
  "order, fewer than `limit` (possibly none), with `total` still exact. `total` is counted at most once a " +
  "minute per account and query (it may lag by that much). After an erasure (`POST /v1/erasures`) that " +
  "removed events of the window the page walks the rows before it instead, within the same budget. " +
  "Errors are `{success: false, error: {code, message}}` with mailtrail's status codes.";

export function registerUnosendRoutes(app: App): void {
  app.use(`${UNOSEND_PREFIX}/*`, surfaceErrors(successFalseMapper));
  registerUnosendMetricsRoute(app);
  registerUnosendSuppressionRoutes(app);
  for (const [path, operationId] of [
    [`${UNOSEND_PREFIX}/api/v1/events`, "unosendListEvents"],
    [`${UNOSEND_PREFIX}/v1/events`, "unosendListEventsV1"],
  ] as const) {
    route(
      app,
      {
        method: "get",
        path,
        operationId,
        summary: `Get email events (Unosend)${path.includes("/api/") ? "" : ", alias without /api"}`,
        description: DESCRIPTION,
        tags: ["compat: Unosend"],
        security: [{ bearer: [] }],
        request: {
          query: unosendEventsQuery,
        },
        responses: {
          200: jsonContent(
            z
              .object({
                success: z.literal(true),
                data: z.object({
                  data: z.array(unosendEventSchema),
                  pagination: z.object({
                    total: z.number().int(),
                    limit: z.number().int(),
                    offset: z.number().int(),
                    has_more: z.boolean(),
                  }),
                  filters: z.object({
                    email_id: z.string().nullable(),
                    event_type: z.string().nullable(),
                    days: z.number().int(),
                  }),
                }),
              })
              .meta({ id: "UnosendEventList" }),
            "A page of events",
          ),
          ...surfaceErrorResponses(errorSchema),
        },
      },
      requireScope("events:read"),
      async (c, { query }) => {
        const { account_id, ...input } = query;
        const accountId = actingAccount(principalOf(c), account_id);
        return c.json((await listUnosendEvents(c.env, accountId, input)).body);
      },
    );
  }
}
