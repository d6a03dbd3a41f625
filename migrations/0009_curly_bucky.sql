CREATE TABLE `metric_rollups_hour` (
	`account_id` text NOT NULL,
	`bucket` integer NOT NULL,
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
	PRIMARY KEY(`account_id`, `bucket`)
) WITHOUT ROWID;
--> statement-breakpoint
-- Back-fill: the hourly totals of every rollup kept so far, summed from the quarter hours.
INSERT INTO `metric_rollups_hour` (account_id, bucket, sent, delivered, delayed, bounced, bounced_permanent, complained, unsubscribed, suppressed, failed, opened, opened_by_proxy, opened_by_person, unique_opened, unique_opened_by_person, clicked, unique_clicked)
SELECT account_id, bucket - bucket % 3600000, SUM(sent), SUM(delivered), SUM(delayed), SUM(bounced), SUM(bounced_permanent), SUM(complained), SUM(unsubscribed), SUM(suppressed), SUM(failed), SUM(opened), SUM(opened_by_proxy), SUM(opened_by_person), SUM(unique_opened), SUM(unique_opened_by_person), SUM(clicked), SUM(unique_clicked)
FROM `metric_rollups` GROUP BY account_id, bucket - bucket % 3600000;
