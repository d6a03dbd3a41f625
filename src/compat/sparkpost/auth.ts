import type { Scope } from "../../auth/jwt";
import { authorize, withScope } from "../../auth/middleware";
import { ApiError } from "../../lib/errors";
import type { ScopedMiddleware } from "../../lib/openapi";

/**
 * SparkPost clients send the API key bare (`Authorization: <key>`); mailtrail's JWT goes in its place.
 * `Bearer <JWT>` is accepted too. Verification, the account's rate limit and scopes are exactly those of the native routes.
 */
export function requireSparkPostScope(scope: Scope): ScopedMiddleware {
  return withScope(scope, async (c, next) => {
    const header = (c.req.header("authorization") ?? "").trim();
    const match = /^(?:Bearer\s+)?([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*)$/i.exec(header);
    if (!match?.[1])
      throw new ApiError("authentication_error", "send Authorization: <JWT> (or Bearer <JWT>)");
    await authorize(c, match[1], scope);
    await next();
  });
}
