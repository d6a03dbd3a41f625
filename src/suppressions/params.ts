import type { Context } from "hono";
import type { AppEnv } from "../app-env";
import { actingAccount, principalOf } from "../auth/middleware";
import { TOPIC_PATTERN } from "../events/record";
import { validationError } from "../lib/errors";
import { INVALID_EMAIL, normalizeEmail } from "./address";

/**
 * Request parsing shared by the suppression routes. Every route takes `account_id` (admin only) in
 * the query, and the routes with a body also in the body; any other unknown or repeated query
 * parameter is a 400 naming it, so a misspelt filter never silently widens a read or a delete.
 */

export function queryParams<K extends string>(
  c: Context<AppEnv>,
  known: readonly K[],
): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [name, value] of new URL(c.req.url).searchParams) {
    if (!(known as readonly string[]).includes(name))
      throw validationError(name, `unknown parameter ${name}`);
    if (out[name as K] !== undefined) throw validationError(name, `${name} may be given once`);
    out[name as K] = value;
  }
  return out;
}

/** The `{email}` path parameter (Hono has percent-decoded it), validated and lowercased. */
export function pathEmail(c: Context<AppEnv>): string {
  const email = normalizeEmail(c.req.param("email") ?? "");
  if (email === null) throw validationError("email", `email ${INVALID_EMAIL}`);
  return email;
}

export function parseTopic(param: string, value: string): string {
  if (!TOPIC_PATTERN.test(value))
    throw validationError(param, `${param} must be 1-64 characters of [a-z0-9_.-]`);
  return value;
}

/** The account a request acts for, from `account_id` in the query and/or the body (which must agree). */
export function accountFor(c: Context<AppEnv>, fromQuery: string | undefined, fromBody?: string): string {
  if (fromQuery !== undefined && fromBody !== undefined && fromQuery !== fromBody) {
    throw validationError("account_id", "account_id differs between the query and the body");
  }
  const requested = fromBody ?? fromQuery;
  if (requested !== undefined && !/^[A-Za-z0-9_.:-]{1,64}$/.test(requested)) {
    throw validationError("account_id", "account_id must be an account id");
  }
  return actingAccount(principalOf(c), requested);
}
