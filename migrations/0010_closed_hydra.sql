CREATE TABLE `rollup_folds` (
	`account_id` text NOT NULL,
	`day` integer NOT NULL,
	PRIMARY KEY(`account_id`, `day`)
) WITHOUT ROWID;
--> statement-breakpoint
-- The account days on which a value was folded (db/metric-rollups.ts rollup_folds): marked when a
-- day row of a folded value is first inserted (an upsert that adds to it fires no INSERT trigger).
CREATE TRIGGER `metric_rollups_day_folds` AFTER INSERT ON `metric_rollups_day`
WHEN NEW.campaign = '(other)' OR NEW.template_id = '(other)' OR NEW.topic = '(other)' OR NEW.tags = '["(other)"]'
BEGIN
  INSERT INTO rollup_folds (account_id, day) VALUES (NEW.account_id, NEW.bucket) ON CONFLICT DO NOTHING;
END;
