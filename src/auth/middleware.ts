import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { ApiError } from "../lib/errors";
import type { ScopedMiddleware } from "../lib/openapi";
import { API_RETRY_AFTER_SECONDS, withinLimit } from "../lib/rate-limit";
import { type Principal, type Scope, verifyApiToken } from "./jwt";

/**
 * Verifies a token, counts the request against its account's limit (API_LIMITER), requires `scope`
 * (or `admin`), and records the principal: every authenticated route, native or compatible, comes here.
 */
export async function authorize(c: Context<AppEnv>, token: string, scope: Scope): Promise<Principal> {
  const principal = await verifyApiToken(c.env, token);
  if (!(await withinLimit(c.env.API_LIMITER, principal.accountId))) {
    throw new ApiError("rate_limit_exceeded", "too many requests for this account; retry later", {
      headers: { "Retry-After": String(API_RETRY_AFTER_SECONDS) },
    });
  }
  if (!principal.scopes.has(scope) && !principal.scopes.has("admin")) {
    throw new ApiError("permission_error", `this token lacks the ${scope} scope`);
  }
  c.set("principal", principal);
  return principal;
}

/** Authenticates the bearer token, counts the request against its account's limit, and requires `scope` (or `admin`). */
export function requireScope(scope: Scope): ScopedMiddleware {
  return withScope(scope, async (c, next) => {
    const header = c.req.header("authorization") ?? "";
    const match = /^Bearer\s+([A-Za-z0-9_.~+/=-]+)\s*$/i.exec(header);
    if (!match?.[1]) throw new ApiError("authentication_error", "send Authorization: Bearer <JWT>");
    await authorize(c, match[1], scope);
    await next();
  });
}

/** Marks an authentication middleware with the scope it requires: route() documents it (lib/openapi.ts). */
export const withScope = (scope: Scope, middleware: MiddlewareHandler<AppEnv>): ScopedMiddleware =>
  Object.assign(middleware, { scope });

export function principalOf(c: Context<AppEnv>): Principal {
  const principal = c.get("principal");
  if (!principal) throw new ApiError("internal_error", "route is missing its auth middleware");
  return principal;
}

/**
 * The account a request acts for: the token's own, or with `admin` any account named by
 * `account_id`. Naming another account without `admin` is a permission error, never a silent switch.
 */
export function actingAccount(principal: Principal, requested: string | null | undefined): string {
  if (requested === undefined || requested === null || requested === principal.accountId)
    return principal.accountId;
  if (!principal.scopes.has("admin")) {
    throw new ApiError("permission_error", "only an admin token may act for another account", {
      param: "account_id",
    });
  }
  return requested;
}
