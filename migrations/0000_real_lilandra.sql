CREATE TABLE `accounts` (
	`id` text PRIMARY KEY NOT NULL,
	`plan` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `events` (
	`account_id` text NOT NULL,
	`occurred_at` integer NOT NULL,
	`id` text NOT NULL,
	`type` text NOT NULL,
	`email_id` text NOT NULL,
	`message_id` text,
	`from_address` text,
	`from_domain` text,
	`recipient` text NOT NULL,
	`subject` text,
	`topic` text,
	`campaign` text,
	`template_id` text,
	`tags` text DEFAULT '[]' NOT NULL,
	`smtp_code` integer,
	`smtp_response` text,
	`bounce_type` text,
	`bounce_classification` text,
	`complaint_type` text,
	`attempt` integer,
	`tracking` text,
	PRIMARY KEY(`account_id`, `occurred_at`, `id`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE INDEX `events_email_idx` ON `events` (`account_id`,`email_id`,`occurred_at`);--> statement-breakpoint
CREATE INDEX `events_recipient_idx` ON `events` (`account_id`,`recipient`,`occurred_at`);--> statement-breakpoint
CREATE TABLE `messages` (
	`account_id` text NOT NULL,
	`email_id` text NOT NULL,
	`message_id` text,
	`from_address` text,
	`from_domain` text,
	`subject` text,
	`topic` text,
	`campaign` text,
	`template_id` text,
	`tags` text DEFAULT '[]' NOT NULL,
	`registered_at` integer NOT NULL,
	PRIMARY KEY(`account_id`, `email_id`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `sending_domains` (
	`account_id` text NOT NULL,
	`domain` text NOT NULL,
	`first_seen_at` integer NOT NULL,
	PRIMARY KEY(`account_id`, `domain`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `suppressions` (
	`account_id` text NOT NULL,
	`email` text NOT NULL,
	`topic` text DEFAULT '' NOT NULL,
	`reason` text NOT NULL,
	`email_id` text,
	`suppressed_at` integer NOT NULL,
	PRIMARY KEY(`account_id`, `email`, `topic`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE INDEX `suppressions_recent_idx` ON `suppressions` (`account_id`,`suppressed_at`);