CREATE TABLE `shard_placements` (
	`account_id` text PRIMARY KEY NOT NULL,
	`shards` text NOT NULL,
	`previous` text,
	`since` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `shard_sets` (
	`shards` text PRIMARY KEY NOT NULL,
	`first_seen_at` integer NOT NULL,
	`retired_at` integer
);
