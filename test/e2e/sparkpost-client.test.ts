/**
 * The `sparkpost` npm client (v2, a Node library built on `request`) pointed at mailtrail's
 * /compat/sparkpost under `wrangler dev`: its `origin` option takes a base URL with a path, so
 * `origin: <dev>/compat/sparkpost` makes it call /compat/sparkpost/api/v1/events/message with the
 * JWT as its bare API key, exactly as it calls api.sparkpost.com. Events are written straight into
 * the local D1 before the server starts, with the rollups the consumer would write beside them; the
 * client searches, follows links.next with its own `get`, and sees errors in SparkPost's shape.
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startWranglerDev } from "./wrangler-dev";

interface SparkPostError extends Error {
  statusCode: number;
  errors: { message: string; description: string }[];
}
interface SparkPostClient {
  events: { searchMessage(params: Record<string, unknown>): Promise<any> };
  get(options: { uri: string }): Promise<any>;
}
const SparkPost = createRequire(import.meta.url)("sparkpost") as new (
  key: string,
  options: { origin: string },
) => SparkPostClient;

const ACCOUNT = `acct_sp_${randomBytes(4).toString("hex")}`;

const sqlText = (s: string) => `'${s.replaceAll("'", "''")}'`;

/**
 * The metrics rollups of an account's seeded events, as the queue consumer writes them beside each
 * event (SPEC §15): quarter-hour, day and hourly rows of its delivered and bounced counts. Totals
 * filtered by campaign read them (src/store/rollup-totals.ts), so events written straight into D1
 * need them too.
 */
function rollupsOf(account: string): string {
  const counters =
    "SUM(type = 'email.delivered'), SUM(type = 'email.bounced'), SUM(bounce_type IS 'permanent')";
  const dims = (width: number) =>
    `account_id, occurred_at - occurred_at % ${width}, COALESCE(campaign, ''), '', '', COALESCE(from_domain, '')`;
  const where = `FROM events WHERE account_id = ${sqlText(account)}`;
  return [
    `INSERT INTO metric_rollups (account_id, bucket, campaign, template_id, topic, from_domain, recipient_domain, tags, delivered, bounced, bounced_permanent)
     SELECT ${dims(900_000)}, substr(recipient, instr(recipient, '@') + 1), '[]', ${counters} ${where} GROUP BY 1, 2, 3, 4, 5, 6, 7;`,
    `INSERT INTO metric_rollups_day (account_id, bucket, campaign, template_id, topic, from_domain, tags, delivered, bounced, bounced_permanent)
     SELECT ${dims(86_400_000)}, '[]', ${counters} ${where} GROUP BY 1, 2, 3, 4, 5, 6;`,
    `INSERT INTO metric_rollups_hour (account_id, bucket, delivered, bounced, bounced_permanent)
     SELECT account_id, occurred_at - occurred_at % 3600000, ${counters} ${where} GROUP BY 1, 2;`,
  ].join("\n");
}

describe("the sparkpost npm client against /compat/sparkpost", () => {
  const secret = randomBytes(36).toString("base64url");
  let origin = "";
  let dev: DevServer | undefined;
  const now = Date.now();
  // 25 events of this account: every third in a blackfriday campaign; one of another account.
  const rows = Array.from({ length: 25 }, (_, i) => ({
    account: ACCOUNT,
    id: `evt_sp${String(i).padStart(8, "0")}`,
    at: now - 60_000 - i * 60_000,
    type: i % 2 === 0 ? "email.delivered" : "email.bounced",
    campaign: i % 3 === 0 ? (i % 2 === 0 ? "blackfriday-specials" : "BlackFriday_members") : "friday-deals",
  }));
  rows.push({
    account: "acct_other",
    id: "evt_spother00",
    at: now - 60_000,
    type: "email.delivered",
    campaign: "blackfriday-specials",
  });

  const token = (sub: string, scope = "events:read") =>
    new SignJWT({ scope })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(sub)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(secret));

  beforeAll(async () => {
    // Each account's events on its own event shard (SPEC §17).
    const shardSeedSql = [...new Set(rows.map((r) => r.account))].map((account) => ({
      account,
      sql: `INSERT INTO events (account_id, occurred_at, id, type, email_id, recipient, campaign, bounce_type, bounce_classification, smtp_code, smtp_response) VALUES ${rows
        .filter((r) => r.account === account)
        .map(
          (r) =>
            `(${sqlText(r.account)}, ${r.at}, ${sqlText(r.id)}, ${sqlText(r.type)}, 'email_1', 'user@example.com', ` +
            `${sqlText(r.campaign)}, ${r.type === "email.bounced" ? "'permanent', 'NoEmail', 550, '550 5.1.1 unknown'" : "NULL, NULL, NULL, NULL"})`,
        )
        .join(", ")};\n${rollupsOf(account)}`,
    }));
    dev = await startWranglerDev(
      { JWT_SECRET: secret, TRACKING_KEYS: randomBytes(32).toString("base64url") },
      { shardSeedSql },
    );
    origin = dev.origin;
  }, 300_000);

  afterAll(async () => {
    await dev?.stop();
  });

  it("searches with keyword filters and follows links.next to the end", async () => {
    const client = new SparkPost(await token(ACCOUNT), { origin: `${origin}/compat/sparkpost` });
    const from = new Date(now - 2 * 3_600_000).toISOString();
    const first = await client.events.searchMessage({ campaigns: ["blackfriday"], per_page: 3, from });
    const expected = rows
      .filter((r) => r.account === ACCOUNT && /blackfriday/i.test(r.campaign))
      .map((r) => r.id);
    expect(first.total_count).toBe(expected.length);
    expect(first.results).toHaveLength(3);
    expect(first.links.next).toMatch(/^\/compat\/sparkpost\/api\/v1\/events\/message\?/);
    const seen: string[] = first.results.map((e: { event_id: string }) => e.event_id);
    let next: string | undefined = first.links.next;
    while (next) {
      const page = await client.get({ uri: next });
      seen.push(...page.results.map((e: { event_id: string }) => e.event_id));
      next = page.links.next;
    }
    expect(seen).toEqual(expected);
    const bounces = await client.events.searchMessage({ events: "bounce", bounce_classes: "10", from });
    expect(bounces.results.length).toBe(
      rows.filter((r) => r.account === ACCOUNT && r.type === "email.bounced").length,
    );
    expect(bounces.results[0]).toMatchObject({ type: "bounce", bounce_class: "10", error_code: "550" });
    expect((await client.events.searchMessage({ campaigns: "black", from })).total_count).toBe(0);
  });

  it("rejects with SparkPost's error shape", async () => {
    const client = new SparkPost(await token(ACCOUNT), { origin: `${origin}/compat/sparkpost` });
    const tooMany = await client.events.searchMessage({ per_page: 10001 }).catch((e: SparkPostError) => e);
    expect(tooMany).toBeInstanceOf(Error);
    expect((tooMany as SparkPostError).statusCode).toBe(400);
    expect((tooMany as SparkPostError).errors[0]?.message).toBe("invalid params");
    const forged = new SparkPost("not-a-jwt", { origin: `${origin}/compat/sparkpost` });
    const denied = (await forged.events.searchMessage({}).catch((e: SparkPostError) => e)) as SparkPostError;
    expect(denied.statusCode).toBe(401);
    expect(denied.errors[0]?.message).toBe("Unauthorized.");
  });
});
