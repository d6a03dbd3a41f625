import type { MiddlewareHandler } from "hono";
import * as z from "zod";
import type { AppEnv } from "../app-env";
import type { ErrorBody, ErrorType } from "../lib/errors";

/**
 * Errors in each compatibility surface's own shape (SPEC §16), with mailtrail's status codes. Routes
 * throw mailtrail's ApiError as everywhere; this middleware, installed on a surface's path prefix
 * before its routes, rewrites every §4 error body leaving that prefix (the routes' own errors, auth
 * failures, 404 and 405 of the router) through the surface's mapper. Headers (Request-Id, Allow,
 * Retry-After) are kept.
 */
export type ErrorMapper = (error: ErrorBody["error"], status: number) => unknown;

export function surfaceErrors(mapper: ErrorMapper): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    await next();
    if (c.res.status < 400 || !c.res.headers.get("content-type")?.includes("application/json")) return;
    const body = (await c.res
      .clone()
      .json()
      .catch(() => null)) as Partial<ErrorBody> | null;
    if (!body?.error?.type) return;
    const status = c.res.status;
    const headers = new Headers(c.res.headers);
    headers.delete("content-length");
    // Hono merges the old response's headers into a new one unless it is cleared first.
    c.res = undefined;
    c.res = new Response(JSON.stringify(mapper(body.error, status)), { status, headers });
  };
}

/** The upper-case codes of the `{"success": false, "error": {"code", "message"}}` surfaces (Numonic, Unosend). */
export const UPPER_CODES: Record<ErrorType, string> = {
  validation_error: "VALIDATION_ERROR",
  signature_error: "VALIDATION_ERROR",
  authentication_error: "UNAUTHORIZED",
  permission_error: "FORBIDDEN",
  not_found: "NOT_FOUND",
  method_not_allowed: "METHOD_NOT_ALLOWED",
  payload_too_large: "PAYLOAD_TOO_LARGE",
  unsupported_media_type: "UNSUPPORTED_MEDIA_TYPE",
  rate_limit_exceeded: "RATE_LIMITED",
  internal_error: "INTERNAL_ERROR",
  configuration_error: "INTERNAL_ERROR",
  unavailable: "SERVICE_UNAVAILABLE",
};

export const successFalseMapper: ErrorMapper = (error) => ({
  success: false,
  error: { code: UPPER_CODES[error.type], message: error.message },
});

export const successFalseErrorSchema = (id: string) =>
  z
    .object({
      success: z.literal(false),
      error: z.object({
        code: z.enum([...new Set(Object.values(UPPER_CODES))] as [string, ...string[]]),
        message: z.string(),
      }),
    })
    .meta({ id });

/** The documented error responses of a surface, all in its one error schema. */
export function surfaceErrorResponses(schema: z.ZodType, notFound = false) {
  const r = (description: string) => ({ description, content: { "application/json": { schema } } });
  return {
    400: r("A parameter is invalid"),
    401: r("Missing, malformed, expired or wrongly signed token"),
    403: r("The token lacks the scope, or names another account without admin"),
    ...(notFound ? { 404: r("Not found") } : {}),
    500: r("Internal or configuration error"),
    503: r("A dependency (D1) failed; retry"),
  };
}
