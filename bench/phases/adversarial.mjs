// Phase: adversarial parameters (SPEC §18). For every route, the worst parameters a client may send
// (90 keywords, 100 list values, the largest offset, metrics over 400 days hourly by tag,
// count=true on every page, replay by id, a whole-window export), run once each through the real
// app inside the Worker (/__bench/measure), with every D1 statement's rows read recorded from D1's
// own meta. The budget: at most 10,000 rows read per request (an export: per chunk, i.e. per
// statement of its page walk). Reported per case: status, time, statements, rows read in all and by
// the heaviest statement.
import { mintToken } from "../../scripts/lib.mjs";

const BUDGET = 10_000;
const DAY_MS = 86_400_000;

const list = (n, f) => Array.from({ length: n }, (_, i) => f(i)).join(",");

export async function adversarialPhase({ client, secret, values }) {
  const v = values[0];
  const account = v.account;
  const token = (scope) => mintToken({ sub: account, scope, ttl: "2h", secret });
  const read = await token("events:read");
  const hooks = await token("webhooks:read webhooks:write");
  const supp = await token("suppressions:read");
  const admin = await mintToken({ sub: "acct_bench_admin", scope: "admin", ttl: "2h", secret });
  const auth = (t) => ({ authorization: `Bearer ${t}` });
  const since = new Date(Date.now() - 30 * DAY_MS + 60_000).toISOString();
  const words = (n) => list(n, (i) => `w${i}`);

  // An endpoint to replay to (deliveries are queued, never sent: the bench queue has no consumer).
  const created = await client.call("/__bench/measure", {
    method: "POST",
    body: {
      method: "POST",
      path: "/v1/webhooks",
      headers: { ...auth(hooks), "content-type": "application/json" },
      body: JSON.stringify({ url: "https://hooks.example.org/mailtrail" }),
    },
  });
  const [ids] = await client.sql([
    {
      sql: "SELECT id FROM events WHERE account_id = ? ORDER BY occurred_at LIMIT 100",
      params: [account],
      on: `account:${account}`,
    },
  ]);
  const oldest100 = ids.results.map((r) => r.id);
  if (oldest100.length === 0) throw new Error(`adversarial: no events of ${account} found on its shard`);
  const [ep] = await client.sql([
    { sql: "SELECT id FROM webhook_endpoints WHERE account_id = ? LIMIT 1", params: [account] },
  ]);
  const endpointId = ep.results[0]?.id ?? "whk_000000000000000000000000";
  // The account's most recent campaign and its word, for totals filtered by a rollup dimension.
  const [camp] = await client.sql([
    {
      sql: "SELECT campaign FROM events WHERE account_id = ? AND campaign IS NOT NULL ORDER BY occurred_at DESC LIMIT 1",
      params: [account],
      on: `account:${account}`,
    },
  ]);
  const campaign = camp.results[0]?.campaign;
  if (!campaign) throw new Error(`adversarial: no campaign of ${account} found on its shard`);
  const campaignWord = campaign.split(/[ \-_]+/)[0] ?? campaign;

  const first = async (path, t) => {
    const page = await client.call(`/__bench/measure`, { method: "POST", body: { path, headers: auth(t) } });
    return page.data;
  };

  /** Events and SparkPost: a first page, then its next page (the cursor must carry the total). */
  const cases = [
    ["GET /v1/events count=true, first page (90 days)", `/v1/events?days=90&limit=1000&count=true`, read],
    [
      "GET /v1/events, a filter matching nothing (90 days)",
      `/v1/events?days=90&limit=1000&recipient=nobody%40nowhere.invalid`,
      read,
    ],
    [
      "GET /v1/events, 10 event types + 10 tags",
      `/v1/events?days=90&limit=1000&event_type=${encodeURIComponent("email.sent,email.delivered,email.delayed,email.bounced,email.complained,email.suppressed,email.unsubscribed,email.opened,email.clicked,email.failed")}&tags=${list(10, (i) => `t${i}`)}`,
      read,
    ],
    ["GET /v1/events/export (whole 30-day window)", `/v1/events/export?days=30`, read],
    [
      "SparkPost first page, per_page=10000 (total_count)",
      `/compat/sparkpost/api/v1/events/message?per_page=10000&from=${since}`,
      read,
    ],
    [
      "SparkPost campaigns with 90 keywords",
      `/compat/sparkpost/api/v1/events/message?from=${since}&campaigns=${words(90)}`,
      read,
    ],
    [
      "SparkPost campaigns with 10 keywords",
      `/compat/sparkpost/api/v1/events/message?from=${since}&campaigns=${words(10)}`,
      read,
    ],
    [
      "GET /v1/events count=true, one campaign (30 days)",
      `/v1/events?days=30&limit=100&count=true&campaign=${encodeURIComponent(campaign)}`,
      read,
    ],
    [
      "GET /v1/events count=true, 10 tags (30 days)",
      `/v1/events?days=30&limit=100&count=true&tags=${list(10, (i) => `t${i}`)}`,
      read,
    ],
    [
      "SparkPost campaigns keyword of a real campaign",
      `/compat/sparkpost/api/v1/events/message?from=${since}&campaigns=${encodeURIComponent(campaignWord)}`,
      read,
    ],
    [
      "SparkPost subjects with 10 keywords",
      `/compat/sparkpost/api/v1/events/message?from=${since}&subjects=${words(10)}`,
      read,
    ],
    [
      "SparkPost recipients with 100 values",
      `/compat/sparkpost/api/v1/events/message?from=${since}&recipients=${list(100, (i) => `r${i}%40example.com`)}`,
      read,
    ],
    [
      "SparkPost recipients with 1,000 values",
      `/compat/sparkpost/api/v1/events/message?from=${since}&recipients=${list(1000, (i) => `r${i}%40example.com`)}`,
      read,
    ],
    [
      "Numonic page 100 (offset 9,900 + limit 100)",
      `/compat/numonic/api/v1/events?type=Delivery&limit=100&page=100`,
      read,
    ],
    ["Numonic page 1,000,000", `/compat/numonic/api/v1/events?type=Delivery&limit=100&page=1000000`, read],
    ["Unosend offset 9,900 limit 100", `/compat/unosend/v1/events?days=90&limit=100&offset=9900`, read],
    ["Unosend offset 100,000", `/compat/unosend/v1/events?days=90&limit=100&offset=100000`, read],
    ["GET /v1/metrics 400 days, hour, group_by=tag", `/v1/metrics?days=400&interval=hour&group_by=tag`, read],
    ["GET /v1/metrics 400 days, hour, no grouping", `/v1/metrics?days=400&interval=hour`, read],
    [
      "GET /v1/metrics 400 days, hour, Asia/Kolkata",
      `/v1/metrics?days=400&interval=hour&tz=Asia%2FKolkata`,
      read,
    ],
    [
      "GET /v1/metrics 30 days, day, group_by=mailbox_provider",
      `/v1/metrics?days=30&group_by=mailbox_provider`,
      read,
    ],
    ["GET /v1/reputation 30 days", `/v1/reputation?days=30`, read],
    ["GET /v1/metrics 400 days, day, group_by=tag", `/v1/metrics?days=400&interval=day&group_by=tag`, read],
    ["GET /v1/metrics/links 400 days", `/v1/metrics/links?days=400&limit=1000`, read],
    ["Unosend metrics 400 days", `/compat/unosend/v1/metrics?days=400`, read],
    ["GET /v1/suppressions limit=1000, reason filter", `/v1/suppressions?limit=1000&reason=complaint`, supp],
    [
      "GET /v1/webhooks/{id}/deliveries, event_id filter",
      `/v1/webhooks/${endpointId}/deliveries?limit=1000&event_id=evt_nothing`,
      hooks,
    ],
    ["GET /v1/admin/parked", `/v1/admin/parked`, admin],
    ["GET /v1/account", `/v1/account`, read],
  ];

  const out = [];
  for (const [name, path, t] of cases) {
    const r = await first(path, t);
    out.push({ name, ...summary(r) });
    // Later pages of the paged routes: every page with count=true / total_count must stay in budget.
    if (r.status === 200 && r.next_path && /count=true|per_page=10000/.test(path)) {
      const again = await first(r.next_path, t);
      out.push({ name: `${name}: next page`, ...summary(again) });
    }
  }

  // Replays: by 100 ids (the account's oldest events), then by window.
  const replayIds = await client.call("/__bench/measure", {
    method: "POST",
    body: {
      method: "POST",
      path: `/v1/webhooks/${endpointId}/replay`,
      headers: { ...auth(hooks), "content-type": "application/json" },
      body: JSON.stringify({ event_ids: oldest100 }),
    },
  });
  out.push({ name: "POST replay by 100 event ids (oldest)", ...summary(replayIds.data) });
  await client
    .sql([{ sql: "DELETE FROM leases WHERE name = ?", params: [`webhook-replay:${endpointId}`] }])
    .catch(() => null);
  const replayWindow = await client.call("/__bench/measure", {
    method: "POST",
    body: {
      method: "POST",
      path: `/v1/webhooks/${endpointId}/replay`,
      headers: { ...auth(hooks), "content-type": "application/json" },
      body: JSON.stringify({ start: since }),
    },
  });
  out.push({ name: "POST replay by 30-day window", ...summary(replayWindow.data) });
  return {
    account,
    account_events: v.events,
    endpoint_created: created.data.status,
    budget: BUDGET,
    cases: out,
  };
}

