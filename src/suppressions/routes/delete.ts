import * as z from "zod";
import { requireScope } from "../../auth/middleware";
import { type App, BEARER, commonErrors, jsonContent, notFoundError, route } from "../../lib/openapi";
import { accountIdParam, topicParam } from "../../lib/params";
import { deletedSchema } from "../schema";
import { removeEntries } from "../store";
import { accountFor, emailPath, notSuppressed, tags } from "./shared";

export function registerDeleteSuppressions(app: App): void {
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
        query: z.object({
          topic: topicParam.optional().meta({ description: "remove only this topic's entry" }),
          account_id: accountIdParam,
        }),
      },
      responses: {
        200: jsonContent(deletedSchema, "How many entries were removed"),
        ...commonErrors,
        ...notFoundError,
      },
    },
    requireScope("suppressions:write"),
    async (c, { params, query }) => {
      const accountId = accountFor(c, query.account_id);
      const topic = query.topic ?? null;
      const deleted = await removeEntries(c.env, c.env.DB, accountId, params.email, topic);
      if (deleted === 0) throw notSuppressed(params.email, topic);
      return c.json({ deleted, email: params.email });
    },
  );
}
