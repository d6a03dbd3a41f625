// Phase 4, metrics (SPEC §15): GET /v1/metrics on the query dataset.
//
// The dataset is bulk-loaded into `events` (seed.mjs) without going through the consumer, so its
// rollups are computed here by the same back-fill an existing deployment would run once
// (rebuildRollups in src/metrics/rollup.ts), one account at a time. Then, on the largest account:
// - rows read by the real query (getMetrics through the bench route: D1's meta.rows_read);
// - latency p50/p99 of the real HTTP route GET /v1/metrics with a JWT, `repeats` requests a case.
// The rows written per event that rollups add on ingest are measured in the ingest phase.
import { mintToken } from "../../scripts/lib.mjs";
import { timedFetch } from "../lib/client.mjs";
import { progressBar } from "../lib/progress.mjs";
import { round, summarize } from "../lib/stats.mjs";

export const METRICS_CASES = [
  {
    name: "30 days, daily, group_by=campaign",
    params: { days: "30", interval: "day", group_by: "campaign" },
  },
  { name: "30 days, daily, no grouping", params: { days: "30", interval: "day" } },
  {
    name: "30 days, hourly, America/New_York",
    params: { days: "30", interval: "hour", tz: "America/New_York" },
  },
  {
    name: "30 days, hourly, Asia/Kolkata",
    params: { days: "30", interval: "hour", tz: "Asia/Kolkata" },
  },
  {
    name: "7 days, hourly, group_by=campaign",
    params: { days: "7", interval: "hour", group_by: "campaign" },
  },
  {
    name: "30 days, daily, Asia/Kolkata, group_by=tag",
    params: { days: "30", tz: "Asia/Kolkata", group_by: "tag" },
  },
  {
    name: "30 days, weekly, group_by=recipient_domain",
    params: { days: "30", interval: "week", group_by: "recipient_domain" },
  },
  { name: "400 days, monthly", params: { days: "400", interval: "month" } },
  { name: "400 days, hourly", params: { days: "400", interval: "hour" } },
];

/** GET /v1/metrics/links cases (SPEC §15), on the same account. */
export const LINK_CASES = [
  { name: "links, 30 days", params: { days: "30" } },
  { name: "links, 400 days", params: { days: "400" } },
];

