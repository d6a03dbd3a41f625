import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import { validationError } from "../lib/errors";
import {
  type App,
  BEARER,
  bodyErrors,
  commonErrors,
  jsonContent,
  notFoundError,
  route,
} from "../lib/openapi";
import { accountIdParam } from "../lib/params";
import { createErasure, getErasure, runErasureLogged } from "./run";
import { erasureBodySchema, erasureIdSchema, erasureSchema, toErasure } from "./schema";

const tags = ["erasures"];

/** SPEC §20: forget an address while keeping it suppressed. */
export function registerErasureRoutes(app: App): void {
  route(
    app,
    {
      method: "post",
      path: "/v1/erasures",
      operationId: "createErasure",
      summary: "Erase an address's data, keeping it suppressed",
      description:
        "Removes, in the background and within one scheduled cycle, every event of the address, their webhook " +
        "deliveries, the registrations of emails with no other event left, any parked message carrying it, and " +
        "its suppression entries, which are replaced by hashed entries (`email: null`, `email_hash`; reason and " +
        "topic kept) that `check`, the KV mirror and the compatibility routes honour. An address with no entry " +
        "gets a hashed `manual` one. The erasure never stores the address; a second erasure of it changes nothing. " +
        "Needs ERASURE_KEY (500 configuration_error without it).",
      tags,
      security: BEARER,
      request: {
        query: z.object({ account_id: accountIdParam }),
        body: { content: { "application/json": { schema: erasureBodySchema } }, required: true },
      },
      responses: {
        202: jsonContent(erasureSchema, "The erasure, running"),
        ...commonErrors,
        ...bodyErrors,
      },
    },
    requireScope("suppressions:write"),
    async (c, { query, body }) => {
      if (
        query.account_id !== undefined &&
        body.account_id !== undefined &&
        query.account_id !== body.account_id
      ) {
        throw validationError("account_id", "account_id differs between the query and the body");
      }
      const accountId = actingAccount(principalOf(c), body.account_id ?? query.account_id);
      const row = await createErasure(c.env, accountId, body.email, Date.now());
      c.executionCtx.waitUntil(runErasureLogged(c.env, row.id));
      return c.json(toErasure(row), 202);
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/erasures/{id}",
      operationId: "getErasure",
      summary: "An erasure and what it removed",
      tags,
      security: BEARER,
      request: { params: z.object({ id: erasureIdSchema }), query: z.object({ account_id: accountIdParam }) },
      responses: { 200: jsonContent(erasureSchema, "The erasure"), ...commonErrors, ...notFoundError },
    },
    requireScope("suppressions:write"),
    async (c, { params, query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      return c.json(toErasure(await getErasure(c.env, accountId, params.id)));
    },
  );
}
