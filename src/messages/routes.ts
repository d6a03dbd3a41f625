import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import { validationError } from "../lib/errors";
import { parseJsonBody } from "../lib/http";
import {
  type App,
  BEARER,
  bodyErrors,
  commonErrors,
  jsonContent,
  route,
  unavailableError,
} from "../lib/openapi";
import { enqueue } from "../pipeline/enqueue";
import { registerInstrumentRoute } from "./instrument";
import { messageDimensionsSchema, registrationMessage } from "./register";

const MAX_MESSAGES = 1000;

const registerBody = z
  .object({
    account_id: z.string().min(1).max(64).optional(),
    messages: z.array(messageDimensionsSchema).min(1).max(MAX_MESSAGES),
  })
  .meta({ id: "RegisterMessages" });

const registerResponse = z.object({ object: z.literal("registration"), accepted: z.number().int() });

export function registerMessageRoutes(app: App): void {
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
        ...commonErrors,
        ...bodyErrors,
        ...unavailableError,
      },
    },
    requireScope("send"),
    async (c) => {
      // A bare array is the natural shape for a batch too; both are accepted.
      const body = await parseJsonBody(
        c,
        z.preprocess((v) => (Array.isArray(v) ? { messages: v } : v), registerBody),
      );
      const accountId = actingAccount(principalOf(c), body.account_id);
      const seen = new Set<string>();
      for (const [i, m] of body.messages.entries()) {
        if (seen.has(m.email_id))
          throw validationError("messages", `messages.${i}.email_id ${m.email_id} is repeated`);
        seen.add(m.email_id);
      }
      const now = Date.now();
      await enqueue(
        c.env,
        body.messages.map((m) => registrationMessage(accountId, m, now)),
      );
      return c.json({ object: "registration" as const, accepted: body.messages.length }, 202);
    },
  );

  registerInstrumentRoute(app);
}