export async function metricsPhase({ app, client, secret, universe, values, rollupMs, options }) {
  const { repeats } = options;
  // The accounts were rolled up right after the load (run.mjs), in rollupMs of the Worker's time.
  const accounts = universe.accounts.map((a) => a.id);
  // Across every event shard (SPEC §17): one count row per shard, summed.
  const summed = (r) => ({ ...r, results: [{ n: r.results.reduce((s, x) => s + x.n, 0) }] });
  const TABLES = [
    "metric_rollups",
    "metric_rollups_day",
    "metric_rollups_day_domains",
    "metric_rollups_hour",
    "link_rollups",
  ];
  const [events, ...tableRows] = (
    await client.sql([
      { sql: "SELECT COUNT(*) AS n FROM events", on: "events" },
      ...TABLES.map((t) => ({ sql: `SELECT COUNT(*) AS n FROM ${t}`, on: "events" })),
    ])
  ).map(summed);
  const rowsByTable = Object.fromEntries(TABLES.map((t, i) => [t, tableRows[i].results[0].n]));
  const rows = { results: [{ n: Object.values(rowsByTable).reduce((a, b) => a + b, 0) }] };
  const largest = values[0].account;
  const [largestRows] = await client.sql([
    {
      sql: "SELECT COUNT(*) AS n FROM metric_rollups WHERE account_id = ?",
      params: [largest],
      on: `account:${largest}`,
    },
  ]);

  const token = await mintToken({ sub: largest, scope: "events:read", ttl: "2h", secret });
  const cases = [];
  const caseBar = progressBar("  metrics queries", METRICS_CASES.length * repeats);
  for (const c of METRICS_CASES) {
    const qs = new URLSearchParams(c.params).toString();
    const { data } = await client.call(`/__bench/metrics?${qs}`, {
      extraHeaders: { "x-bench-account": largest },
    });
    if (data.refused) {
      // Refused within the budget (SPEC §18): the rows it read before it stopped, and the answer.
      const res = await timedFetch(`${app.url}/v1/metrics?${qs}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      cases.push({
        name: c.name,
        params: c.params,
        rows_read: data.rowsRead,
        refused: { status: res.status, message: data.refused.message },
        latency_ms: { p50: round(res.ms), p99: round(res.ms), n: 1 },
      });
      for (let i = 0; i < repeats; i++) caseBar.tick();
      continue;
    }
    const latencies = [];
    for (let i = 0; i < repeats; i++) {
      const res = await timedFetch(`${app.url}/v1/metrics?${qs}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (res.status !== 200)
        throw new Error(`GET /v1/metrics?${qs} answered ${res.status}: ${res.text.slice(0, 300)}`);
      latencies.push(res.ms);
      caseBar.tick();
    }
    const ms = summarize(latencies);
    cases.push({
      name: c.name,
      params: c.params,
      rows_read: data.rowsRead,
      buckets_returned: data.buckets,
      events_counted: data.totals.sent + data.totals.delivered + data.totals.opened + data.totals.clicked,
      latency_ms: { p50: round(ms.p50), p99: round(ms.p99), n: ms.n },
    });
  }
  caseBar.done();

  const links = [];
  for (const c of LINK_CASES) {
    const qs = new URLSearchParams(c.params).toString();
    const { data } = await client.call(`/__bench/links?${qs}`, {
      extraHeaders: { "x-bench-account": largest },
    });
    const latencies = [];
    for (let i = 0; i < repeats; i++) {
      const res = await timedFetch(`${app.url}/v1/metrics/links?${qs}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      if (res.status !== 200)
        throw new Error(`GET /v1/metrics/links?${qs} answered ${res.status}: ${res.text.slice(0, 300)}`);
      latencies.push(res.ms);
    }
    const ms = summarize(latencies);
    links.push({
      name: c.name,
      rows_read: data.rowsRead,
      links: data.links,
      clicked: data.clicked,
      latency_ms: { p50: round(ms.p50), p99: round(ms.p99), n: ms.n },
    });
  }

  // One alert evaluation per account (its two default rules over 24 h), as the cron runs it; the
  // dataset's last day is the window, so each account reads its real density of rollups.
  const evaluations = [];
  for (const account of accounts) {
    const { data } = await client.call(`/__bench/evaluate-alerts?account=${encodeURIComponent(account)}`, {
      method: "POST",
    });
    evaluations.push(data);
  }
  // The same accounts as the cron evaluates them: one page of 100 (three D1 round trips).
  const { data: page } = await client.call(
    `/__bench/evaluate-alerts?account=${encodeURIComponent(accounts.slice(0, 100).join(","))}`,
    { method: "POST" },
  );
  const evalMs = summarize(evaluations.map((e) => e.ms));
  const evalRows = evaluations.map((e) => e.rowsRead);
  const alerts = {
    accounts: evaluations.length,
    rows_read_mean: round(evalRows.reduce((a, b) => a + b, 0) / evalRows.length),
    rows_read_max: Math.max(...evalRows),
    ms_p50: round(evalMs.p50),
    ms_p99: round(evalMs.p99),
    // 10,000 accounts like these, evaluated in pages of 100 accounts (3 round trips a page).
    projected_10k_rows_read: Math.round((evalRows.reduce((a, b) => a + b, 0) / evalRows.length) * 10_000),
    projected_10k_seconds_one_by_one: round(
      ((evaluations.reduce((a, e) => a + e.ms, 0) / evaluations.length) * 10_000) / 1000,
    ),
    page: {
      accounts: Math.min(100, accounts.length),
      ms: round(page.ms),
      rows_read: page.rowsRead,
      rules: page.rules,
    },
    projected_10k_seconds_paged: round(((page.ms / Math.min(100, accounts.length)) * 10_000) / 1000),
  };
  return {
    account: largest,
    account_events: values[0].events,
    // Every rollup table together (quarter hours, days, hourly totals, links), per stored event.
    rollup_rows: rows.results[0].n,
    rollup_rows_by_table: rowsByTable,
    rollup_rows_per_event_stored: round(rows.results[0].n / events.results[0].n),
    largest_account_rollup_rows: largestRows.results[0].n,
    rebuild_seconds: round(rollupMs / 1000),
    cases,
    links,
    alerts,
  };
}
