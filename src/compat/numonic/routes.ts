import * as z from "zod";
import { getAccountPlan } from "../../accounts/plans";
import { actingAccount, principalOf, requireScope } from "../../auth/middleware";
import type { Env } from "../../env";
import type { EventType } from "../../events/record";
import type { EventDbRow } from "../../events/serialize";
import { ApiError, validationError } from "../../lib/errors";
import { type App, jsonContent, route } from "../../lib/openapi";
import { accountIdParam, DAY_MS, integerParam, limitParam } from "../../lib/params";
import { shardTotalKey, totalKey } from "../../lib/totals";
import { offsetAcross } from "../../shards/across";
import { accountShards, homeDb, homeDbOf } from "../../shards/route";
import { offsetPage } from "../../store";
import { emailAddressSchema } from "../../suppressions/address";
import { toSuppression } from "../../suppressions/schema";
import { removeEntries, offsetPage as suppressionPage } from "../../suppressions/store";
import { successFalseErrorSchema, successFalseMapper, surfaceErrorResponses, surfaceErrors } from "../errors";
import { MAX_OFFSET_END } from "../params";

/** Numonic's events and suppression APIs (SPEC §16) over mailtrail's events and suppressions. */

export const NUMONIC_PREFIX = "/compat/numonic";

/** The one mapping table: the mailtrail types Numonic has, and their Numonic names. */
export const NUMONIC_TYPES = {
  "email.delivered": "Delivery",
  "email.bounced": "Bounce",
  "email.complained": "Complaint",
  "email.suppressed": "Suppression",
} as const satisfies Partial<Record<EventType, string>>;
type NumonicType = (typeof NUMONIC_TYPES)[keyof typeof NUMONIC_TYPES];
const BY_NUMONIC = Object.fromEntries(
  Object.entries(NUMONIC_TYPES).map(([m, n]) => [n, m as EventType]),
) as Record<NumonicType, EventType>;
const BOUNCE_TYPES: Record<string, string> = {
  permanent: "Permanent",
  transient: "Transient",
  undetermined: "Undetermined",
};

export function toNumonicEvent(row: EventDbRow) {
  const type = NUMONIC_TYPES[row.type as keyof typeof NUMONIC_TYPES];
  return {
    id: row.id,
    email_id: row.email_id,
    event_type: type,
    event_timestamp: new Date(row.occurred_at).toISOString(),
    recipient: row.recipient,
    ...(type === "Bounce"
      ? {
          bounce_type: row.bounce_type === null ? null : (BOUNCE_TYPES[row.bounce_type] ?? null),
          bounce_subtype: row.bounce_classification,
        }
      : {}),
    ...(type === "Complaint" ? { complaint_type: row.complaint_type } : {}),
  };
}

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;

const pagination = z.object({
  page: z.number().int(),
  limit: z.number().int(),
  total: z.number().int(),
  total_pages: z.number().int(),
});
const paginationOf = (page: number, limit: number, total: number) => ({
  page,
  limit,
  total,
  total_pages: Math.ceil(total / limit),
});

const NUMONIC_TYPE_NAMES = Object.values(NUMONIC_TYPES) as [NumonicType, ...NumonicType[]];

/** `page` and `limit` of Numonic's lists: page × limit at most MAX_OFFSET_END (SPEC §18). */
const pageParams = {
  page: integerParam(1, MAX_OFFSET_END)
    .default(1)
    .meta({ description: `page number, from 1; default 1; page × limit at most ${MAX_OFFSET_END}` }),
  limit: limitParam(MAX_LIMIT, DEFAULT_LIMIT),
};

/** The rule between `page` and `limit`: the page ends within the first MAX_OFFSET_END rows. */
function checkPage(page: number, limit: number): void {
  if (page * limit > MAX_OFFSET_END)
    throw validationError(
      "page",
      `page × limit must be at most ${MAX_OFFSET_END}: narrow the search instead`,
    );
}

const numonicEventsQuery = z.object({
  type: z
    .enum(NUMONIC_TYPE_NAMES, { error: `must be one of ${NUMONIC_TYPE_NAMES.join(", ")}` })
    .optional()
    .meta({ description: "only events of this type" }),
  ...pageParams,
  account_id: accountIdParam,
});

export async function listNumonicEvents(
  env: Env,
  accountId: string,
  query: { type?: NumonicType; page: number; limit: number },
  now = Date.now(),
) {
  const { page, limit } = query;
  checkPage(page, limit);
  const types: EventType[] = query.type
    ? [BY_NUMONIC[query.type]]
    : (Object.keys(NUMONIC_TYPES) as EventType[]);
  const plan = await getAccountPlan(env, accountId);
  const shards = [...(await accountShards(env, accountId)).read];
  const { rows, total, rowsRead } = await offsetAcross(
    env,
    shards,
    (page - 1) * limit,
    limit,
    (db, offset, take, shard) =>
      offsetPage(db, accountId, {
        window: { start: now - plan.retention_days * DAY_MS, end: now },
        types,
        emailId: null,
        limit: take,
        offset,
        // Counted at most once a minute per account, type and shard (SPEC §18), not on every page.
        totalKey: shardTotalKey(totalKey(accountId, "numonic/events", [["type", types.join(",")]]), shard),
      }),
  );
  return {
    body: {
      success: true as const,
      data: { events: rows.map(toNumonicEvent), pagination: paginationOf(page, limit, total) },
    },
    rowsRead,
  };
}

const numonicEventSchema = z
  .object({
    id: z.string(),
    email_id: z.string(),
    event_type: z.enum(["Delivery", "Bounce", "Complaint", "Suppression"]),
    event_timestamp: z.string(),
    recipient: z.string(),
    bounce_type: z.enum(["Permanent", "Transient", "Undetermined"]).nullable().optional(),
    bounce_subtype: z.string().nullable().optional(),
    complaint_type: z.string().nullable().optional(),
  })
  .meta({ id: "NumonicEvent" });

