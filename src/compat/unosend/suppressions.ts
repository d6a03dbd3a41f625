import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../../auth/middleware";
import type { SuppressionRow } from "../../db/suppressions";
import type { Env } from "../../env";
import { fromBase64url, toBase64url } from "../../lib/base64";
import { ApiError, validationError } from "../../lib/errors";
import { type App, jsonContent, route } from "../../lib/openapi";
import { accountIdParam, integerParam, limitParam } from "../../lib/params";
import { shardTotalKey, totalKey } from "../../lib/totals";
import { SUPPRESSION_REASONS } from "../../pipeline/messages";
import { accountShards, homeDb, homeDbOf } from "../../shards/route";
import { emailAddressSchema, normalizeEmail } from "../../suppressions/address";
import { toSuppression } from "../../suppressions/schema";
import {
  addManual,
  EVERY_TOPIC,
  entriesOf,
  removeEntries,
  offsetPage as suppressionPage,
} from "../../suppressions/store";
import { successFalseErrorSchema, surfaceErrorResponses } from "../errors";
import { MAX_OFFSET_END } from "../params";

/**
 * Unosend's suppressions (SPEC §16, what `@unosend/node`'s `suppressions.*` call) over mailtrail's
 * suppression list. An entry's id here is reversible (`uns_` + base64url of its address and topic),
 * so `GET`/`DELETE /suppressions/{id}` are primary-key reads, not a search of the list; an address
 * (URL-encoded) is accepted in its place and names its every-topic entry. An erased address's hashed
 * entry (SPEC §20) shows `email: null`; its id carries the hashed key, never the address.
 */

const UNOSEND = "/compat/unosend/v1";
const tags = ["compat: Unosend"];
const errorSchema = successFalseErrorSchema("UnosendError");
const MAX_PER_PAGE = 100;
const DEFAULT_PER_PAGE = 20;

const HASHED_KEY = /^#[0-9a-f]{64}$/;

export const unosendSuppressionId = (row: Pick<SuppressionRow, "email" | "topic">) =>
  `uns_${toBase64url(new TextEncoder().encode(`${row.email}\n${row.topic}`))}`;

function keyOfId(id: string): { email: string; topic: string | null } | null {
  if (id.startsWith("uns_")) {
    const bytes = fromBase64url(id.slice(4));
    if (!bytes) return null;
    const [email, topic, ...rest] = new TextDecoder().decode(bytes).split("\n");
    if (rest.length > 0 || email === undefined || topic === undefined) return null;
    // A hashed entry's key column (db/suppressions.ts hashedKey) is looked up as it is.
    if (HASHED_KEY.test(email)) return { email, topic };
    const normal = normalizeEmail(email);
    return normal === null ? null : { email: normal, topic };
  }
  const email = normalizeEmail(id);
  return email === null ? null : { email, topic: null };
}

const entrySchema = z
  .object({
    id: z.string().meta({ description: "uns_…: this surface's id of the entry (its address and topic)" }),
    email: z.string().nullable().meta({ description: "null for an erased address's hashed entry (§20)" }),
    reason: z.enum(SUPPRESSION_REASONS),
    source_email_id: z.string().nullable(),
    metadata: z.object({ topic: z.string().nullable(), expires_at: z.string().nullable() }),
    created_at: z.string(),
  })
  .meta({ id: "UnosendSuppression" });

/** The §10 entry (suppressions/schema.ts) in Unosend's shape. */
async function toEntry(row: SuppressionRow) {
  const entry = await toSuppression(row);
  return {
    id: unosendSuppressionId(row),
    email: entry.email,
    reason: entry.reason,
    source_email_id: entry.email_id,
    metadata: { topic: entry.topic, expires_at: entry.expires_at },
    created_at: entry.suppressed_at,
  };
}

async function entryById(env: Env, accountId: string, id: string) {
  const key = keyOfId(id);
  const rows = key ? await entriesOf(env, await homeDbOf(env, accountId), accountId, key.email) : [];
  const row = key ? rows.find((r) => r.topic === (key.topic ?? EVERY_TOPIC)) : undefined;
  if (!row) throw new ApiError("not_found", `no suppression ${id}`);
  return row;
}

const createBody = z
  .object({
    email: emailAddressSchema.meta({ description: "the address to suppress; lowercased" }),
    reason: z.enum(SUPPRESSION_REASONS).optional().meta({ description: "default manual" }),
  })
  .strict()
  .meta({ id: "UnosendCreateSuppression" });

const idPath = z.object({
  id: z.string().max(1024).meta({ description: "uns_…, or the address URL-encoded" }),
});

