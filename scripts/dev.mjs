#!/usr/bin/env node
// `npm run dev`: everything a fresh clone needs, then `wrangler dev` on http://127.0.0.1:8787.
// 1. .dev.vars with fresh local secrets (only when absent), 2. local D1 migrations, 3. a demo account
// with sample events, 4. wrangler dev, 5. a working token, a curl line and a tracked sample.
import { spawn, spawnSync } from "node:child_process";
import { DEMO_ACCOUNT, d1Bindings, ensureDevVars, mintToken, ROOT, shardBindingOf } from "./lib.mjs";
import { fixLocalCron } from "./local-cron-fix.mjs";

const PORT = Number(process.env.PORT ?? 8787);
const ORIGIN = `http://127.0.0.1:${PORT}`;
const wrangler = (args, opts = {}) =>
  spawnSync("npx", ["wrangler", ...args], {
    cwd: ROOT,
    stdio: "inherit",
    env: { ...process.env, CI: "true" },
    ...opts,
  });

if (ensureDevVars(PORT)) console.log("wrote .dev.vars with fresh local secrets");

// Every D1 binding: the control database and each event shard (SPEC §17), from one migrations dir.
for (const binding of d1Bindings()) {
  const migrate = wrangler(["d1", "migrations", "apply", binding, "--local"]);
  if (migrate.status !== 0) process.exit(migrate.status ?? 1);
}

// The demo account (scale plan: 30 days) and a few sample events from the last hour.
const now = Date.now();
const day = new Date(now).toISOString().slice(0, 10);
const sample = [
  ["email.sent", 50 * 60_000],
  ["email.delivered", 49 * 60_000],
  ["email.opened", 30 * 60_000],
];
const OPEN_TRACKING = JSON.stringify({
  user_agent: "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)",
  ip_address: "203.0.113.7",
  url: null,
  link_name: null,
  geo: { country: "NL", region: "North Holland", city: "Amsterdam" },
  bot: null,
});
const values = sample
  .map(
    ([type, ago], i) =>
      `('${DEMO_ACCOUNT}', ${now - ago}, 'evt_demo${day.replaceAll("-", "")}${i}', '${type}', 'email_demo_${day}', ` +
      `'<demo-${day}@mail.example.com>', 'news@mail.example.com', 'mail.example.com', 'reader@example.com', ` +
      `'Welcome to mailtrail', 'welcome', 'onboarding-${day}', ${type === "email.opened" ? `'${OPEN_TRACKING}'` : "NULL"})`,
  )
  .join(",\n");
// Their metrics rollups (src/db/metrics.ts), as the queue consumer would have counted them.
const rollups = new Map();
for (const [type, ago] of sample) {
  const bucket = Math.floor((now - ago) / 900_000) * 900_000;
  const row = rollups.get(bucket) ?? { sent: 0, delivered: 0, opened: 0 };
  row[type.slice("email.".length)] += 1;
  rollups.set(bucket, row);
}
const rollupValues = [...rollups]
  .map(
    ([bucket, c]) =>
      `('${DEMO_ACCOUNT}', ${bucket}, 'onboarding-${day}', 'welcome', '', 'mail.example.com', 'example.com', '[]', ` +
      `${c.sent}, ${c.delivered}, ${c.opened}, ${c.opened}, ${c.opened}, ${c.opened})`,
  )
  .join(",\n");
const account = `
INSERT INTO accounts (id, plan, created_at, updated_at) VALUES ('${DEMO_ACCOUNT}', 'scale', ${now}, ${now})
  ON CONFLICT (id) DO NOTHING;`;
