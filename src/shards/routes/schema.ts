import * as z from "zod";
import { MAX_SHARD_INDEX } from "../../config";
import { accountIdSchema } from "../../lib/params";
import { MAX_PLACEMENT_SHARDS } from "../placements";

/** Schemas of the shard routes (SPEC §17), each both validating and documenting. */

export const tags = ["operations"];

const shardIndex = z.number().int().min(0).max(MAX_SHARD_INDEX);

export const accountPath = z.object({ account_id: accountIdSchema });

export const putPlacementBody = z
  .object({
    shards: z
      .array(shardIndex)
      .min(1)
      .max(MAX_PLACEMENT_SHARDS)
      .meta({
        description:
          "1 to 8 bound shard indexes, without repeats. More than one stripes the account: each email goes to " +
          "shard `hash(email_id) mod k` of the list; its suppressions live on the first.",
      }),
  })
  .strict();

export const placementSchema = z
  .object({
    account_id: z.string(),
    shards: z
      .array(shardIndex)
      .meta({ description: "Where new rows go (the hashed shard alone without a placement)" }),
    previous: z.array(shardIndex).nullable().meta({
      description:
        "Shards still read until they hold nothing of the account; then the scheduled work drops them",
    }),
    since: z.iso
      .datetime()
      .nullable()
      .meta({ description: "When `shards` took effect; null for an account never placed" }),
  })
  .meta({ id: "Placement" });

export const shardSchema = z
  .object({
    shard: shardIndex,
    active: z.boolean().meta({ description: "In EVENT_SHARDS: takes new accounts" }),
    accounts: z.number().int().min(0).meta({ description: "Accounts with events on the shard" }),
    events: z.number().int().min(0),
    estimated: z.boolean().meta({
      description: "true when `events` (past 9,000) or `accounts` (past 900) is estimated, not counted",
    }),
    bytes: z.number().int().min(0).meta({ description: "The database's size as D1 reports it" }),
    size_limit_bytes: z.number().int(),
  })
  .meta({ id: "Shard" });

export const shardListSchema = z
  .object({ object: z.literal("list"), data: z.array(shardSchema) })
  .meta({ id: "ShardList" });