export function registerUnosendSuppressionRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: `${UNOSEND}/suppressions`,
      operationId: "unosendListSuppressions",
      summary: "List suppressions (Unosend)",
      description:
        "Newest first, `page` from 1, `per_page` 1-100 (default 20), optional `reason`. `meta` gives `total`, " +
        "`page`, `page_size` and `pages`. Offset paging serves the first 10,000 entries (§18): `page × per_page` at most " +
        "10,000; a page beyond is 400 naming `page`. `meta.total` is counted at most once a minute per account and " +
        "`reason` (it may lag the page by that much).",
      tags,
      security: [{ bearer: [] }],
      request: {
        query: z.object({
          page: integerParam(1, MAX_OFFSET_END).default(1).meta({ description: "from 1, default 1" }),
          per_page: limitParam(MAX_PER_PAGE, DEFAULT_PER_PAGE),
          reason: z
            .enum(SUPPRESSION_REASONS, { error: `must be one of ${SUPPRESSION_REASONS.join(", ")}` })
            .optional(),
          account_id: accountIdParam,
        }),
      },
      responses: {
        200: jsonContent(
          z
            .object({
              success: z.literal(true),
              data: z.array(entrySchema),
              meta: z.object({
                total: z.number().int(),
                page: z.number().int(),
                page_size: z.number().int(),
                pages: z.number().int(),
              }),
            })
            .meta({ id: "UnosendSuppressionList" }),
          "A page of entries",
        ),
        ...surfaceErrorResponses(errorSchema),
      },
    },
    requireScope("suppressions:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const perPage = query.per_page;
      const page = query.page;
      if (page * perPage > MAX_OFFSET_END)
        throw validationError("page", `page reaches past the first ${MAX_OFFSET_END} entries`);
      const account = await accountShards(c.env, accountId);
      const reason = query.reason ?? null;
      const { rows, total } = await suppressionPage(
        homeDb(c.env, account),
        accountId,
        (page - 1) * perPage,
        perPage,
        {
          reason,
          // Counted at most once a minute per account and reason (SPEC §18), not on every page.
          totalKey: shardTotalKey(
            totalKey(accountId, "unosend/suppressions", [["reason", reason ?? ""]]),
            account.home,
          ),
        },
      );
      return c.json({
        success: true as const,
        data: await Promise.all(rows.map(toEntry)),
        meta: { total, page, page_size: perPage, pages: Math.ceil(total / perPage) },
      });
    },
  );

  route(
    app,
    {
      method: "post",
      path: `${UNOSEND}/suppressions`,
      operationId: "unosendCreateSuppression",
      summary: "Suppress an address (Unosend)",
      description:
        "Adds an every-topic entry with `reason` (default manual): `201` with the entry, or `200` with the existing one, unchanged.",
      tags,
      security: [{ bearer: [] }],
      request: {
        query: z.object({ account_id: accountIdParam }),
        body: { content: { "application/json": { schema: createBody } }, required: true },
      },
      responses: {
        200: jsonContent(z.object({ success: z.literal(true), data: entrySchema }), "Already suppressed"),
        201: jsonContent(
          z.object({ success: z.literal(true), data: entrySchema }).meta({ id: "UnosendSuppressionCreated" }),
          "Suppressed",
        ),
        ...surfaceErrorResponses(errorSchema),
      },
    },
    requireScope("suppressions:write"),
    async (c, { query, body }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const { entry, created } = await addManual(
        c.env,
        await homeDbOf(c.env, accountId),
        accountId,
        body.email,
        EVERY_TOPIC,
        undefined,
        Date.now(),
        body.reason ?? "manual",
      );
      return c.json({ success: true as const, data: await toEntry(entry) }, created ? 201 : 200);
    },
  );

  route(
    app,
    {
      method: "get",
      path: `${UNOSEND}/suppressions/{id}`,
      operationId: "unosendGetSuppression",
      summary: "Get a suppression (Unosend)",
      description:
        "By its `uns_…` id (as the list and create answer it), or by the address, URL-encoded (its every-topic entry); another account's entry is 404.",
      tags,
      security: [{ bearer: [] }],
      request: { params: idPath, query: z.object({ account_id: accountIdParam }) },
      responses: {
        200: jsonContent(z.object({ success: z.literal(true), data: entrySchema }), "The entry"),
        ...surfaceErrorResponses(errorSchema, true),
      },
    },
    requireScope("suppressions:read"),
    async (c, { params, query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      return c.json({
        success: true as const,
        data: await toEntry(await entryById(c.env, accountId, params.id)),
      });
    },
  );

  route(
    app,
    {
      method: "delete",
      path: `${UNOSEND}/suppressions/{id}`,
      operationId: "unosendDeleteSuppression",
      summary: "Remove a suppression (Unosend)",
      description: "Removes the entry (D1 and the KV mirror): `{success: true, data: {id, deleted: true}}`.",
      tags,
      security: [{ bearer: [] }],
      request: { params: idPath, query: z.object({ account_id: accountIdParam }) },
      responses: {
        200: jsonContent(
          z
            .object({
              success: z.literal(true),
              data: z.object({ id: z.string(), deleted: z.literal(true) }),
            })
            .meta({ id: "UnosendSuppressionDeleted" }),
          "Removed",
        ),
        ...surfaceErrorResponses(errorSchema, true),
      },
    },
    requireScope("suppressions:write"),
    async (c, { params, query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const row = await entryById(c.env, accountId, params.id);
      await removeEntries(c.env, await homeDbOf(c.env, accountId), accountId, row.email, row.topic);
      return c.json({ success: true as const, data: { id: params.id, deleted: true as const } });
    },
  );
}
