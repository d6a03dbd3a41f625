import * as z from "zod";

/** The `{token}` path parameter of the tracking routes. */
export const tokenParam = z.object({
  token: z.string().meta({ description: "An opaque tracking token issued by POST /v1/messages/instrument" }),
});
