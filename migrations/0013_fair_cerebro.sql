CREATE TABLE `metric_rollups_day_domains` (
	`account_id` text NOT NULL,
	`bucket` integer NOT NULL,
	`from_domain` text NOT NULL,
	`recipient_domain` text NOT NULL,
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
	PRIMARY KEY(`account_id`, `bucket`, `from_domain`, `recipient_domain`)
) WITHOUT ROWID;
--> statement-breakpoint
-- Back-fill: the daily recipient-domain rows of every rollup kept so far, summed from the quarter hours
-- (which hold every dimension, so the sums are exact).
INSERT INTO `metric_rollups_day_domains` (account_id, bucket, from_domain, recipient_domain, sent, delivered, delayed, bounced, bounced_permanent, complained, unsubscribed, suppressed, failed, opened, opened_by_proxy, opened_by_person, unique_opened, unique_opened_by_person, clicked, unique_clicked)
SELECT account_id, bucket - bucket % 86400000, from_domain, recipient_domain, SUM(sent), SUM(delivered), SUM(delayed), SUM(bounced), SUM(bounced_permanent), SUM(complained), SUM(unsubscribed), SUM(suppressed), SUM(failed), SUM(opened), SUM(opened_by_proxy), SUM(opened_by_person), SUM(unique_opened), SUM(unique_opened_by_person), SUM(clicked), SUM(unique_clicked)
FROM `metric_rollups` GROUP BY account_id, bucket - bucket % 86400000, from_domain, recipient_domain;
