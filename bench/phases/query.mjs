// Phase 3, queries: every SPEC §9 filter alone, a few combinations, and deep pages, on the largest
// account (the worst case for scans) and a mid-sized one, over the full 30-day window.
//
// For each case:
// - rows read per page by the real query (listEvents through the bench route: D1's meta.rows_read
//   of every statement of the page's bounded scan, src/events/scan.ts), the rows returned, and
//   whether each page kept to SPEC §9's 10,000-row budget (a rare filter's page may come back short
//   or empty, with a cursor where its scan stopped);
// - latency p50/p99 of the real HTTP route GET /v1/events with a JWT, walking next_cursor;
// - the same case written directly in SQL (lib/direct-sql.mjs), on the same D1, walked the same way:
//   its rows read and latency, and the API / direct ratios.
import { mintToken } from "../../scripts/lib.mjs";
import { timedFetch } from "../lib/client.mjs";
import { directPageSql } from "../lib/direct-sql.mjs";
import { progressBar } from "../lib/progress.mjs";
import { round, summarize } from "../lib/stats.mjs";

const DAY_MS = 86_400_000;

/** The cases for one account's values (see seed.mjs pickValues). `kind` groups them in the report. */
export function queryCases(v, { deepPages }) {
  const single = (name, params, note) => ({ kind: "single", name, params, note });
  const cases = [
    single("window only (no filter)", {}),
    single("event_type (common)", { event_type: "email.delivered" }),
    single("event_type (rare)", { event_type: "email.complained" }, "a type on ~0.04% of events"),
    single("recipient", { recipient: v.recipient }),
    single("email_id", { email_id: v.email_id }),
    single("message_id", { message_id: v.message_id }, "a message from mid-window"),
    single("topic", { topic: v.topic }),
    single("template_id", { template_id: v.template_id }),
    single("campaign (recent)", { campaign: v.campaignRecent }),
    single("campaign (oldest)", { campaign: v.campaignOldest }, "sent near the window's start"),
    single("domain", { domain: v.domain }),
    single("tags (one)", { tags: v.tag }),
    { kind: "combo", name: "tags (any of three)", params: { tags: v.tags3 } },
    {
      kind: "combo",
      name: "event_type + campaign",
      params: { event_type: "email.opened", campaign: v.campaignRecent },
    },
    {
      kind: "combo",
      name: "recipient + event_type",
      params: { recipient: v.recipient, event_type: "email.opened,email.clicked" },
    },
    { kind: "combo", name: "topic + tags", params: { topic: v.topic, tags: v.tag } },
    {
      kind: "combo",
      name: "domain + event_type + template",
      params: { domain: v.domain, event_type: "email.delivered", template_id: v.template_id },
    },
    { kind: "combo", name: "window only + count=true", params: { count: "true" } },
    { kind: "deep", name: "window only, deep", params: {}, pages: deepPages },
    {
      kind: "deep",
      name: "event_type=email.opened, deep",
      params: { event_type: "email.opened" },
      pages: deepPages,
    },
    { kind: "deep", name: "domain, deep", params: { domain: v.domain }, pages: deepPages },
    { kind: "deep", name: "recipient, every page", params: { recipient: v.recipient }, pages: deepPages },
    {
      kind: "deep",
      name: "event_type (rare), every page",
      params: { event_type: "email.complained" },
      pages: deepPages,
      note: "short pages: each stops at the row budget",
    },
    { kind: "deep", name: "window only, limit=100, deep", params: {}, limit: 100, pages: deepPages },
    { kind: "cost", name: "window only, limit=50", params: {}, limit: 50, pages: 1 },
    {
      kind: "cost",
      name: "event_type=email.opened, limit=50",
      params: { event_type: "email.opened" },
      limit: 50,
      pages: 1,
    },
  ];
  return cases.filter((c) => Object.values(c.params).every((p) => p !== undefined && p !== ""));
}

const queryString = (params) => new URLSearchParams(params).toString();

/** Walks a case through the bench route (listEvents): rows read per page. */
async function walkRowsRead(client, account, c, limit, pages) {
  const out = [];
  let after = null;
  for (let page = 0; page < pages; page++) {
    const qs = queryString({ days: "30", limit: String(limit), ...c.params, ...(after ? { after } : {}) });
    const { data } = await client.call(`/__bench/events?${qs}`, {
      extraHeaders: { "x-bench-account": account },
    });
    // Statements besides the scan and the count: the plan lookup and, with `domain`, its check.
    const other = data.statements.filter((s) => !/FROM events/.test(s.sql));
    out.push({
      rowsRead: data.rowsRead,
      countRowsRead: data.countRowsRead ?? null,
      returned: data.count,
      hasMore: data.has_more,
      statements: data.statements.length,
      other,
    });
    if (!data.has_more) break;
    after = data.next_cursor;
  }
  return out;
}

