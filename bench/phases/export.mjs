// Phase: the streaming export (GET /v1/events/export) and SparkPost's 10,000-event page.
//
// Export: the whole 30-day window of the largest account (and of a mid-sized one, to show that memory
// does not follow the window's size), as NDJSON and as CSV, read by a streaming client that counts
// bytes and lines without keeping them. Throughput is events per second end to end. Memory is the
// workerd process's resident set (it holds the Worker and local D1's SQLite): the peak during the
// export (VmHWM, reset before each run through /proc/<pid>/clear_refs, plus 50 ms samples of VmRSS)
// against the resident set just before it, after the account's rows were read once (D1's page cache
// warm).
//
// SparkPost: GET /compat/sparkpost/api/v1/events/message?per_page=10000 over 30 days, the first
// page (which also counts total_count over the window) and a later page (cursor; no count), by HTTP
// with a JWT, and the same pages through the bench route for D1's rows read; plus a keyword filter.
import { readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import { performance } from "node:perf_hooks";
import { mintToken } from "../../scripts/lib.mjs";
import { timedFetch } from "../lib/client.mjs";
import { round, summarize } from "../lib/stats.mjs";

const DAY_MS = 86_400_000;
const MB = 1024 * 1024;

function memoryKb(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? NaN);
    return { rss: field("VmRSS"), hwm: field("VmHWM") };
  } catch {
    return null;
  }
}

function resetPeak(pid) {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/**
 * GET on a connection of its own (node:http, no agent: `Connection: close`), never a pooled
 * keep-alive socket. Why: the export's responses are long (tens of seconds on the 1M set) and
 * fetch's pool hands the next request the socket the previous export used; workerd's HTTP server
 * closes a connection on which no next request arrived within its pipeline timeout after the
 * response was written, and a client still draining its buffers can send the next request onto a
 * socket the server has already closed: `fetch failed … other side closed` before the request
 * reaches the Worker (finding 12). A fresh connection per export cannot meet a stale one.
 */
function getOnFreshConnection(url, headers) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, agent: false }, resolve);
    req.on("error", reject);
  });
}

/** Streams a URL to nowhere, counting bytes and newlines; samples the Worker's memory meanwhile. */
async function drain(url, headers, pid) {
  const peakReset = pid !== null && resetPeak(pid);
  const before = pid === null ? null : memoryKb(pid);
  let sampled = before?.rss ?? 0;
  const timer =
    pid === null
      ? null
      : setInterval(() => {
          const m = memoryKb(pid);
          if (m) sampled = Math.max(sampled, m.rss);
        }, 50);
  const started = performance.now();
  let res;
  try {
    res = await getOnFreshConnection(url, headers);
  } catch (err) {
    clearInterval(timer);
    throw err;
  }
  const ttfb = performance.now() - started;
  if (res.statusCode !== 200) {
    clearInterval(timer);
    let text = "";
    for await (const chunk of res) text += chunk;
    throw new Error(`${url} answered ${res.statusCode}: ${text.slice(0, 300)}`);
  }
  let bytes = 0;
  let newlines = 0;
  try {
    for await (const value of res) {
      bytes += value.length;
      for (let i = 0; i < value.length; i++) if (value[i] === 10) newlines++;
    }
  } finally {
    clearInterval(timer);
  }
  // A body cut short (the Worker aborted it) must not count as an export.
  if (!res.complete) throw new Error(`${url}: the response ended before its end`);
  const seconds = (performance.now() - started) / 1000;
  clearInterval(timer);
  const after = pid === null ? null : memoryKb(pid);
  const peakKb = Math.max(sampled, peakReset && after ? after.hwm : 0);
  return {
    status: res.statusCode,
    content_type: res.headers["content-type"],
    bytes,
    newlines,
    seconds,
    ttfb_ms: round(ttfb),
    rss_before_mb: before ? round(before.rss / 1024) : null,
    rss_peak_mb: before ? round(peakKb / 1024) : null,
    rss_growth_mb: before ? round((peakKb - before.rss) / 1024) : null,
    peak_source: peakReset ? "VmHWM (reset) and 50 ms VmRSS samples" : "50 ms VmRSS samples",
  };
}

