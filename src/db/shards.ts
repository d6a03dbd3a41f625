import { integer, sqliteTable, text } from "drizzle-orm/sqlite-core";

/**
 * Control database (SPEC §17): the accounts that do not live where the rendezvous hash puts them.
 * Only the exceptions have a row (heavy accounts, striped accounts, accounts being moved), so the
 * Worker reads the table whole, caches it per isolate for at most 60 s, and routing costs no D1 read
 * per request. Cost per event: none (a row per placed account, written by the admin routes and the
 * scheduled work that drops `previous`).
 */
export const shardPlacements = sqliteTable("shard_placements", {
  accountId: text("account_id").primaryKey(),
  /** JSON array of 1 to 8 shard indexes; more than one stripes the account by email_id. */
  shards: text("shards").notNull(),
  /** JSON array of the shards that may still hold the account's older rows (read, never written), or null. */
  previous: text("previous"),
  /** When `shards` took effect (epoch ms). */
  since: integer("since").notNull(),
  updatedAt: integer("updated_at").notNull(),
});
export type ShardPlacementRow = typeof shardPlacements.$inferSelect;

/**
 * Control database: every `EVENT_SHARDS` list the service has hashed accounts over. When the list
 * changes, an account the new list hashes elsewhere writes to its new shard at once, and its reads
 * keep merging the shard the older list gave it until nothing of the account can be left there
 * (`retired_at` + the rollups' 400 days): moving by expiry, with no row copied. A few rows in all;
 * cost per event: none.
 */
export const shardSets = sqliteTable("shard_sets", {
  /** The list as canonical text, "0,1,2,3". */
  shards: text("shards").primaryKey(),
  firstSeenAt: integer("first_seen_at").notNull(),
  /** When another list replaced it (epoch ms); null while it is the current list. */
  retiredAt: integer("retired_at"),
});
