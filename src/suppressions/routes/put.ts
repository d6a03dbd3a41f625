import * as z from "zod";
import { requireScope } from "../../auth/middleware";
import { type App, BEARER, bodyErrors, commonErrors, jsonContent, route } from "../../lib/openapi";
import { accountIdParam } from "../../lib/params";
import { putBodySchema, suppressionSchema, toSuppression } from "../schema";
import { addManual, topicColumn } from "../store";
import { accountFor, emailPath, tags } from "./shared";

export function registerPutSuppression(app: App): void {
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
        query: z.object({ account_id: accountIdParam }),
        body: { content: { "application/json": { schema: putBodySchema } }, required: false },
      },
      responses: { 200: jsonContent(suppressionSchema, "The entry"), ...commonErrors, ...bodyErrors },
    },
    requireScope("suppressions:write"),
    async (c, { params, query, body }) => {
      const accountId = accountFor(c, query.account_id, body.account_id);
      const topic = topicColumn(body.topic ?? null);
      const { entry } = await addManual(c.env, accountId, params.email, topic, Date.now());
      return c.json(await toSuppression(entry));
    },
  );
}
