import { eq } from "drizzle-orm";
import { drizzle } from "drizzle-orm/d1";
import { effectivePlan, plans } from "../config";
import { accounts } from "../db/accounts";
import type { Env } from "../env";
import { validationError } from "../lib/errors";
import { DAY_MS } from "../lib/params";

export interface AccountPlan {
  id: string;
  plan: string;
  retention_days: number;
}

/** The account's row in the control database (none: DEFAULT_PLAN, events complete): one key read. */
const accountRow = (env: Env, accountId: string) =>
  drizzle(env.DB)
    .select({ plan: accounts.plan, completeFrom: accounts.eventsCompleteFrom })
    .from(accounts)
    .where(eq(accounts.id, accountId))
    .get();

/** The account's plan and retention; an account with no row has DEFAULT_PLAN (SPEC §11). */
export async function getAccountPlan(env: Env, accountId: string): Promise<AccountPlan> {
  const row = await accountRow(env, accountId);
  return { id: accountId, ...effectivePlan(env, row?.plan ?? null) };
}

export async function setAccountPlan(
  env: Env,
  accountId: string,
  plan: string,
  now = Date.now(),
): Promise<AccountPlan> {
  const { plans: all } = plans(env);
  const retention = Object.hasOwn(all, plan) ? all[plan] : undefined;
  if (retention === undefined) {
    throw validationError("plan", `plan must be one of ${Object.keys(all).join(", ")}`);
  }
  const row = await accountRow(env, accountId);
  // A longer retention reaches back past what the shorter one's purge may have removed: the events
  // are complete only from the old cutoff on (db/accounts.ts events_complete_from), never earlier
  // than a cutoff recorded before.
  const before = effectivePlan(env, row?.plan ?? null).retention_days;
  const completeFrom =
    retention > before
      ? Math.max(row?.completeFrom ?? 0, now - before * DAY_MS)
      : (row?.completeFrom ?? null);
  await drizzle(env.DB)
    .insert(accounts)
    .values({ id: accountId, plan, createdAt: now, updatedAt: now, eventsCompleteFrom: completeFrom })
    .onConflictDoUpdate({
      target: accounts.id,
      set: { plan, updatedAt: now, eventsCompleteFrom: completeFrom },
    });
  return { id: accountId, plan, retention_days: retention };
}

/**
 * Since when the account's stored events are complete (db/accounts.ts events_complete_from), or
 * null when no plan change left a gap that the current retention still reaches: the totals and
 * offset pages that read the rollups count the events before it.
 */
export async function eventsCompleteFrom(
  env: Env,
  accountId: string,
  now = Date.now(),
): Promise<number | null> {
  const row = await accountRow(env, accountId);
  if (!row || row.completeFrom === null) return null;
  const earliest = now - effectivePlan(env, row.plan).retention_days * DAY_MS;
  return row.completeFrom > earliest ? row.completeFrom : null;
}
