import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import { ApiError } from "../lib/errors";
import { parseJsonBody } from "../lib/http";
import { type App, BEARER, bodyErrors, commonErrors, jsonContent, route } from "../lib/openapi";
import { getAccountPlan, setAccountPlan } from "./plans";

const accountSchema = z
  .object({ id: z.string(), plan: z.string(), retention_days: z.number().int() })
  .meta({ id: "Account" });
const putAccountBody = z.object({ plan: z.string().min(1).max(32) }).strict();
const ACCOUNT_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

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
      responses: { 200: jsonContent(accountSchema, "The account"), ...commonErrors },
    },
    requireScope("events:read"),
    async (c) =>
      c.json(await getAccountPlan(c.env, actingAccount(principalOf(c), c.req.query("account_id")))),
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
        params: z.object({ id: z.string() }),
        body: { content: { "application/json": { schema: putAccountBody } }, required: true },
      },
      responses: {
        200: jsonContent(accountSchema, "The account with its new plan"),
        ...commonErrors,
        ...bodyErrors,
      },
    },
    requireScope("admin"),
    async (c) => {
      const id = c.req.param("id") ?? "";
      if (!ACCOUNT_ID.test(id))
        throw new ApiError("validation_error", "id must be an account id", { param: "id" });
      const body = await parseJsonBody(c, putAccountBody);
      return c.json(await setAccountPlan(c.env, id, body.plan));
    },
  );
}
