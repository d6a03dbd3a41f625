CREATE TABLE `webhook_deliveries` (
	`endpoint_id` text NOT NULL,
	`event_occurred_at` integer NOT NULL,
	`event_id` text NOT NULL,
	`account_id` text NOT NULL,
	`event_type` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer NOT NULL,
	`first_attempt_at` integer NOT NULL,
	`last_attempt_at` integer NOT NULL,
	`next_attempt_at` integer,
	`response_status` integer,
	`error` text,
	PRIMARY KEY(`endpoint_id`, `event_occurred_at`, `event_id`)
) WITHOUT ROWID;
--> statement-breakpoint
CREATE TABLE `webhook_endpoints` (
	`account_id` text NOT NULL,
	`id` text NOT NULL,
	`url` text NOT NULL,
	`description` text,
	`event_types` text,
	`filters` text DEFAULT '{}' NOT NULL,
	`status` text NOT NULL,
	`disabled_reason` text,
	`secret` text NOT NULL,
	`previous_secret` text,
	`previous_expires_at` integer,
	`failing_since` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`account_id`, `id`)
) WITHOUT ROWID;
