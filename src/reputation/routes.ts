import * as z from "zod";
import { actingAccount, principalOf, requireScope } from "../auth/middleware";
import { HOSTNAME } from "../events/query";
import { validationError } from "../lib/errors";
import { type App, BEARER, commonErrors, jsonContent, route } from "../lib/openapi";
import { accountIdParam, integerParam } from "../lib/params";
import { MAILBOX_PROVIDERS } from "../mailbox/providers";
import { getReputation } from "./reputation";

const rate = z.number().min(0).nullable();

export const reputationSchema = z
  .object({
    object: z.literal("reputation"),
    window: z.object({
      start: z.string().meta({ format: "date-time" }),
      end: z.string().meta({ format: "date-time" }),
      sent: z.number().int().min(0),
    }),
    bounce_rate: rate,
    complaint_rate: rate,
    status: z.enum(["healthy", "warning", "at_risk", "insufficient_volume"]),
    by_mailbox_provider: z.array(
      z.object({
        mailbox_provider: z.enum(MAILBOX_PROVIDERS),
        sent: z.number().int().min(0),
        bounce_rate: rate,
        complaint_rate: rate.meta({
          description: "null for a provider that sends no per-message complaints (Gmail)",
        }),
      }),
    ),
    thresholds: z.object({
      bounce_warning: z.number(),
      bounce_at_risk: z.number(),
      complaint_warning: z.number(),
      complaint_at_risk: z.number(),
    }),
  })
  .meta({ id: "Reputation" });

const querySchema = z.object({
  days: integerParam(1, 30)
    .optional()
    .meta({ description: "the window: the last `days` days (1-30, default 7)" }),
  domain: z
    .string()
    .trim()
    .toLowerCase()
    .regex(HOSTNAME, "domain must be a hostname such as mail.example.com")
    .optional()
    .meta({ description: "a sending domain (from_domain) the account has sent from" }),
  account_id: accountIdParam,
});

const DESCRIPTION = `Bounce and complaint rates over the window, from the metrics rollups, and the status
against Amazon SES's thresholds (review at a 5 % bounce or 0.1 % complaint rate, possible pause at 10 % or 0.5 %).

- \`bounce_rate\` = permanent bounces / sent.
- \`complaint_rate\` = complaints / delivered, counting only deliveries to mailbox providers that send
  per-message complaints (Gmail does not; its deliveries would make the rate look lower than it is).
  A provider without per-message complaints has \`complaint_rate: null\`.
- \`status\`: \`insufficient_volume\` under 100 sent; \`at_risk\` at or above an at-risk threshold;
  \`warning\` at or above a warning threshold; else \`healthy\`.
Rates are null when their denominator is 0. The window is widened to the rollups' 15-minute grid.`;

export function registerReputationRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/reputation",
      operationId: "getReputation",
      summary: "Bounce and complaint rates against the providers' thresholds",
      description: DESCRIPTION,
      tags: ["reputation"],
      security: BEARER,
      request: { query: querySchema },
      responses: { 200: jsonContent(reputationSchema, "The account's reputation"), ...commonErrors },
    },
    requireScope("events:read"),
    async (c, { query }) => {
      const accountId = actingAccount(principalOf(c), query.account_id);
      if (query.domain !== undefined) {
        const known = await c.env.DB.prepare(
          "SELECT 1 FROM sending_domains WHERE account_id = ? AND domain = ?",
        )
          .bind(accountId, query.domain)
          .first();
        if (!known)
          throw validationError("domain", `domain ${query.domain} is not one this account has sent from`);
      }
      return c.json(await getReputation(c.env, accountId, { days: query.days ?? 7, domain: query.domain }));
    },
  );
}
