CREATE TABLE `erasures` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`status` text NOT NULL,
	`email_hash` text NOT NULL,
	`removed` text NOT NULL,
	`created_at` integer NOT NULL,
	`completed_at` integer
);
--> statement-breakpoint
CREATE INDEX `erasures_status_idx` ON `erasures` (`status`,`created_at`);--> statement-breakpoint
CREATE TABLE `suppression_imports` (
	`id` text PRIMARY KEY NOT NULL,
	`account_id` text NOT NULL,
	`status` text NOT NULL,
	`format` text NOT NULL,
	`offset` integer DEFAULT 0 NOT NULL,
	`line` integer DEFAULT 0 NOT NULL,
	`columns` text,
	`rows` integer DEFAULT 0 NOT NULL,
	`accepted` integer DEFAULT 0 NOT NULL,
	`rejected` integer DEFAULT 0 NOT NULL,
	`lease_holder` text NOT NULL,
	`errors` text DEFAULT '[]' NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`completed_at` integer
);
--> statement-breakpoint
CREATE INDEX `suppression_imports_status_idx` ON `suppression_imports` (`status`,`updated_at`);--> statement-breakpoint
CREATE TABLE `suppression_changes` (
	`account_id` text NOT NULL,
	`id` text NOT NULL,
	`occurred_at` integer NOT NULL,
	`type` text NOT NULL,
	`email` text NOT NULL,
	`email_hash` text,
	`topic` text NOT NULL,
	`reason` text NOT NULL,
	`email_id` text,
	`suppressed_at` integer NOT NULL,
	`expires_at` integer,
	`pending` integer DEFAULT 1 NOT NULL,
	PRIMARY KEY(`account_id`, `id`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE INDEX `suppression_changes_time_idx` ON `suppression_changes` (`occurred_at`);--> statement-breakpoint
CREATE INDEX `suppression_changes_pending_idx` ON `suppression_changes` (`pending`) WHERE "suppression_changes"."pending" = 1;--> statement-breakpoint
ALTER TABLE `suppressions` ADD `expires_at` integer;--> statement-breakpoint
ALTER TABLE `suppressions` ADD `email_hash` text;--> statement-breakpoint
CREATE INDEX `suppressions_expiry_idx` ON `suppressions` (`expires_at`) WHERE "suppressions"."expires_at" IS NOT NULL;