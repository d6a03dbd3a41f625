import type { Context } from "hono";
import * as z from "zod";
import type { AppEnv } from "../app-env";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import { config } from "../config";
import type { WebhookEndpointRow } from "../db/webhooks";
import { ApiError, validationError } from "../lib/errors";
import {
  type App,
  bodyErrors,
  commonErrors,
  jsonContent,
  notFoundError,
  route,
  unavailableError,
} from "../lib/openapi";
import { accountIdParam } from "../lib/params";
import { deliveryQuerySchema, listDeliveries } from "./deliveries";
import { type ReplayRequest, replayWithinCaps } from "./replay";
import {
  createBodySchema,
  deletedEndpointSchema,
  deliveryListSchema,
  endpointListSchema,
  endpointSchema,
  endpointWithSecretSchema,
  patchBodySchema,
  replayBodySchema,
  replayResultSchema,
  toPublicEndpoint,
} from "./schema";
import {
  createEndpoint,
  deleteEndpoint,
  getEndpoint,
  listEndpoints,
  rotateSecret,
  updateEndpoint,
} from "./store";
import { checkWebhookUrl } from "./url-safety";

/** The webhook endpoint routes of SPEC §14. Handlers parse, call the store, and shape the answer. */

const accountQuery = z.object({ account_id: accountIdParam });
const idPath = z.object({ id: z.string().meta({ description: "whk_…" }) });
const tags = ["webhooks"];
/** OpenAPI 3.1 lets a bearer requirement name roles: each route lists the scope it needs. */
const needs = (scope: "webhooks:read" | "webhooks:write") => ({ security: [{ bearer: [scope] }] });

function safeUrl(c: Context<AppEnv>, url: string): string {
  const verdict = checkWebhookUrl(url, config(c.env, "WEBHOOK_ALLOW_INSECURE_URLS"));
  if (!verdict.ok) throw validationError("url", verdict.reason);
  return verdict.url;
}

async function endpointOr404(c: Context<AppEnv>, accountId: string): Promise<WebhookEndpointRow> {
  const id = c.req.param("id") ?? "";
  const row = /^whk_[0-9a-f]{24}$/.test(id) ? await getEndpoint(c.env, accountId, id) : null;
  if (!row) throw new ApiError("not_found", `no webhook endpoint ${id}`);
  return row;
}

