import type { Env } from "../env";
import type { QueueMessage } from "../pipeline/messages";
import { shardDb } from "./bindings";
import { loadDirectory } from "./directory";
import { type AccountShards, routeAccount, shardOfEmail } from "./route";

/** The account and email a queue message writes for. */
const targetOf = (body: QueueMessage): { accountId: string; emailId: string } =>
  body.type === "event"
    ? { accountId: body.event.account_id, emailId: body.event.email_id }
    : { accountId: body.account_id, emailId: body.message.email_id };

export interface ShardGroup<T> {
  shard: number;
  db: D1Database;
  items: T[];
}

/**
 * A queue batch split by the shard each message writes to (SPEC §12, §17): an email's registration
 * and events go to the same shard (its stripe), so every group is one transaction on one database,
 * enrichment joins included. `routes` gives each account's placement, for suppressions' home.
 */
export async function groupByShard<T extends { body: QueueMessage }>(
  env: Env,
  items: T[],
): Promise<{ groups: ShardGroup<T>[]; routes: Map<string, AccountShards> }> {
  const directory = await loadDirectory(env);
  const routes = new Map<string, AccountShards>();
  const groups = new Map<number, ShardGroup<T>>();
  for (const item of items) {
    const { accountId, emailId } = targetOf(item.body);
    let route = routes.get(accountId);
    if (!route) {
      route = routeAccount(env, accountId, directory);
      routes.set(accountId, route);
    }
    const shard = shardOfEmail(route, emailId);
    let group = groups.get(shard);
    if (!group) {
      group = { shard, db: shardDb(env, shard), items: [] };
      groups.set(shard, group);
    }
    group.items.push(item);
  }
  return { groups: [...groups.values()], routes };
}
