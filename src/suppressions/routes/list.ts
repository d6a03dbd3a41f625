import * as z from "zod";
import { requireScope } from "../../auth/middleware";
import { type App, BEARER, commonErrors, jsonContent, route } from "../../lib/openapi";
import { accountIdParam, cursorParam, limitParam, topicParam } from "../../lib/params";
import { SUPPRESSION_REASONS } from "../../pipeline/messages";
import { listSuppressions } from "../list";
import { suppressionListSchema } from "../schema";
import { accountFor, tags } from "./shared";

const listQuery = z.object({
  limit: limitParam(),
  after: cursorParam(1024).meta({
    description: "next_cursor of the previous page; repeat reason and topic unchanged",
  }),
  reason: z
    .enum(SUPPRESSION_REASONS, { error: `must be one of ${SUPPRESSION_REASONS.join(", ")}` })
    .optional()
    .meta({ description: "hard_bounce, soft_bounce, complaint, unsubscribe or manual" }),
  topic: topicParam
    .optional()
    .meta({ description: "only entries for this topic (exact; every-topic entries are not included)" }),
  account_id: accountIdParam,
});

export function registerListSuppressions(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/suppressions",
      operationId: "listSuppressions",
      summary: "List suppressions, newest first",
      tags,
      security: BEARER,
      request: { query: listQuery },
      responses: { 200: jsonContent(suppressionListSchema, "A page of entries"), ...commonErrors },
    },
    requireScope("suppressions:read"),
    async (c, { query }) => {
      const accountId = accountFor(c, query.account_id);
      const filters = { reason: query.reason ?? null, topic: query.topic ?? null };
      return c.json(
        await listSuppressions(c.env, accountId, { filters, limit: query.limit, after: query.after ?? null }),
      );
    },
  );
}
