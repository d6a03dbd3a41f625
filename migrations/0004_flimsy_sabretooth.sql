CREATE TABLE `click_bursts` (
	`account_id` text NOT NULL,
	`email_id` text NOT NULL,
	`recipient` text NOT NULL,
	`occurred_at` integer NOT NULL,
	`id` text NOT NULL,
	`network` text,
	`link` text NOT NULL,
	PRIMARY KEY(`account_id`, `email_id`, `recipient`, `occurred_at`, `id`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE INDEX `click_bursts_time_idx` ON `click_bursts` (`occurred_at`);--> statement-breakpoint
ALTER TABLE `events` ADD `network` text;