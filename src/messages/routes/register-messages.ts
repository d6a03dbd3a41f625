import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../../auth/middleware";
import { type App, BEARER, jsonContent, queuedBodyErrors, route } from "../../lib/openapi";
import { accountIdParam } from "../../lib/params";
import { enqueue } from "../../pipeline/enqueue";
import { checkDistinctEmailIds, messageDimensionsSchema, registrationMessage } from "../register";

const MAX_MESSAGES = 1000;

// A bare array is the natural shape for a batch too; both are accepted.
const registerBody = z.preprocess(
  (v) => (Array.isArray(v) ? { messages: v } : v),
  z
    .object({
      account_id: accountIdParam,
      messages: z.array(messageDimensionsSchema).min(1).max(MAX_MESSAGES),
    })
    .meta({ id: "RegisterMessages" }),
);

const registerResponse = z.object({ object: z.literal("registration"), accepted: z.number().int() });

export function registerRegisterMessages(app: App): void {
  route(
    app,
    {
      method: "post",
      path: "/v1/messages",
      operationId: "registerMessages",
      summary: "Register up to 1,000 messages' correlation dimensions",
      description:
        "Every event of a registered message carries its from, subject, topic, campaign, template_id and tags, " +
        "whether the event arrives before or after the registration. Also accepts a bare array of messages.",
      tags: ["messages"],
      security: BEARER,
      request: { body: { content: { "application/json": { schema: registerBody } }, required: true } },
      responses: {
        202: jsonContent(registerResponse, "Queued"),
        ...queuedBodyErrors,
      },
    },
    requireScope("send"),
    async (c, { body }) => {
      const accountId = actingAccount(principalOf(c), body.account_id);
      checkDistinctEmailIds(body.messages);
      const now = Date.now();
      await enqueue(
        c.env,
        body.messages.map((m) => registrationMessage(accountId, m, now)),
      );
      return c.json({ object: "registration" as const, accepted: body.messages.length }, 202);
    },
  );
}
