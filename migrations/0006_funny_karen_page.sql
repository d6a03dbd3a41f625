CREATE TABLE `leases` (
	`account_id` text NOT NULL,
	`kind` text NOT NULL,
	`holder` text NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`account_id`, `kind`)
);