// The rows that grow with mail go to the demo account's event shard, where the Worker routes it.
const seed = `
INSERT INTO sending_domains (account_id, domain, first_seen_at) VALUES ('${DEMO_ACCOUNT}', 'mail.example.com', ${now})
  ON CONFLICT DO NOTHING;
INSERT INTO events (account_id, occurred_at, id, type, email_id, message_id, from_address, from_domain, recipient,
  subject, template_id, campaign, tracking) VALUES
${values}
  ON CONFLICT DO NOTHING;
INSERT INTO metric_rollups (account_id, bucket, campaign, template_id, topic, from_domain, recipient_domain, tags,
  sent, delivered, opened, opened_by_person, unique_opened, unique_opened_by_person) VALUES
${rollupValues}
  ON CONFLICT DO NOTHING;
INSERT INTO metric_rollups_day (account_id, bucket, campaign, template_id, topic, from_domain, tags,
  sent, delivered, opened, opened_by_person, unique_opened, unique_opened_by_person)
SELECT account_id, bucket - bucket % 86400000, campaign, template_id, topic, from_domain, tags,
  SUM(sent), SUM(delivered), SUM(opened), SUM(opened_by_person), SUM(unique_opened), SUM(unique_opened_by_person)
FROM metric_rollups WHERE account_id = '${DEMO_ACCOUNT}' GROUP BY 1, 2, 3, 4, 5, 6, 7
  ON CONFLICT DO NOTHING;
INSERT INTO metric_rollups_day_domains (account_id, bucket, from_domain, recipient_domain,
  sent, delivered, opened, opened_by_person, unique_opened, unique_opened_by_person)
SELECT account_id, bucket - bucket % 86400000, from_domain, recipient_domain,
  SUM(sent), SUM(delivered), SUM(opened), SUM(opened_by_person), SUM(unique_opened), SUM(unique_opened_by_person)
FROM metric_rollups WHERE account_id = '${DEMO_ACCOUNT}' GROUP BY 1, 2, 3, 4
  ON CONFLICT DO NOTHING;
INSERT INTO metric_rollups_hour (account_id, bucket,
  sent, delivered, opened, opened_by_person, unique_opened, unique_opened_by_person)
SELECT account_id, bucket - bucket % 3600000,
  SUM(sent), SUM(delivered), SUM(opened), SUM(opened_by_person), SUM(unique_opened), SUM(unique_opened_by_person)
FROM metric_rollups WHERE account_id = '${DEMO_ACCOUNT}' GROUP BY 1, 2
  ON CONFLICT DO NOTHING;`;
for (const [binding, sql] of [
  ["DB", account],
  [shardBindingOf(DEMO_ACCOUNT), seed],
]) {
  const seeded = wrangler(["d1", "execute", binding, "--local", "--command", sql], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  if (seeded.status !== 0) process.exit(seeded.status ?? 1);
}

// The documented local cron trigger (/cdn-cgi/handler/scheduled) needs the assets proxy fix (see
// scripts/local-cron-fix.mjs); npm install applies it, and so does this, for installs without scripts.
fixLocalCron();
const child = spawn("npx", ["wrangler", "dev", "--ip", "127.0.0.1", "--port", String(PORT)], {
  cwd: ROOT,
  stdio: "inherit",
});
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code) => process.exit(code ?? 0));

async function waitForHealth() {
  for (let i = 0; i < 240; i++) {
    try {
      const res = await fetch(`${ORIGIN}/healthz`);
      if (res.ok) return true;
    } catch {}
    await new Promise((r) => setTimeout(r, 500));
  }
  return false;
}

if (await waitForHealth()) {
  const token = await mintToken({
    scope: "events:read suppressions:read suppressions:write send webhooks:read webhooks:write",
    ttl: "7d",
  });
  const lines = [
    "",
    `mailtrail is running on ${ORIGIN}`,
    `demo account: ${DEMO_ACCOUNT} (plan scale)`,
    `API token (7 days; mint another with \`npm run token\`):`,
    `  ${token}`,
    "events:",
    `  curl -s -H "Authorization: Bearer ${token}" "${ORIGIN}/v1/events?days=1"`,
    `dashboard: ${ORIGIN}/dashboard (paste the token above)`,
    `scheduled work (purge, reconcile, parked replay) now: curl "${ORIGIN}/cdn-cgi/handler/scheduled"`,
  ];
  const sampleRes = await fetch(`${ORIGIN}/v1/messages/instrument`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({
      email_id: `email_demo_${day}`,
      recipient: "reader@example.com",
      campaign: `onboarding-${day}`,
      html: '<html><body><p>Hello!</p><a href="https://example.com/welcome?utm_source=mailtrail#top">Read more</a></body></html>',
    }),
  }).catch(() => null);
  if (sampleRes?.ok) {
    const sample = await sampleRes.json();
    lines.push("tracked sample (open the pixel or the link, then list events again):");
    lines.push(`  pixel: ${sample.pixel_url}`);
    const link = /href="([^"]+)"/.exec(sample.html)?.[1];
    if (link) lines.push(`  link:  ${link.replaceAll("&amp;", "&")}`);
    lines.push(`  unsubscribe page: ${sample.unsubscribe_url}`);
  }
  lines.push(`API reference: ${ORIGIN}/docs`, "");
  console.log(lines.join("\n"));
}
