CREATE TABLE `alert_defaults` (
	`account_id` text PRIMARY KEY NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `alert_rules` (
	`account_id` text NOT NULL,
	`id` text NOT NULL,
	`metric` text NOT NULL,
	`threshold` real NOT NULL,
	`window` text NOT NULL,
	`min_sent` integer NOT NULL,
	`filters` text DEFAULT '{}' NOT NULL,
	`description` text,
	`state` text NOT NULL,
	`last_value` real,
	`last_evaluated_at` integer,
	`transitions` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`account_id`, `id`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `alerts` (
	`account_id` text NOT NULL,
	`occurred_at` integer NOT NULL,
	`id` text NOT NULL,
	`rule_id` text NOT NULL,
	`type` text NOT NULL,
	`metric` text NOT NULL,
	`value` real NOT NULL,
	`threshold` real NOT NULL,
	`window_start` integer NOT NULL,
	`window_end` integer NOT NULL,
	`window_sent` integer NOT NULL,
	`filters` text NOT NULL,
	`pushed_at` integer,
	PRIMARY KEY(`account_id`, `occurred_at`, `id`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE INDEX `alerts_unpushed_idx` ON `alerts` (`occurred_at`) WHERE pushed_at IS NULL;--> statement-breakpoint
CREATE INDEX `alerts_rule_idx` ON `alerts` (`account_id`,`rule_id`,`occurred_at`);--> statement-breakpoint
CREATE INDEX `alerts_time_idx` ON `alerts` (`occurred_at`);--> statement-breakpoint
CREATE TABLE `mailbox_domains` (
	`domain` text PRIMARY KEY NOT NULL,
	`provider` text NOT NULL,
	`learned_at` integer NOT NULL
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `link_rollups` (
	`account_id` text NOT NULL,
	`day` integer NOT NULL,
	`url` text NOT NULL,
	`link_name` text NOT NULL,
	`campaign` text NOT NULL,
	`template_id` text NOT NULL,
	`topic` text NOT NULL,
	`from_domain` text NOT NULL,
	`tags` text NOT NULL,
	`mailbox_provider` text NOT NULL,
	`clicked` integer DEFAULT 0 NOT NULL,
	`unique_clicked` integer DEFAULT 0 NOT NULL,
	`clicked_by_person` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`account_id`, `day`, `url`, `link_name`, `campaign`, `template_id`, `topic`, `from_domain`, `tags`, `mailbox_provider`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `metric_rollups_day` (
	`account_id` text NOT NULL,
	`bucket` integer NOT NULL,
	`campaign` text NOT NULL,
	`template_id` text NOT NULL,
	`topic` text NOT NULL,
	`from_domain` text NOT NULL,
	`tags` text NOT NULL,
	`sent` integer DEFAULT 0 NOT NULL,
	`delivered` integer DEFAULT 0 NOT NULL,
	`delayed` integer DEFAULT 0 NOT NULL,
	`bounced` integer DEFAULT 0 NOT NULL,
	`bounced_permanent` integer DEFAULT 0 NOT NULL,
	`complained` integer DEFAULT 0 NOT NULL,
	`unsubscribed` integer DEFAULT 0 NOT NULL,
	`suppressed` integer DEFAULT 0 NOT NULL,
	`failed` integer DEFAULT 0 NOT NULL,
	`opened` integer DEFAULT 0 NOT NULL,
	`opened_by_proxy` integer DEFAULT 0 NOT NULL,
	`opened_by_person` integer DEFAULT 0 NOT NULL,
	`unique_opened` integer DEFAULT 0 NOT NULL,
	`unique_opened_by_person` integer DEFAULT 0 NOT NULL,
	`clicked` integer DEFAULT 0 NOT NULL,
	`unique_clicked` integer DEFAULT 0 NOT NULL,
	PRIMARY KEY(`account_id`, `bucket`, `campaign`, `template_id`, `topic`, `from_domain`, `tags`)
) WITHOUT ROWID;
