import * as z from "zod";
import { requireScope } from "../auth/middleware";
import { type App, commonErrors, jsonContent, route } from "../lib/openapi";
import { parkedStatus } from "../queue/parked";

const parkedSchema = z
  .object({
    object: z.literal("parked_messages"),
    count: z.number().int().meta({ description: "Dead-lettered queue messages waiting in R2 for D1" }),
    count_exact: z.boolean().meta({ description: "false when more wait than were counted (10,000)" }),
    oldest_enqueued_at: z
      .string()
      .nullable()
      .meta({ description: "When the oldest waiting message was first queued; null when none wait" }),
    stuck: z.number().int().meta({
      description: "Messages D1 refused on their own while it took others (R2 prefix stuck/), up to 1,000",
    }),
  })
  .meta({ id: "ParkedMessages" });

/** Operations routes for the service's operator (`admin` scope), not for accounts. */
export function registerAdminRoutes(app: App): void {
  route(
    app,
    {
      method: "get",
      path: "/v1/admin/parked",
      operationId: "getParkedMessages",
      summary: "Dead-letter backlog (admin)",
      description:
        "Queue messages that D1 refused through every retry wait in R2 and are written by the cron once D1 " +
        "answers. This is how many wait and how old the oldest is; each cron run also logs it.",
      tags: ["operations"],
      security: [{ bearer: [] }],
      responses: { 200: jsonContent(parkedSchema, "The backlog"), ...commonErrors },
    },
    requireScope("admin"),
    async (c) => c.json({ object: "parked_messages" as const, ...(await parkedStatus(c.env)) }),
  );
}