export function registerWebhookRoutes(app: App): void {
  route(
    app,
    {
      method: "post",
      path: "/v1/webhooks",
      operationId: "createWebhookEndpoint",
      summary: "Create a webhook endpoint",
      description:
        "Scope `webhooks:write`. Every new event of the account that matches `event_types` and `filters` is POSTed to `url`, signed the " +
        "Standard Webhooks way with the returned `secret` (shown only here and on rotation). At most 20 per account.",
      tags,
      ...needs("webhooks:write"),
      request: {
        query: accountQuery,
        body: { content: { "application/json": { schema: createBodySchema } }, required: true },
      },
      responses: {
        201: jsonContent(endpointWithSecretSchema, "The endpoint and its signing secret"),
        ...commonErrors,
        ...bodyErrors,
      },
    },
    requireScope("webhooks:write"),
    async (c, { query, body }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const row = await createEndpoint(
        c.env,
        accountId,
        {
          url: safeUrl(c, body.url),
          description: body.description ?? null,
          eventTypes: body.event_types ?? null,
          filters: body.filters ?? {},
        },
        Date.now(),
      );
      return c.json({ ...toPublicEndpoint(row), secret: row.secret }, 201);
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/webhooks",
      operationId: "listWebhookEndpoints",
      summary: "List webhook endpoints, newest first",
      description: "Scope `webhooks:read`.",
      tags,
      ...needs("webhooks:read"),
      request: { query: accountQuery },
      responses: { 200: jsonContent(endpointListSchema, "Every endpoint of the account"), ...commonErrors },
    },
    requireScope("webhooks:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const rows = await listEndpoints(c.env, accountId);
      return c.json({ object: "list" as const, data: rows.map(toPublicEndpoint) });
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/webhooks/{id}",
      operationId: "getWebhookEndpoint",
      summary: "A webhook endpoint",
      description: "Scope `webhooks:read`.",
      tags,
      ...needs("webhooks:read"),
      request: { params: idPath, query: accountQuery },
      responses: { 200: jsonContent(endpointSchema, "The endpoint"), ...commonErrors, ...notFoundError },
    },
    requireScope("webhooks:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      return c.json(toPublicEndpoint(await endpointOr404(c, accountId)));
    },
  );

  route(
    app,
    {
      method: "patch",
      path: "/v1/webhooks/{id}",
      operationId: "updateWebhookEndpoint",
      summary: "Change a webhook endpoint",
      description:
        "Scope `webhooks:write`. Any of `url`, `description`, `event_types`, `filters` (replaced as a whole) and `status`. Disabling sets " +
        "`disabled_reason` to `manual`; enabling clears it. A change governs every delivery attempted 10 s later.",
      tags,
      ...needs("webhooks:write"),
      request: {
        params: idPath,
        query: accountQuery,
        body: { content: { "application/json": { schema: patchBodySchema } }, required: true },
      },
      responses: {
        200: jsonContent(endpointSchema, "The endpoint as changed"),
        ...commonErrors,
        ...bodyErrors,
        ...notFoundError,
      },
    },
    requireScope("webhooks:write"),
    async (c, { query, body }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const existing = await endpointOr404(c, accountId);
      const { url, ...rest } = body;
      const row = await updateEndpoint(
        c.env,
        accountId,
        existing.id,
        { ...rest, ...(url !== undefined ? { url: safeUrl(c, url) } : {}) },
        Date.now(),
      );
      if (!row) throw new ApiError("not_found", `no webhook endpoint ${existing.id}`);
      return c.json(toPublicEndpoint(row));
    },
  );

  route(
    app,
    {
      method: "delete",
      path: "/v1/webhooks/{id}",
      operationId: "deleteWebhookEndpoint",
      summary: "Delete a webhook endpoint",
      description:
        "Scope `webhooks:write`. Nothing more is delivered to it; its delivery records go with the next retention purge.",
      tags,
      ...needs("webhooks:write"),
      request: { params: idPath, query: accountQuery },
      responses: { 200: jsonContent(deletedEndpointSchema, "Deleted"), ...commonErrors, ...notFoundError },
    },
    requireScope("webhooks:write"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const existing = await endpointOr404(c, accountId);
      if (!(await deleteEndpoint(c.env, accountId, existing.id))) {
        throw new ApiError("not_found", `no webhook endpoint ${existing.id}`);
      }
      return c.json({ deleted: true as const, id: existing.id });
    },
  );

  route(
    app,
    {
      method: "post",
      path: "/v1/webhooks/{id}/secret",
      operationId: "rotateWebhookSecret",
      summary: "Rotate a webhook endpoint's signing secret",
      description:
        "Scope `webhooks:write`. Returns a new `secret`. For the next 24 hours every delivery carries two signatures, one per secret, so " +
        "receivers can switch without losing a delivery. Rotating again within 24 hours retires the oldest secret.",
      tags,
      ...needs("webhooks:write"),
      request: { params: idPath, query: accountQuery },
      responses: {
        200: jsonContent(endpointWithSecretSchema, "The endpoint and its new secret"),
        ...commonErrors,
        ...notFoundError,
      },
    },
    requireScope("webhooks:write"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const existing = await endpointOr404(c, accountId);
      const row = await rotateSecret(c.env, accountId, existing.id, Date.now());
      if (!row) throw new ApiError("not_found", `no webhook endpoint ${existing.id}`);
      return c.json({ ...toPublicEndpoint(row), secret: row.secret });
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/webhooks/{id}/deliveries",
      operationId: "listWebhookDeliveries",
      summary: "An endpoint's deliveries, newest event first",
      description:
        "Scope `webhooks:read`. One record per event delivered to the endpoint, updated by every attempt (and replay). `pending`: a retry " +
        "is scheduled at `next_attempt_at`.",
      tags,
      ...needs("webhooks:read"),
      request: {
        params: idPath,
        query: deliveryQuerySchema,
      },
      responses: {
        200: jsonContent(deliveryListSchema, "A page of deliveries"),
        ...commonErrors,
        ...notFoundError,
      },
    },
    requireScope("webhooks:read"),
    async (c, { query }) => {
      const { account_id, ...listQuery } = query;
      const accountId = actingAccount(principalOf(c), account_id);
      const endpoint = await endpointOr404(c, accountId);
      return c.json(await listDeliveries(c.env, accountId, endpoint.id, listQuery));
    },
  );

  route(
    app,
    {
      method: "post",
      path: "/v1/webhooks/{id}/replay",
      operationId: "replayWebhookEvents",
      summary: "Deliver stored events again",
      description:
        "Scope `webhooks:write`. `{event_ids: [≤ 100]}` or `{start, end?, event_type?}` (a window of at most 10,000 events, clamped to the " +
        "plan's retention; more is 400 naming `start`). Events the endpoint subscribes to are delivered again with " +
        "the same `webhook-id`, as a new run of attempts. The endpoint must be enabled. One replay per endpoint is in " +
        "flight at a time (a second answers 429 with Retry-After until the first's deliveries had their first attempts), " +
        "and an endpoint has at most 10,000 deliveries pending: a replay that would pass it answers 429. By ids, " +
        "each id is looked for within a budget of 10,000 rows read (tracking events by the time their id names, " +
        "others among the account's newest events); an id not found is skipped like an unknown one, and an older " +
        "event is replayed by window. `event_ids` may also name alerts (`alt_…`, kept 400 days) and suppression " +
        "changes (`sch_…`, kept 7 days), delivered again with their own `webhook-id` when the endpoint subscribes to their type.",
      tags,
      ...needs("webhooks:write"),
      request: {
        params: idPath,
        query: accountQuery,
        body: { content: { "application/json": { schema: replayBodySchema } }, required: true },
      },
      responses: {
        202: jsonContent(replayResultSchema, "How many deliveries were queued"),
        ...commonErrors,
        ...bodyErrors,
        ...notFoundError,
        ...unavailableError,
      },
    },
    requireScope("webhooks:write"),
    async (c, { query, body }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      // Replayed deliveries are signed with the sealed secret: refuse before queueing any.
      config(c.env, "SECRETS_KEY");
      const endpoint = await endpointOr404(c, accountId);
      const request = replayRequest(body, Date.now());
      if (endpoint.status !== "enabled") {
        throw validationError("id", "the endpoint is disabled; enable it before replaying");
      }
      let queued: number;
      try {
        queued = await replayWithinCaps(c.env, endpoint, request, Date.now());
      } catch (err) {
        if (err instanceof ApiError) throw err;
        throw new ApiError("unavailable", "the webhook queue did not accept the replay; retry", {
          cause: err,
        });
      }
      return c.json({ queued }, 202);
    },
  );
}

function replayRequest(body: z.output<typeof replayBodySchema>, now: number): ReplayRequest {
  if (body.event_ids !== undefined) {
    if (body.start !== undefined || body.end !== undefined || body.event_type !== undefined) {
      const param = body.start !== undefined ? "start" : body.end !== undefined ? "end" : "event_type";
      throw validationError(param, "give either event_ids or a window (start, end, event_type), not both");
    }
    return { kind: "ids", eventIds: body.event_ids };
  }
  if (body.start === undefined) throw validationError("start", "give event_ids, or a window from start");
  const start = Date.parse(body.start);
  const end = body.end === undefined ? now : Date.parse(body.end);
  if (start >= end) throw validationError("start", "start must be before end");
  const types =
    body.event_type === undefined
      ? null
      : Array.isArray(body.event_type)
        ? body.event_type
        : [body.event_type];
  return { kind: "window", start, end, eventTypes: types };
}