function summary(r) {
  return {
    status: r.status,
    ms: Math.round(r.ms),
    statements: r.statements,
    rows_read: r.rows_read,
    rows_read_by_binding: r.rows_read_by_binding,
    max_binding_rows_read: r.max_binding_rows_read,
    max_statement_rows_read: r.max_statement_rows_read,
    within_budget:
      r.max_statement_rows_read <= BUDGET && (r.max_binding_rows_read <= BUDGET || r.chunked === true),
    unmeasured: r.unmeasured_statements,
    error: r.error_head ? r.error_head.slice(0, 120) : null,
    heaviest: r.top?.[0]?.sql ?? null,
  };
}

export function renderAdversarial(r) {
  const lines = [
    "",
    `ADVERSARIAL PARAMETERS (account ${r.account}, ${r.account_events} events; budget ${r.budget} D1 rows read per request, export per chunk)`,
  ];
  for (const c of r.cases) {
    lines.push(
      `  ${c.name.padEnd(58)} ${String(c.status).padStart(3)} ${String(c.ms).padStart(6)} ms ${String(c.statements).padStart(4)} stmts ` +
        `${String(c.rows_read).padStart(8)} rows (${c.max_binding_rows_read} on one database, max ${c.max_statement_rows_read} a statement)${c.error ? `  ${c.error.replace(/\s+/g, " ").slice(0, 60)}` : ""}`,
    );
  }
  return lines;
}

/** Markdown table for BENCHMARKS.md. */
export function markdownAdversarial(r) {
  const rows = r.cases.map(
    (c) =>
      `| ${c.name} | ${c.status} | ${c.ms} | ${c.statements} | ${c.rows_read.toLocaleString("en-US")} | ${(c.max_binding_rows_read ?? c.rows_read).toLocaleString("en-US")} | ${c.max_statement_rows_read.toLocaleString("en-US")} |`,
  );
  return [
    "| request | status | ms | D1 statements | rows read | on one database | heaviest statement |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
  ].join("\n");
}
