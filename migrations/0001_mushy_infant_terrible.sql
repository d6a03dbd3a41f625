CREATE TABLE `message_ids` (
	`account_id` text NOT NULL,
	`message_id` text NOT NULL,
	`email_id` text NOT NULL,
	`first_seen_at` integer NOT NULL,
	PRIMARY KEY(`account_id`, `message_id`, `email_id`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `mirror_pending` (
	`account_id` text NOT NULL,
	`email` text NOT NULL,
	`token` text NOT NULL,
	`since` integer NOT NULL,
	PRIMARY KEY(`account_id`, `email`)
) WITHOUT ROWID;
