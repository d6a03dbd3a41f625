import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { effectivePlan, plans } from "../config";
import { accounts } from "../db/accounts";
import type { Env } from "../env";
import { validationError } from "../lib/errors";

export interface AccountPlan {
  id: string;
  plan: string;
  retention_days: number;
}

/** The account's plan and retention; an account with no row has DEFAULT_PLAN (SPEC §11). */
export async function getAccountPlan(env: Env, accountId: string): Promise<AccountPlan> {
  const row = await drizzle(env.DB)
    .select({ plan: accounts.plan })
    .from(accounts)
    .where(eq(accounts.id, accountId))
    .get();
  return { id: accountId, ...effectivePlan(env, row?.plan ?? null) };
}

export async function setAccountPlan(env: Env, accountId: string, plan: string): Promise<AccountPlan> {
  const { plans: all } = plans(env);
  const retention = Object.hasOwn(all, plan) ? all[plan] : undefined;
  if (retention === undefined) {
    throw validationError("plan", `plan must be one of ${Object.keys(all).join(", ")}`);
  }
  const now = Date.now();
  await drizzle(env.DB)
    .insert(accounts)
    .values({ id: accountId, plan, createdAt: now, updatedAt: now })
    .onConflictDoUpdate({ target: accounts.id, set: { plan, updatedAt: now } });
  return { id: accountId, plan, retention_days: retention };
}
