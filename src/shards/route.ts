import type { Env } from "../env";
import { activeShards, shardDb } from "./bindings";
import { type Directory, loadDirectory, shardListText } from "./directory";
import { rendezvousShard, stripeOf } from "./hash";

/**
 * Where an account's rows are (SPEC §17). New rows go to `shards` (an email to its stripe); reads
 * visit `read`, which adds the shards an earlier placement or an earlier `EVENT_SHARDS` list wrote
 * to, until nothing of the account is left there. The account's suppressions and mirror journal
 * live on `home`, the first of `shards`.
 */
export interface AccountShards {
  accountId: string;
  shards: readonly number[];
  previous: readonly number[];
  read: readonly number[];
  home: number;
  /** True when the placement table holds a row for the account. */
  placed: boolean;
  since: number | null;
}

export async function accountShards(env: Env, accountId: string): Promise<AccountShards> {
  return routeAccount(env, accountId, await loadDirectory(env));
}

export function routeAccount(env: Env, accountId: string, directory: Directory): AccountShards {
  const placement = directory.placements.get(accountId);
  const active = activeShards(env);
  const shards = placement ? placement.shards : [rendezvousShard(accountId, active)];
  const previous: number[] = [];
  const add = (i: number) => {
    if (!shards.includes(i) && !previous.includes(i)) previous.push(i);
  };
  if (placement) {
    for (const i of placement.previous ?? []) add(i);
  } else {
    const current = shardListText(active);
    for (const set of directory.olderSets)
      if (shardListText(set) !== current) add(rendezvousShard(accountId, set));
  }
  return {
    accountId,
    shards,
    previous,
    read: [...shards, ...previous],
    home: shards[0] ?? 0,
    placed: placement !== undefined,
    since: placement?.since ?? null,
  };
}

/** The shard an email of the account is written to: its stripe, `hash(email_id) mod k` of the list. */
export const shardOfEmail = (account: AccountShards, emailId: string): number =>
  account.shards[stripeOf(emailId, account.shards.length)] ?? account.home;

/** The databases a read of the account visits, with their shard index. */
export const readDbs = (env: Env, account: AccountShards): { shard: number; db: D1Database }[] =>
  account.read.map((shard) => ({ shard, db: shardDb(env, shard) }));

/** The database of the account's suppressions and mirror journal. */
export const homeDb = (env: Env, account: AccountShards): D1Database => shardDb(env, account.home);

/** The database an email of the account is written to. */
export const emailDb = (env: Env, account: AccountShards, emailId: string): D1Database =>
  shardDb(env, shardOfEmail(account, emailId));

/** The home database of an account (its suppressions and their journal, SPEC §17). */
export async function homeDbOf(env: Env, accountId: string): Promise<D1Database> {
  return homeDb(env, await accountShards(env, accountId));
}

/** Items grouped by their account's home database (one round of routing for all of them). */
export async function groupByHome<T>(
  env: Env,
  items: T[],
  accountOf: (item: T) => string,
): Promise<{ db: D1Database; items: T[] }[]> {
  const directory = await loadDirectory(env);
  const groups = new Map<number, T[]>();
  for (const item of items) {
    const home = routeAccount(env, accountOf(item), directory).home;
    groups.set(home, [...(groups.get(home) ?? []), item]);
  }
  return [...groups].map(([home, list]) => ({ db: shardDb(env, home), items: list }));
}
