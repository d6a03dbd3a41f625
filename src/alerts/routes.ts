import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import { ApiError } from "../lib/errors";
import { type App, bodyErrors, commonErrors, jsonContent, notFoundError, route } from "../lib/openapi";
import { accountIdParam, cursorParam, limitParam } from "../lib/params";
import {
  alertListSchema,
  createRuleSchema,
  deletedRuleSchema,
  patchRuleSchema,
  ruleListSchema,
  ruleSchema,
  toPublicRule,
} from "./schema";
import { createRule, deleteRule, getRule, listRules, ruleHistory, updateRule } from "./store";

/** Alert rules and their history (SPEC §19). `alerts:write` changes rules; `events:read` reads them. */

const tags = ["alerts"];
const needs = (scope: "events:read" | "alerts:write") => ({ security: [{ bearer: [scope] }] });
const accountQuery = z.object({ account_id: accountIdParam });
const RULE_ID = /^alr_[0-9a-f]{24}$/;
const idPath = z.object({
  id: z.string().max(64).meta({ description: "alr_…" }),
});
const ruleIdOr404 = (id: string) => {
  if (!RULE_ID.test(id)) throw new ApiError("not_found", `no alert rule ${id}`);
  return id;
};

const RULES_DESCRIPTION = `A rule fires when its metric crosses \`threshold\` (a fraction: 0.05 is 5 %) with at least
\`min_sent\` sent in the window (above the threshold for \`bounce_rate\` and \`complaint_rate\`, below it for
\`delivery_rate\`, \`open_rate\` and \`click_rate\`), and resolves when the metric is back inside by 20 % of the
threshold (a 5 % bounce rule resolves at 4 % or less). Rates are computed as in GET /v1/reputation. Rules are
evaluated from the metrics rollups by the scheduled work, every run (every 5 minutes). Every account starts with
two rules it may change or delete: bounce rate above 5 % and complaint rate above 0.1 %, over 24 h. Each
transition is an alert, kept 400 days and pushed to webhook endpoints as \`alert.triggered\` / \`alert.resolved\`.
A change to what a rule measures starts it over in state \`ok\`.`;

export function registerAlertRoutes(app: App): void {
  route(
    app,
    {
      method: "post",
      path: "/v1/alerts",
      operationId: "createAlertRule",
      summary: "Create an alert rule",
      description: `Scope \`alerts:write\`. At most 50 rules per account.\n\n${RULES_DESCRIPTION}`,
      tags,
      ...needs("alerts:write"),
      request: {
        query: accountQuery,
        body: { content: { "application/json": { schema: createRuleSchema } }, required: true },
      },
      responses: { 201: jsonContent(ruleSchema, "The rule, in state ok"), ...commonErrors, ...bodyErrors },
    },
    requireScope("alerts:write"),
    async (c, { query, body }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      return c.json(toPublicRule(await createRule(c.env, accountId, body, Date.now())), 201);
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/alerts",
      operationId: "listAlertRules",
      summary: "List alert rules",
      description: `Scope \`events:read\`.\n\n${RULES_DESCRIPTION}`,
      tags,
      ...needs("events:read"),
      request: { query: accountQuery },
      responses: { 200: jsonContent(ruleListSchema, "Every rule of the account"), ...commonErrors },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const rules = await listRules(c.env, accountId, Date.now());
      return c.json({ object: "list" as const, data: rules.map(toPublicRule) });
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/alerts/{id}",
      operationId: "getAlertRule",
      summary: "Get an alert rule",
      description: "Scope `events:read`.",
      tags,
      ...needs("events:read"),
      request: { params: idPath, query: accountQuery },
      responses: { 200: jsonContent(ruleSchema, "The rule"), ...commonErrors, ...notFoundError },
    },
    requireScope("events:read"),
    async (c, { params, query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      return c.json(toPublicRule(await getRule(c.env, accountId, ruleIdOr404(params.id), Date.now())));
    },
  );

  route(
    app,
    {
      method: "patch",
      path: "/v1/alerts/{id}",
      operationId: "updateAlertRule",
      summary: "Change an alert rule",
      description: "Scope `alerts:write`. A change to what the rule measures starts it over in state `ok`.",
      tags,
      ...needs("alerts:write"),
      request: {
        params: idPath,
        query: accountQuery,
        body: { content: { "application/json": { schema: patchRuleSchema } }, required: true },
      },
      responses: {
        200: jsonContent(ruleSchema, "The changed rule"),
        ...commonErrors,
        ...bodyErrors,
        ...notFoundError,
      },
    },
    requireScope("alerts:write"),
    async (c, { params, query, body }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const row = await updateRule(c.env, accountId, ruleIdOr404(params.id), body, Date.now());
      return c.json(toPublicRule(row));
    },
  );

  route(
    app,
    {
      method: "delete",
      path: "/v1/alerts/{id}",
      operationId: "deleteAlertRule",
      summary: "Delete an alert rule",
      description: "Scope `alerts:write`. Its alerts stay readable in its history for their 400 days.",
      tags,
      ...needs("alerts:write"),
      request: { params: idPath, query: accountQuery },
      responses: { 200: jsonContent(deletedRuleSchema, "Deleted"), ...commonErrors, ...notFoundError },
    },
    requireScope("alerts:write"),
    async (c, { params, query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const id = ruleIdOr404(params.id);
      await deleteRule(c.env, accountId, id, Date.now());
      return c.json({ deleted: true as const, id });
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/alerts/{id}/history",
      operationId: "listAlertHistory",
      summary: "A rule's alerts, newest first",
      description:
        "Scope `events:read`. Every transition of the rule (`alert.triggered`, `alert.resolved`) of the last 400 days, " +
        "newest first, paged with `after` as GET /v1/events is. A deleted rule's history stays readable.",
      tags,
      ...needs("events:read"),
      request: {
        params: idPath,
        query: z.object({
          limit: limitParam(),
          after: cursorParam(1024).meta({ description: "next_cursor of the previous page" }),
          account_id: accountIdParam,
        }),
      },
      responses: { 200: jsonContent(alertListSchema, "A page of alerts"), ...commonErrors, ...notFoundError },
    },
    requireScope("events:read"),
    async (c, { params, query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      const id = ruleIdOr404(params.id);
      const page = await ruleHistory(c.env, accountId, id, { limit: query.limit, after: query.after });
      if (page.data.length === 0 && !query.after) {
        // Unknown (or another account's) rule: 404, unless it exists and has had no transition yet.
        const rules = await listRules(c.env, accountId, Date.now());
        if (!rules.some((r) => r.id === id)) throw new ApiError("not_found", `no alert rule ${id}`);
      }
      return c.json(page);
    },
  );
}
