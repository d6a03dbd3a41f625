// drizzle-kit has no WITHOUT ROWID option. These tables are clustered on their composite primary
// key (see the comments in src/db/), so after `drizzle-kit generate` this marks their CREATE TABLE
// statements WITHOUT ROWID. It only touches statements that do not say so already, so it is safe
// to run again.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

const TABLES = [
  "events",
  "messages",
  "metric_rollups",
  "sending_domains",
  "suppressions",
  "message_ids",
  "mirror_pending",
  "webhook_endpoints",
  "webhook_deliveries",
  "click_bursts",
  "suppression_changes",
  "mailbox_domains",
  "alert_rules",
  "alerts",
  "link_rollups",
  "metric_rollups_day",
  "metric_rollups_day_domains",
  "metric_rollups_hour",
  "rollup_folds",
];
const dir = path.join(import.meta.dirname, "..", "migrations");

for (const file of readdirSync(dir).filter((f) => f.endsWith(".sql"))) {
  const full = path.join(dir, file);
  const sql = readFileSync(full, "utf8");
  const out = sql.replace(/CREATE TABLE `([a-z_]+)` \(([^;]*?)\n\);/g, (stmt, table) =>
    TABLES.includes(table) ? stmt.replace(/\n\);$/, "\n) WITHOUT ROWID;") : stmt,
  );
  if (out !== sql) {
    writeFileSync(full, out);
    console.log(`marked WITHOUT ROWID in ${file}`);
  }
}