export async function exportPhase({ app, client, secret, values, options }) {
  const pid = app.pid ?? null;
  const out = { export: [], sparkpost: [] };
  const since = new Date(Date.now() - 30 * DAY_MS + 60_000).toISOString();
  // Smallest account first, then the largest twice: memory that followed the window's size would
  // show as growth between the small and the large export, and again on the large one's second run.
  const runs = [...values].reverse();
  if (values[0]) runs.push(values[0]);
  for (const [runIndex, v] of runs.entries()) {
    const repeat = runs.indexOf(v) !== runIndex;
    const token = await mintToken({ sub: v.account, scope: "events:read", ttl: "2h", secret });
    // Warm local D1's page cache with the account's rows first, so that the memory figures are the
    // export's own and not SQLite's cache filling up (which the first reader would pay).
    await client.sql([
      {
        sql: "SELECT COUNT(*) AS n, SUM(LENGTH(tracking)) AS t, SUM(LENGTH(subject)) AS s FROM events WHERE account_id = ?",
        params: [v.account],
      },
    ]);
    for (const format of ["ndjson", "csv"]) {
      const r = await drain(
        `${app.url}/v1/events/export?days=30&format=${format}`,
        { authorization: `Bearer ${token}` },
        pid,
      );
      const events = format === "csv" ? r.newlines - 1 : r.newlines;
      out.export.push({
        account: v.account,
        repeat,
        account_events: v.events,
        format,
        events,
        mb: round(r.bytes / MB),
        seconds: round(r.seconds),
        events_per_second: Math.round(events / r.seconds),
        mb_per_second: round(r.bytes / MB / r.seconds),
        ttfb_ms: r.ttfb_ms,
        rss_before_mb: r.rss_before_mb,
        rss_peak_mb: r.rss_peak_mb,
        rss_growth_mb: r.rss_growth_mb,
        peak_source: r.peak_source,
      });
    }
  }

  // SparkPost per_page=10000 on the largest account: first page (with total_count) and a later page.
  const v = values[0];
  const token = await mintToken({ sub: v.account, scope: "events:read", ttl: "2h", secret });
  const keyword = (v.campaignRecent ?? "").split(/[ \-_]+/)[0];
  const cases = [
    { name: "per_page=10000, no filter", params: { per_page: "10000", from: since } },
    {
      name: "per_page=10000, events=open,click",
      params: { per_page: "10000", from: since, events: "open,click" },
    },
    ...(keyword
      ? [
          {
            name: `per_page=10000, campaigns=${keyword} (keyword)`,
            params: { per_page: "10000", from: since, campaigns: keyword },
          },
        ]
      : []),
  ];
  for (const c of cases) {
    const qs = new URLSearchParams(c.params).toString();
    const first = await client.call(`/__bench/sparkpost?${qs}`, {
      extraHeaders: { "x-bench-account": v.account },
    });
    const nextPath = first.data.next;
    const second = nextPath
      ? await client.call(`/__bench/sparkpost?${nextPath.split("?")[1]}`, {
          extraHeaders: { "x-bench-account": v.account },
        })
      : null;
    const firstMs = [];
    const laterMs = [];
    let memory = null;
    for (let i = 0; i < options.repeats; i++) {
      const f = await timedFetch(`${app.url}/compat/sparkpost/api/v1/events/message?${qs}`, {
        headers: { authorization: token },
      });
      if (f.status !== 200) throw new Error(`SparkPost page answered ${f.status}: ${f.text.slice(0, 300)}`);
      firstMs.push(f.ms);
      if (nextPath) {
        const n = await timedFetch(`${app.url}${nextPath}`, { headers: { authorization: token } });
        if (n.status !== 200) throw new Error(`SparkPost next page answered ${n.status}`);
        laterMs.push(n.ms);
      }
    }
    if (pid !== null) {
      const r = await drain(
        `${app.url}/compat/sparkpost/api/v1/events/message?${qs}`,
        { authorization: token },
        pid,
      );
      memory = {
        bytes: r.bytes,
        rss_before_mb: r.rss_before_mb,
        rss_peak_mb: r.rss_peak_mb,
        rss_growth_mb: r.rss_growth_mb,
      };
    }
    out.sparkpost.push({
      name: c.name,
      account: v.account,
      returned_first: first.data.returned,
      total_count: first.data.total_count,
      scan_rows_read_first: first.data.scan_rows_read,
      count_rows_read_first: first.data.count_rows_read,
      returned_later: second?.data.returned ?? null,
      scan_rows_read_later: second?.data.scan_rows_read ?? null,
      first_page_ms: summarize(firstMs),
      later_page_ms: summarize(laterMs),
      response_bytes: memory?.bytes ?? null,
      rss_growth_mb: memory?.rss_growth_mb ?? null,
      rss_peak_mb: memory?.rss_peak_mb ?? null,
    });
  }
  return out;
}

/** Text lines for the console report. */
export function renderExport(r) {
  const lines = ["", "EXPORT (GET /v1/events/export, 30-day window, streamed to a counting client)"];
  for (const e of r.export) {
    lines.push(
      `  ${e.account}${e.repeat ? " (again)" : ""} ${e.format.padEnd(6)} ${String(e.events).padStart(8)} events ${String(e.mb).padStart(7)} MB ` +
        `${String(e.events_per_second).padStart(7)} ev/s  ttfb ${e.ttfb_ms} ms  workerd RSS ${e.rss_before_mb} → peak ${e.rss_peak_mb} MB (+${e.rss_growth_mb})`,
    );
  }
  lines.push("", "SPARKPOST per_page=10000 (largest account, 30 days)");
  for (const s of r.sparkpost) {
    lines.push(
      `  ${s.name}: first page ${s.returned_first} events, p50 ${round(s.first_page_ms.p50)} ms, scan ${s.scan_rows_read_first} + count ${s.count_rows_read_first} rows read; ` +
        `later page ${s.returned_later ?? "-"} events, p50 ${s.later_page_ms.p50 === null ? "-" : round(s.later_page_ms.p50)} ms, ${s.scan_rows_read_later ?? "-"} rows read; ` +
        `total_count ${s.total_count}; RSS +${s.rss_growth_mb} MB`,
    );
  }
  return lines;
}
