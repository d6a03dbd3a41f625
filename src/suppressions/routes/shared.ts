import type { Context } from "hono";
import * as z from "zod";
import type { AppEnv } from "../../app-env";
import { actingAccount, principalOf } from "../../auth/middleware";
import { ApiError, validationError } from "../../lib/errors";
import { emailAddressSchema } from "../address";

/** Parameters and rules shared by the suppression routes (one verb a file beside this one). */

export const tags = ["suppressions"];

export const emailPath = z.object({
  email: emailAddressSchema.meta({
    description: "the address, URL-encoded (`@` as `%40`); matched case-insensitively",
  }),
});

/**
 * The account a request acts for, from `account_id` in the query and/or the body, which must agree:
 * with a body, either may name it.
 */
export function accountFor(c: Context<AppEnv>, fromQuery: string | undefined, fromBody?: string): string {
  if (fromQuery !== undefined && fromBody !== undefined && fromQuery !== fromBody) {
    throw validationError("account_id", "account_id differs between the query and the body");
  }
  return actingAccount(principalOf(c), fromBody ?? fromQuery);
}

export const notSuppressed = (email: string, topic: string | null = null) =>
  new ApiError(
    "not_found",
    `${email} has no suppression entry${topic === null ? "" : ` for topic ${topic}`}`,
  );
