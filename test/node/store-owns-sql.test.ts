import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

/**
 * One owner per table (STYLE.md): the tables that grow with mail are read and written only by the
 * event store, src/store/, which is handed the database it works on (SPEC §17's shards plug in
 * there). This test fails when SQL naming them appears anywhere else in src/ (src/db/ declares them
 * and may name them); .dependency-cruiser.cjs refuses imports of their Drizzle tables outside the
 * store, so the query builder cannot reach them either. Runs in `npm run check` (vitest.node.config.ts).
 */

const PER_EMAIL_TABLES = [
  "events",
  "messages",
  "message_ids",
  "metric_rollups",
  "metric_rollups_day",
  "metric_rollups_day_domains",
  "metric_rollups_hour",
  "rollup_folds",
  "link_rollups",
  "webhook_deliveries",
  "click_bursts",
] as const;
const PER_EMAIL_INDEXES = ["events_email_idx", "events_recipient_idx", "click_bursts_time_idx"];
const ALLOWED = /^src\/(store|db)\//;

const tables = PER_EMAIL_TABLES.join("|");
const RULES: { name: string; pattern: RegExp }[] = [
  {
    name: "a statement naming a per-email table",
    pattern: new RegExp(
      String.raw`\b(from|join|into|update|delete\s+from|table|exists\s*\(\s*select[^)]*from)\s+(${tables})\b(?!\s*[-'"])`,
      "i",
    ),
  },
  { name: "an index of a per-email table", pattern: new RegExp(`\\b(${PER_EMAIL_INDEXES.join("|")})\\b`) },
  {
    name: "a per-email table's name as a string",
    // Not message_ids: SparkPost names a query parameter so.
    pattern: /["'`](metric_rollups|webhook_deliveries|click_bursts)["'`]/,
  },
  {
    name: "a statement on an interpolated table (compose it in src/store/)",
    pattern: /\b(FROM|JOIN|INTO|UPDATE)\s+\$\{/,
  },
];

/** The code without its comments (block and line), so prose may speak of events and messages. */
function withoutComments(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return /\.(ts|js|mjs)$/.test(entry.name) ? [path] : [];
  });
}

/** Every line of src/ outside the store that breaks a rule. */
function violations(root = "src"): string[] {
  const found: string[] = [];
  for (const file of sourceFiles(root)) {
    const name = relative(".", file).replaceAll("\\", "/");
    if (ALLOWED.test(name)) continue;
    withoutComments(readFileSync(file, "utf8"))
      .split("\n")
      .forEach((line, i) => {
        for (const rule of RULES)
          if (rule.pattern.test(line)) found.push(`${name}:${i + 1}: ${rule.name}: ${line.trim()}`);
      });
  }
  return found;
}

describe("the event store owns the per-email tables' SQL", () => {
  it("finds no SQL on them in src/ outside src/store/", () => {
    expect(violations()).toEqual([]);
  });

  it("would catch each kind of statement", () => {
    const code = (line: string) => RULES.some((r) => r.pattern.test(withoutComments(line)));
    expect(code('db.prepare("SELECT * FROM events WHERE account_id = ?")')).toBe(true);
    expect(code("`DELETE FROM webhook_deliveries WHERE endpoint_id = ?1`")).toBe(true);
    expect(code("`INSERT INTO click_bursts (account_id) VALUES (?)`")).toBe(true);
    expect(code("`UPDATE messages SET topic = ?`")).toBe(true);
    expect(code("`SELECT 1 FROM metric_rollups AS r`")).toBe(true);
    expect(code("`LEFT JOIN message_ids AS m ON m.email_id = e.email_id`")).toBe(true);
    expect(code("`SELECT * FROM x INDEXED BY events_email_idx`")).toBe(true);
    expect(code('const table = "webhook_deliveries";')).toBe(true);
    expect(code(["`DELETE FROM $", "{table.name} WHERE account_id = ?1`"].join(""))).toBe(true);
    // Prose is not SQL.
    expect(code("// reads events from events, as the consumer wrote them")).toBe(false);
    expect(code("/* the store deletes from events */")).toBe(false);
    expect(code('throw validationError("limit", "limit must be from 1 to 100")')).toBe(false);
  });
});
