import * as z from "zod";
import { requireScope } from "../../auth/middleware";
import { type App, BEARER, commonErrors, jsonContent, notFoundError, route } from "../../lib/openapi";
import { accountIdParam } from "../../lib/params";
import { addressEntriesSchema, toSuppression } from "../schema";
import { entriesOf } from "../store";
import { accountFor, emailPath, notSuppressed, tags } from "./shared";

export function registerGetSuppressions(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/suppressions/{email}",
      operationId: "getSuppressions",
      summary: "An address's suppression entries",
      tags,
      security: BEARER,
      request: { params: emailPath, query: z.object({ account_id: accountIdParam }) },
      responses: {
        200: jsonContent(addressEntriesSchema, "The entries, the every-topic one first"),
        ...commonErrors,
        ...notFoundError,
      },
    },
    requireScope("suppressions:read"),
    async (c, { params, query }) => {
      const accountId = accountFor(c, query.account_id);
      const rows = await entriesOf(c.env, c.env.DB, accountId, params.email);
      if (rows.length === 0) throw notSuppressed(params.email);
      return c.json({ object: "list" as const, data: await Promise.all(rows.map(toSuppression)) });
    },
  );
}