/** Walks a case through GET /v1/events with a JWT: latency of each page. */
async function walkApi(baseUrl, token, c, limit, pages, onPage) {
  const latencies = [];
  let after = null;
  for (let page = 0; page < pages; page++) {
    const qs = queryString({ days: "30", limit: String(limit), ...c.params, ...(after ? { after } : {}) });
    const res = await timedFetch(`${baseUrl}/v1/events?${qs}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    if (res.status !== 200)
      throw new Error(`GET /v1/events?${qs} answered ${res.status}: ${res.text.slice(0, 300)}`);
    latencies.push(res.ms);
    onPage?.();
    if (!res.body.has_more) break;
    after = res.body.next_cursor;
  }
  return latencies;
}

/** Walks the hand-written SQL: rows read and latency of each page. */
async function walkDirect(client, account, c, limit, pages, onPage) {
  const now = Date.now();
  const window = { start: now - 30 * DAY_MS, end: now };
  const out = [];
  let cursor = null;
  for (let page = 0; page < pages; page++) {
    const { page: stmt, count } = directPageSql(account, window, c.params, cursor, limit);
    // Like the API, which counts on every page of a count=true walk.
    const statements = [stmt, ...(c.params.count === "true" ? [count] : [])].map((s) => ({
      ...s,
      on: `account:${account}`,
    }));
    const started = performance.now();
    const results = await client.sql(statements);
    const ms = performance.now() - started;
    const rows = results[0].results;
    out.push({
      rowsRead: results[0].meta.rows_read,
      countRowsRead: results[1]?.meta.rows_read ?? null,
      returned: Math.min(rows.length, limit),
      ms,
    });
    onPage?.();
    if (rows.length <= limit) break;
    const last = rows[limit - 1];
    cursor = { occurred_at: last.occurred_at, id: last.id };
  }
  return out;
}

export async function queryPhase({ app, client, secret, values, options }) {
  const { repeats, deepPages, singlePages } = options;
  const tokens = new Map();
  for (const v of values) {
    tokens.set(v.account, await mintToken({ sub: v.account, scope: "events:read", ttl: "2h", secret }));
  }
  // The fixed statements of every API request besides the page: the plan lookup and, with
  // `domain`, the sending-domain check. Their rows read, measured directly.
  const fixed = await client.sql([
    { sql: "SELECT plan FROM accounts WHERE id = ?", params: [values[0].account] },
    {
      sql: "SELECT 1 FROM sending_domains WHERE account_id = ? AND domain = ?",
      params: [values[0].account, values[0].domain],
      on: `account:${values[0].account}`,
    },
  ]);
  const overhead = {
    plan_lookup_rows_read: fixed[0].meta.rows_read,
    domain_check_rows_read: fixed[1].meta.rows_read,
  };

  const plan = [];
  for (const [i, v] of values.entries()) {
    for (const c of queryCases(v, { deepPages })) {
      // Deep and cost cases run on the largest account only.
      if (i > 0 && (c.kind === "deep" || c.kind === "cost")) continue;
      plan.push({ v, c, limit: c.limit ?? 20, pages: c.pages ?? singlePages });
    }
  }
  const bar = progressBar("  queries", plan.length);
  const cases = [];
  for (const { v, c, limit, pages } of plan) {
    const walk = await walkRowsRead(client, v.account, c, limit, pages);
    const walkedPages = walk.length;
    const apiLatencies = [];
    const directLatencies = [];
    let direct = null;
    for (let r = 0; r < repeats; r++) {
      apiLatencies.push(...(await walkApi(app.url, tokens.get(v.account), c, limit, walkedPages)));
    }
    // CPU per request for the cost table: /proc counts in 10 ms ticks, so enough requests to be exact.
    let cpuPerRequest = null;
    if (c.kind === "cost") {
      const cpu0 = app.cpuSeconds();
      for (let r = 0; r < options.cpuRequests; r++) {
        await walkApi(app.url, tokens.get(v.account), c, limit, 1);
      }
      const cpu1 = app.cpuSeconds();
      if (cpu0 !== null && cpu1 !== null) cpuPerRequest = round(((cpu1 - cpu0) * 1000) / options.cpuRequests);
    }
    for (let r = 0; r < repeats; r++) {
      const d = await walkDirect(client, v.account, c, limit, walkedPages);
      direct ??= d;
      directLatencies.push(...d.map((p) => p.ms));
    }
    const rowsRead = walk.map((p) => p.rowsRead);
    const directRows = direct.map((p) => p.rowsRead);
    const api = summarize(apiLatencies);
    const sql = summarize(directLatencies);
    const target = 2 * limit + 10;
    const sumApi = rowsRead.reduce((a, b) => a + b, 0);
    const sumDirect = directRows.reduce((a, b) => a + b, 0);
    cases.push({
      kind: c.kind,
      name: c.name,
      note: c.note ?? null,
      account: v.account,
      account_events: v.events,
      params: c.params,
      limit,
      pages: walkedPages,
      returned_per_page: walk.map((p) => p.returned),
      rows_read_per_page: rowsRead,
      rows_read_max: Math.max(...rowsRead),
      rows_read_mean: round(sumApi / rowsRead.length),
      target_rows: target,
      meets_target: Math.max(...rowsRead) <= target,
      // SPEC §9: one page reads at most 10,000 rows, however rare the filter.
      row_budget: 10_000,
      meets_row_budget: Math.max(...rowsRead) <= 10_000,
      api_count_rows_read: walk[0]?.countRowsRead ?? null,
      short_pages: walk.filter((p) => p.hasMore && p.returned < limit).length,
      other_statements_per_request: walk[0]?.other.length ?? 0,
      api_ms: { n: api.n, p50: round(api.p50), p99: round(api.p99) },
      api_cpu_ms_per_request: cpuPerRequest,
      direct_rows_read_per_page: directRows,
      count_rows_read: direct[0]?.countRowsRead ?? null,
      direct_ms: { n: sql.n, p50: round(sql.p50), p99: round(sql.p99) },
      ratio_rows_read: sumDirect > 0 ? round(sumApi / sumDirect) : null,
      ratio_p50: sql.p50 > 0 ? round(api.p50 / sql.p50) : null,
    });
    bar.tick();
  }
  bar.done();
  return { window_days: 30, repeats, overhead, values, cases };
}