const errorSchema = successFalseErrorSchema("NumonicError");
const tags = ["compat: Numonic"];
const security = [{ bearer: [] }];

export function registerNumonicRoutes(app: App): void {
  app.use(`${NUMONIC_PREFIX}/*`, surfaceErrors(successFalseMapper));

  route(
    app,
    {
      method: "get",
      path: `${NUMONIC_PREFIX}/api/v1/events`,
      operationId: "numonicListEvents",
      summary: "List delivery events (Numonic)",
      description:
        "Numonic's events list over mailtrail's events: email.delivered→Delivery, email.bounced→Bounce, " +
        "email.complained→Complaint, email.suppressed→Suppression; no other type is returned. Newest first over the " +
        "plan's whole retention. `bounce_type` (Permanent, Transient or Undetermined) and `bounce_subtype` (SES's " +
        "bounceSubType) are present on Bounce events only, `complaint_type` on Complaint events only (null when the " +
        "ISP gave none). `page` (from 1, default 1) and `limit` (1-100, default 50) page the list; `total_pages` is " +
        "ceil(total / limit) and a page past it is empty. Rule between fields: `page × limit` at most 10,000 " +
        "(SPEC §18: a page reads the rows before it); beyond, 400 naming `page`. Events arriving while a client pages shift later pages " +
        "(offset paging). Costs: a page reads the rows before it; `total` reads the window, at most once a minute per account and type (it may lag by that much). " +
        "Errors are `{success: false, error: {code, message}}` with mailtrail's status codes.",
      tags,
      security,
      request: {
        query: numonicEventsQuery,
      },
      responses: {
        200: jsonContent(
          z
            .object({
              success: z.literal(true),
              data: z.object({ events: z.array(numonicEventSchema), pagination }),
            })
            .meta({ id: "NumonicEventList" }),
          "A page of events",
        ),
        ...surfaceErrorResponses(errorSchema),
      },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      return c.json((await listNumonicEvents(c.env, accountId, query)).body);
    },
  );

  route(
    app,
    {
      method: "get",
      path: `${NUMONIC_PREFIX}/api/v1/suppression`,
      operationId: "numonicListSuppressions",
      summary: "List suppressed addresses (Numonic)",
      description:
        "Every suppression entry of the account, newest first, `{id, email, reason, suppressed_at}`. mailtrail's " +
        "reasons are hard_bounce, soft_bounce, complaint, unsubscribe and manual (an erased address has `email: null`); " +
        "an address unsubscribed from one topic has an " +
        "entry per topic (each its own id). `page` from 1 (default 1), `limit` 1-100 (default 50). Rule between " +
        "fields: `page × limit` at most 10,000 (SPEC §18); beyond, 400 naming `page`. `total` is counted at most once " +
        "a minute per account (it may lag the page by that much).",
      tags,
      security,
      request: {
        query: z.object({ ...pageParams, account_id: accountIdParam }),
      },
      responses: {
        200: jsonContent(
          z
            .object({
              success: z.literal(true),
              data: z.array(
                z.object({
                  id: z.string(),
                  email: z.string().nullable().meta({ description: "null for an erased address (§20)" }),
                  reason: z.string(),
                  suppressed_at: z.string(),
                }),
              ),
              pagination,
            })
            .meta({ id: "NumonicSuppressionList" }),
          "A page of suppression entries",
        ),
        ...surfaceErrorResponses(errorSchema),
      },
    },
    requireScope("suppressions:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const { page, limit } = query;
      checkPage(page, limit);
      const account = await accountShards(c.env, accountId);
      const { rows, total } = await suppressionPage(
        homeDb(c.env, account),
        accountId,
        (page - 1) * limit,
        limit,
        {
          // Counted at most once a minute per account (SPEC §18), not on every page.
          totalKey: shardTotalKey(totalKey(accountId, "numonic/suppression", []), account.home),
        },
      );
      const data = await Promise.all(
        rows.map(async (row) => {
          const entry = await toSuppression(row);
          return {
            id: entry.id,
            email: entry.email,
            reason: entry.reason,
            suppressed_at: entry.suppressed_at,
          };
        }),
      );
      return c.json({
        success: true as const,
        data,
        pagination: paginationOf(page, limit, total),
      });
    },
  );

  route(
    app,
    {
      method: "delete",
      path: `${NUMONIC_PREFIX}/api/v1/suppression/{email}`,
      operationId: "numonicRemoveSuppression",
      summary: "Remove a suppressed address (Numonic)",
      description:
        "Removes every entry of the address (all topics), in D1 and the KV mirror. The address is URL-encoded " +
        "(`@` as `%40`) and matched case-insensitively; an address with no entry is 404 NOT_FOUND.",
      tags,
      security,
      request: {
        params: z.object({ email: emailAddressSchema.meta({ description: "the address, URL-encoded" }) }),
        query: z.object({ account_id: accountIdParam }),
      },
      responses: {
        200: jsonContent(
          z
            .object({ success: z.literal(true), message: z.string() })
            .meta({ id: "NumonicSuppressionRemoved" }),
          "Removed",
        ),
        ...surfaceErrorResponses(errorSchema, true),
      },
    },
    requireScope("suppressions:write"),
    async (c, { params, query }) => {
      const { email } = params;
      const accountId = actingAccount(principalOf(c), query.account_id);
      const removed = await removeEntries(c.env, await homeDbOf(c.env, accountId), accountId, email, null);
      if (removed === 0) throw new ApiError("not_found", "No suppression entry found for this address");
      return c.json({ success: true as const, message: `Suppression removed for ${email}` });
    },
  );
}
