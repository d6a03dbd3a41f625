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
        "an entry for that topic, it is returned with its original reason and time; a given `expires_at` replaces " +
        "its expiry (`null`: never expires). `expires_at` must be at least 60 s ahead (KV's minimum expiration). " +
        "The body is optional.",
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
      const expiresAt =
        body.expires_at === undefined
          ? undefined
          : body.expires_at === null
            ? null
            : Date.parse(body.expires_at);
      const { entry } = await addManual(
        c.env,
        c.env.DB,
        accountId,
        params.email,
        topic,
        expiresAt,
        Date.now(),
      );
      return c.json(await toSuppression(entry));
    },
  );
}
