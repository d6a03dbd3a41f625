import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../../auth/middleware";
import { config } from "../../config";
import { type App, BEARER, jsonContent, queuedBodyErrors, route } from "../../lib/openapi";
import { accountIdParam } from "../../lib/params";
import { enqueue } from "../../pipeline/enqueue";
import { emailAddressSchema } from "../../suppressions/address";
import { trackingKeyring } from "../../tracking/keyring";
import { instrumentHtml } from "../../tracking/rewrite-html";
import { messageDimensionsSchema, registrationMessage } from "../register";

const instrumentBody = z
  .strictObject({
    account_id: accountIdParam,
    ...messageDimensionsSchema.omit({ message_id: true }).shape,
    recipient: emailAddressSchema.meta({ description: "The one recipient; lowercased" }),
    html: z.string().min(1),
    opens: z.boolean().default(true).meta({ description: "Insert the open pixel" }),
    clicks: z.boolean().default(true).meta({ description: "Rewrite http(s) links into click URLs" }),
    unsubscribe: z
      .boolean()
      .default(true)
      .meta({ description: "Issue the unsubscribe URL and List-Unsubscribe headers" }),
  })
  .meta({ id: "InstrumentRequest" });

const instrumentResponse = z
  .object({
    html: z.string(),
    pixel_url: z.string().nullable().meta({ description: "null with opens: false" }),
    unsubscribe_url: z.string().nullable().meta({ description: "null with unsubscribe: false" }),
    headers: z
      .object({
        "List-Unsubscribe": z.string().optional(),
        "List-Unsubscribe-Post": z.literal("List-Unsubscribe=One-Click").optional(),
      })
      .meta({ description: "Headers to add to the email; empty with unsubscribe: false" }),
    links_tracked: z.number().int(),
  })
  .meta({ id: "Instrumented" });

export function registerInstrumentRoute(app: App): void {
  route(
    app,
    {
      method: "post",
      path: "/v1/messages/instrument",
      operationId: "instrumentMessage",
      summary: "Instrument one recipient's email HTML for tracking, and register the message",
      description:
        "Rewrites every http(s) `<a href>` (not mailto:, tel:, #fragments, relative links, nor anchors marked " +
        "`data-mt-notrack`) into a click URL named by the anchor's `data-mt-name`, inserts the open pixel " +
        "before `</body>`, issues the unsubscribe URL with its RFC 8058 headers, and registers the message's " +
        "dimensions so every event of it carries them. `data-mt-*` attributes are removed. 503 when the " +
        "registration could not be queued: retry, nothing was issued.",
      tags: ["messages"],
      security: BEARER,
      request: { body: { content: { "application/json": { schema: instrumentBody } }, required: true } },
      responses: {
        200: jsonContent(instrumentResponse, "The instrumented HTML, its URLs and headers"),
        ...queuedBodyErrors,
      },
    },
    requireScope("send"),
    async (c, { body }) => {
      const accountId = actingAccount(principalOf(c), body.account_id);
      const now = Date.now();
      const instrumented = await instrumentHtml(await trackingKeyring(c.env), {
        html: body.html,
        base: config(c.env, "PUBLIC_BASE_URL") ?? new URL(c.req.url).origin,
        account_id: accountId,
        email_id: body.email_id,
        recipient: body.recipient,
        topic: body.topic ?? null,
        issued_at: Math.floor(now / 1000),
        opens: body.opens,
        clicks: body.clicks,
        unsubscribe: body.unsubscribe,
      });
      // Registered before answering: a 200 means every event of this message will carry its dimensions.
      await enqueue(c.env, [registrationMessage(accountId, body, now)]);
      return c.json(instrumented, 200);
    },
  );
}
