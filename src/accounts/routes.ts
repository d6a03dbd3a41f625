import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import { type App, BEARER, bodyErrors, commonErrors, jsonContent, route } from "../lib/openapi";
import { accountIdParam, accountIdSchema } from "../lib/params";
import { getAccountPlan, setAccountPlan } from "./plans";

const accountSchema = z
  .object({ id: z.string(), plan: z.string(), retention_days: z.number().int() })
  .meta({ id: "Account" });
const putAccountBody = z
  .object({
    plan: z
      .string()
      .min(1)
      .max(32)
      .meta({
        description:
          "one of the deployment's plans (PLANS; by default starter, growth, scale); another is 400",
        examples: ["starter", "growth", "scale"],
      }),
  })
  .strict();

export function registerAccountRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/account",
      operationId: "getAccount",
      summary: "The token's account, its plan and retention",
      tags: ["accounts"],
      security: BEARER,
      request: { query: z.object({ account_id: accountIdParam }) },
      responses: { 200: jsonContent(accountSchema, "The account"), ...commonErrors },
    },
    requireScope("events:read"),
    async (c, { query }) =>
      c.json(await getAccountPlan(c.env, actingAccount(principalOf(c), query.account_id))),
  );

  route(
    app,
    {
      method: "put",
      path: "/v1/accounts/{id}",
      operationId: "setAccountPlan",
      summary: "Set an account's plan (admin)",
      tags: ["accounts"],
      security: BEARER,
      request: {
        params: z.object({ id: accountIdSchema }),
        body: { content: { "application/json": { schema: putAccountBody } }, required: true },
      },
      responses: {
        200: jsonContent(accountSchema, "The account with its new plan"),
        ...commonErrors,
        ...bodyErrors,
      },
    },
    requireScope("admin"),
    async (c, { params, body }) => c.json(await setAccountPlan(c.env, params.id, body.plan)),
  );
}
