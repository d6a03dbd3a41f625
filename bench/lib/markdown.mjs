// Markdown tables of a results.json, for BENCHMARKS.md: `node bench/run.mjs --markdown [file]`.
import { dollars } from "./report.mjs";

const n = (v) => {
  if (v === null || v === undefined || (typeof v === "number" && !Number.isFinite(v))) return "–";
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return Math.abs(v) >= 100 ? Math.round(v).toLocaleString("en-US") : String(Number(v.toPrecision(3)));
};

function mdTable(headers, rows, align) {
  const a = align ?? headers.map((_, i) => (i === 0 ? "l" : "r"));
  return [
    `| ${headers.join(" | ")} |`,
    `| ${a.map((x) => (x === "r" ? "---:" : "---")).join(" | ")} |`,
    ...rows.map((r) => `| ${r.map((c) => (typeof c === "string" ? c : n(c))).join(" | ")} |`),
  ].join("\n");
}

export function markdown(r) {
  const out = [];
  if (r.hot?.routes?.length) {
    const rows = [];
    const labels = {
      constant_in_bundle: "constant answer, same isolate",
      queue_send_stubbed: "route, queue send stubbed",
    };
    for (const x of r.hot.routes) {
      if (!x.available) {
        rows.push([x.route, `not available: ${x.reason}`, "", "", "", "", "", "", "", "", ""]);
        continue;
      }
      const b = x.bindings_per_request;
      rows.push([
        `\`${x.route}\``,
        "mailtrail",
        x.app.rps,
        x.app.p50_ms,
        x.app.p99_ms,
        x.app.unloaded_p50_ms,
        x.app.unloaded_p99_ms,
        x.app.cpu_ms_per_request,
        `${n(b.d1_calls)} / ${n(b.kv_calls)} / ${n(b.queue_messages)}`,
        `**${n(x.ratio_rps)}×**`,
      ]);
      rows.push([
        "",
        "bare Worker",
        x.bare.rps,
        x.bare.p50_ms,
        x.bare.p99_ms,
        x.bare.unloaded_p50_ms,
        x.bare.unloaded_p99_ms,
        x.bare.cpu_ms_per_request,
        "",
        "1×",
      ]);
      for (const [k, d] of Object.entries(x.diagnostics ?? {})) {
        rows.push([
          "",
          `*${labels[k] ?? k}*`,
          d.rps,
          d.p50_ms,
          d.p99_ms,
          "",
          "",
          d.cpu_ms_per_request,
          "",
          `${n(d.ratio_rps)}×`,
        ]);
      }
    }
    out.push(
      "### Hot path",
      "",
      mdTable(
        [
          "route",
          "target",
          "req/s",
          "p50 ms",
          "p99 ms",
          "1-conn p50 ms",
          "1-conn p99 ms",
          "CPU ms/req",
          "D1 / KV / queue msgs per req",
          "vs bare",
        ],
        rows,
        ["l", "l", "r", "r", "r", "r", "r", "r", "r", "r"],
      ),
    );
    if (r.webhook?.available) {
      const w = r.webhook;
      out.push(
        "",
        mdTable(
          [
            "route",
            "req/s",
            "p50 ms",
            "p99 ms",
            "CPU ms/req",
            "D1 / KV / queue msgs per req",
            "certificate fetches",
          ],
          [
            [
              `\`${w.route}\``,
              w.rps,
              w.p50_ms,
              w.p99_ms,
              w.cpu_ms_per_request,
              `${n(w.bindings_per_request.d1_calls)} / ${n(w.bindings_per_request.kv_calls)} / ${n(w.bindings_per_request.queue_messages)}`,
              w.certificate_fetches,
            ],
          ],
        ),
      );
    }
  }
  if (r.ingest) {
    out.push(
      "",
      "### Ingest",
      "",
      mdTable(
        [
          "batch kind (100 messages a batch)",
          "messages",
          "per second",
          "rows written / msg",
          "of which rollups",
          "SQL ms / batch (rollups' share)",
          "rows read / msg",
          "KV writes / msg",
          "batch p50 ms",
          "batch p99 ms",
        ],
        r.ingest.kinds.map((k) => [
          k.kind,
          k.messages,
          k.per_second,
          k.rows_written_per_unit,
          k.rollup_rows_written_per_unit ?? "",
          k.sql_ms_per_batch === undefined
            ? ""
            : `${k.sql_ms_per_batch} (${Math.round((k.rollup_sql_share ?? 0) * 100)} %)`,
          k.rows_read_per_unit,
          k.kv_writes_per_unit,
          k.batch_ms.p50,
          k.batch_ms.p99,
        ]),
      ),
    );
  }
  if (r.metrics) {
    const m = r.metrics;
    out.push(
      "",
      "### Metrics (GET /v1/metrics)",
      "",
      `On ${m.account} (${n(m.account_events)} events, ${n(m.largest_account_rollup_rows)} rollup rows). ` +
        `The dataset holds ${m.rollup_rows_per_event_stored} rollup rows per stored event (rolled up in ${m.rebuild_seconds} s).`,
      "",
      mdTable(
        ["case", "rows read", "buckets returned", "p50 ms", "p99 ms"],
        m.cases.map((c) => [c.name, n(c.rows_read), c.buckets_returned, c.latency_ms.p50, c.latency_ms.p99]),
      ),
    );
  }
  if (r.query) {
    const label = (c) => `${c.name}${c.limit !== 20 ? "" : ""}`;
    const table = (cases) =>
      mdTable(
        [
          "case",
          "account (events)",
          "pages",
          "rows read / page (first … last)",
          "max",
          "≤ 2×limit+10",
          "≤ 10,000 (§9)",
          "returned / page",
          "API p50 / p99 ms",
          "direct SQL rows / page (max)",
          "direct p50 / p99 ms",
          "rows ratio",
          "p50 ratio",
        ],
        cases.map((c) => [
          label(c),
          `${c.account.replace(/^acct_0*(\d+)_.*/, "#$1")} (${n(c.account_events)})`,
          c.pages,
          c.rows_read_per_page.length > 4
            ? `${c.rows_read_per_page.slice(0, 2).map(n).join(", ")} … ${n(c.rows_read_per_page.at(-1))}`
            : c.rows_read_per_page.map(n).join(", "),
          c.rows_read_max,
          c.meets_target ? "yes" : `**no**`,
          c.meets_row_budget === undefined ? "" : c.meets_row_budget ? "yes" : "**no**",
          (c.returned_per_page ?? []).length > 4
            ? `${c.returned_per_page.slice(0, 2).join(", ")} … ${c.returned_per_page.at(-1)}`
            : (c.returned_per_page ?? []).join(", "),
          `${n(c.api_ms.p50)} / ${n(c.api_ms.p99)}`,
          Math.max(...c.direct_rows_read_per_page),
          `${n(c.direct_ms.p50)} / ${n(c.direct_ms.p99)}`,
          c.ratio_rows_read,
          c.ratio_p50,
        ]),
      );
    const byKind = (k) => r.query.cases.filter((c) => c.kind === k);
    out.push("", "### Queries: each filter alone", "", table(byKind("single")));
    out.push("", "### Queries: combinations", "", table(byKind("combo")));
    out.push(
      "",
      "### Queries: deep pages and 50-event pages",
      "",
      table([...byKind("deep"), ...byKind("cost")]),
    );
  }
  if (r.cost) {
    out.push(
      "",
      "### Cost per million",
      "",
      mdTable(
        [
          "per million …",
          "Workers requests",
          "Workers CPU",
          "Queues",
          "D1 rows read",
          "D1 rows written",
          "D1 storage (30 days)",
          "KV",
          "total",
        ],
        r.cost
          .filter((c) => c.available)
          .map((c) => [
            c.name,
            dollars(c.lines[0].dollars),
            dollars(c.lines[1].dollars),
            dollars(c.lines[2].dollars),
            dollars(c.lines[3].dollars),
            dollars(c.lines[4].dollars),
            dollars(c.lines[5].dollars),
            dollars(c.lines[6].dollars + c.lines[7].dollars),
            `**${dollars(c.total)}**`,
          ]),
      ),
    );
  }
  return out.join("\n");
}
