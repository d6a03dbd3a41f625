import * as z from "zod";
import { requireScope } from "../../auth/middleware";
import { type App, BEARER, jsonContent, queuedBodyErrors, route } from "../../lib/openapi";
import { accountIdParam } from "../../lib/params";
import { checkAddresses, recordSuppressedSends } from "../check";
import { checkBodySchema, checkResultSchema } from "../schema";
import { accountFor, tags } from "./shared";

export function registerCheckSuppressions(app: App): void {
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
      request: {
        query: z.object({ account_id: accountIdParam }),
        body: { content: { "application/json": { schema: checkBodySchema } }, required: true },
      },
      responses: {
        200: jsonContent(checkResultSchema, "One result per address"),
        ...queuedBodyErrors,
      },
    },
    requireScope("send"),
    async (c, { query, body }) => {
      const accountId = accountFor(c, query.account_id, body.account_id);
      const topic = body.topic ?? null;
      const data = await checkAddresses(c.env, accountId, body.emails, topic);
      if (body.email_id !== undefined) {
        await recordSuppressedSends(c.env, accountId, body.email_id, data, topic, Date.now());
      }
      return c.json({ data });
    },
  );
}
