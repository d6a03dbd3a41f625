import type { Context } from "hono";
import * as z from "zod";
import type { AppEnv } from "../app-env";
import { requireScope } from "../auth/middleware";
import { ApiError } from "../lib/errors";
import { parseJsonBody } from "../lib/http";
import {
  type App,
  BEARER,
  bodyErrors,
  commonErrors,
  jsonContent,
  notFoundError,
  route,
  unavailableError,
} from "../lib/openapi";
import { checkAddresses, recordSuppressedSends } from "./check";
import { LIST_PARAMS, listSuppressions, parseListQuery } from "./list";
import { accountFor, parseTopic, pathEmail, queryParams } from "./params";
import {
  addressEntriesSchema,
  checkBodySchema,
  checkResultSchema,
  deletedSchema,
  putBodySchema,
  suppressionListSchema,
  suppressionSchema,
  toSuppression,
} from "./schema";
import { addManual, EVERY_TOPIC, entriesOf, removeEntries } from "./store";

const q = (description: string) => z.string().optional().meta({ description });
const accountParam = q("admin tokens only: the account to act for");
const emailPath = z.object({
  email: z
    .string()
    .meta({ description: "the address, URL-encoded (`@` as `%40`); matched case-insensitively" }),
});
const tags = ["suppressions"];

export function registerSuppressionRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/suppressions",
      operationId: "listSuppressions",
      summary: "List suppressions, newest first",
      tags,
      security: BEARER,
      request: {
        query: z.object({
          limit: q("1-1000, default 20"),
          after: q("next_cursor of the previous page; repeat reason and topic unchanged"),
          reason: q("hard_bounce, complaint, unsubscribe or manual"),
          topic: q("only entries for this topic (exact; every-topic entries are not included)"),
          account_id: accountParam,
        }),
      },
      responses: { 200: jsonContent(suppressionListSchema, "A page of entries"), ...commonErrors },
    },
    requireScope("suppressions:read"),
    async (c) => {
      const params = queryParams(c, LIST_PARAMS);
      const accountId = accountFor(c, params.account_id);
      return c.json(await listSuppressions(c.env, accountId, parseListQuery(params)));
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/suppressions/{email}",
      operationId: "getSuppressions",
      summary: "An address's suppression entries",
      tags,
      security: BEARER,
      request: { params: emailPath, query: z.object({ account_id: accountParam }) },
      responses: {
        200: jsonContent(addressEntriesSchema, "The entries, the every-topic one first"),
        ...commonErrors,
        ...notFoundError,
      },
    },
    requireScope("suppressions:read"),
    async (c) => {
      const params = queryParams(c, ["account_id"]);
      const email = pathEmail(c);
      const accountId = accountFor(c, params.account_id);
      const rows = await entriesOf(c.env, accountId, email);
      if (rows.length === 0) throw notSuppressed(email);
      return c.json({ object: "list" as const, data: await Promise.all(rows.map(toSuppression)) });
    },
  );

  route(
    app,
    {
      method: "put",
      path: "/v1/suppressions/{email}",
      operationId: "addSuppression",
      summary: "Suppress an address (reason manual)",
      description:
        "Adds an entry for `topic`, or for every topic without one. Idempotent: when the address already has " +
        "an entry for that topic, it is returned unchanged (its original reason and time). The body is optional.",
      tags,
      security: BEARER,
      request: {
        params: emailPath,
        query: z.object({ account_id: accountParam }),
        body: { content: { "application/json": { schema: putBodySchema } }, required: false },
      },
      responses: { 200: jsonContent(suppressionSchema, "The entry"), ...commonErrors, ...bodyErrors },
    },
    requireScope("suppressions:write"),
    async (c) => {
      const params = queryParams(c, ["account_id"]);
      const email = pathEmail(c);
      const body = hasBody(c) ? await parseJsonBody(c, putBodySchema, { optional: true }) : {};
      const accountId = accountFor(c, params.account_id, body.account_id);
      const { entry } = await addManual(c.env, accountId, email, body.topic ?? EVERY_TOPIC, Date.now());
      return c.json(await toSuppression(entry));
    },
  );

  route(
    app,
    {
      method: "delete",
      path: "/v1/suppressions/{email}",
      operationId: "removeSuppressions",
      summary: "Remove an address's entries",
      description: "With `topic`, removes that topic's entry; otherwise every entry of the address.",
      tags,
      security: BEARER,
      request: {
        params: emailPath,
        query: z.object({ topic: q("remove only this topic's entry"), account_id: accountParam }),
      },
      responses: {
        200: jsonContent(deletedSchema, "How many entries were removed"),
        ...commonErrors,
        ...notFoundError,
      },
    },
    requireScope("suppressions:write"),
    async (c) => {
      const params = queryParams(c, ["topic", "account_id"]);
      const email = pathEmail(c);
      const topic = params.topic === undefined ? null : parseTopic("topic", params.topic);
      const accountId = accountFor(c, params.account_id);
      const deleted = await removeEntries(c.env, accountId, email, topic);
      if (deleted === 0) throw notSuppressed(email, topic);
      return c.json({ deleted, email });
    },
  );

  route(
    app,
    {
      method: "post",
      path: "/v1/suppressions/check",
      operationId: "checkSuppressions",
      summary: "Check up to 1,000 addresses before sending",
      description:
        "Answers from the KV mirror. An address is suppressed by an every-topic entry, or by an entry for the " +
        "given topic. With `email_id`, each suppressed address records an `email.suppressed` event " +
        "(id deterministic in the email_id and address). Results follow the request's order.",
      tags,
      security: BEARER,
      request: { body: { content: { "application/json": { schema: checkBodySchema } }, required: true } },
      responses: {
        200: jsonContent(checkResultSchema, "One result per address"),
        ...commonErrors,
        ...bodyErrors,
        ...unavailableError,
      },
    },
    requireScope("send"),
    async (c) => {
      const params = queryParams(c, ["account_id"]);
      const body = await parseJsonBody(c, checkBodySchema);
      const accountId = accountFor(c, params.account_id, body.account_id);
      const topic = body.topic ?? null;
      const data = await checkAddresses(c.env, accountId, body.emails, topic);
      if (body.email_id !== undefined) {
        await recordSuppressedSends(c.env, accountId, body.email_id, data, topic, Date.now());
      }
      return c.json({ data });
    },
  );
}

const notSuppressed = (email: string, topic: string | null = null) =>
  new ApiError(
    "not_found",
    `${email} has no suppression entry${topic === null ? "" : ` for topic ${topic}`}`,
  );

/** PUT's body is optional: a request without one (or with an empty one) adds an every-topic entry. */
function hasBody(c: Context<AppEnv>): boolean {
  const length = c.req.header("content-length");
  if (length === "0") return false;
  return c.req.header("content-type") !== undefined || length !== undefined || c.req.raw.body !== null;
}
