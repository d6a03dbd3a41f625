// Phase: suppressions in bulk (SPEC §10, §20).
//
// Import: a CSV of N distinct addresses (the quick run: 20,000; the full run: 1,000,000) is POSTed to
// /v1/suppressions/imports (the upload into R2 is timed on its own), then its chunks run to the end
// through the bench route, one request per chunk (in production each is one JOBS_QUEUE message; the
// bench instance has no queue consumers), which counts every D1 statement's rows and every KV
// operation: the time, D1 rows written per entry and KV writes per entry.
// Export: GET /v1/suppressions/export of that list as CSV and NDJSON, entries per second.
// Erasure: one address with 10,000 events (and one suppression entry) erased: time and rows removed.
import { performance } from "node:perf_hooks";
import { mintToken } from "../../scripts/lib.mjs";
import { round } from "../lib/stats.mjs";

const ACCOUNT = "acct_bench_suppressions";

async function drain(url, headers) {
  const started = performance.now();
  const res = await fetch(url, { headers });
  if (res.status !== 200)
    throw new Error(`${url} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const reader = res.body.getReader();
  let bytes = 0;
  let lines = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.length;
    for (let i = 0; i < value.length; i++) if (value[i] === 10) lines++;
  }
  return { bytes, lines, seconds: (performance.now() - started) / 1000 };
}

export async function suppressionsPhase({ app, client, secret, options }) {
  const rows = options.rows;
  const write = await mintToken({ secret, sub: ACCOUNT, scope: "suppressions:write", ttl: "1h" });
  const read = await mintToken({ secret, sub: ACCOUNT, scope: "suppressions:read", ttl: "1h" });

  // Import.
  const lines = ["email,reason,topic"];
  for (let i = 0; i < rows; i += 1)
    lines.push(`import${i}@bench.example,${i % 3 ? "hard_bounce" : "manual"},`);
  const file = `${lines.join("\n")}\n`;
  const started = performance.now();
  const posted = await fetch(`${app.url}/v1/suppressions/imports`, {
    method: "POST",
    headers: { authorization: `Bearer ${write}`, "content-type": "text/csv" },
    body: file,
  });
  const upload_ms = performance.now() - started;
  if (posted.status !== 202) throw new Error(`import answered ${posted.status}: ${await posted.text()}`);
  const { id } = await posted.json();
  // One request per chunk, as one JOBS_QUEUE message runs it in production.
  const job = { ms: 0, statements: 0, rows_read: 0, rows_written: 0, kv: { reads: 0, writes: 0 }, chunks: 0 };
  for (let outcome = "more"; outcome === "more"; ) {
    const step = (
      await client.call("/__bench/suppressions-job", { method: "POST", body: { kind: "import-chunk", id } })
    ).data;
    outcome = step.result;
    job.chunks += 1;
    job.ms += step.ms;
    job.statements += step.statements;
    job.rows_read += step.rows_read;
    job.rows_written += step.rows_written;
    job.kv.reads += step.kv.reads;
    job.kv.writes += step.kv.writes;
  }
  const status = await (
    await fetch(`${app.url}/v1/suppressions/imports/${id}`, { headers: { authorization: `Bearer ${read}` } })
  ).json();
  if (status.status !== "completed" || status.accepted !== rows)
    throw new Error(`import ended ${JSON.stringify(status)}`);
  const importResult = {
    rows,
    file_bytes: file.length,
    upload_ms: round(upload_ms),
    process_seconds: round(job.ms / 1000),
    rows_per_second: round(rows / (job.ms / 1000)),
    chunks: job.chunks,
    d1_statements: job.statements,
    d1_rows_written_per_entry: round(job.rows_written / rows),
    d1_rows_read_per_entry: round(job.rows_read / rows),
    kv_writes_per_entry: round(job.kv.writes / rows),
    kv_reads_per_entry: round(job.kv.reads / rows),
  };

  // Export.
  const exports = {};
  for (const format of ["csv", "ndjson"]) {
    const r = await drain(`${app.url}/v1/suppressions/export?format=${format}`, {
      authorization: `Bearer ${read}`,
    });
    const entries = format === "csv" ? r.lines - 1 : r.lines;
    exports[format] = {
      entries,
      mb: round(r.bytes / 1e6),
      seconds: round(r.seconds),
      entries_per_second: round(entries / r.seconds),
    };
  }

  // Erasure of an address with 10,000 events (and a suppression entry).
  const email = "erase.me@bench.example";
  const events = options.erasureEvents;
  const now = Date.now();
  const batch = [];
  for (let i = 0; i < events; i += 1) {
    batch.push([
      ACCOUNT,
      now - i * 1000,
      `evt_bench_erase_${i}`,
      i % 2 ? "email.delivered" : "email.opened",
      `email_bench_erase_${i % 500}`,
      null,
      "news@bench.example",
      "bench.example",
      email,
      "Hello",
      null,
      null,
      null,
      "[]",
      null,
      null,
      null,
      null,
      null,
      null,
      null,
    ]);
  }
  for (let i = 0; i < batch.length; i += 5000) {
    await client.call("/__bench/load?table=events", {
      method: "POST",
      body: JSON.stringify(batch.slice(i, i + 5000)),
    });
  }
  await fetch(`${app.url}/v1/suppressions/${encodeURIComponent(email)}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${write}` },
  });
  const erasure = (
    await client.call("/__bench/suppressions-job", {
      method: "POST",
      body: { kind: "erasure", account: ACCOUNT, email },
    })
  ).data;
  return {
    import: importResult,
    export: exports,
    erasure: {
      events,
      seconds: round(erasure.ms / 1000),
      removed: erasure.result,
      d1_rows_written: erasure.rows_written,
      d1_rows_read: erasure.rows_read,
      kv: erasure.kv,
    },
  };
}

export function renderSuppressions(r) {
  const i = r.import;
  return [
    `import: ${i.rows.toLocaleString("en-US")} rows (${round(i.file_bytes / 1e6)} MB) uploaded in ${i.upload_ms} ms, processed in ${i.process_seconds} s (${i.rows_per_second} rows/s); per entry: ${i.d1_rows_written_per_entry} D1 rows written, ${i.kv_writes_per_entry} KV writes`,
    ...Object.entries(r.export).map(
      ([f, e]) =>
        `export ${f}: ${e.entries.toLocaleString("en-US")} entries, ${e.mb} MB in ${e.seconds} s (${e.entries_per_second} entries/s)`,
    ),
    `erasure: ${r.erasure.events.toLocaleString("en-US")} events in ${r.erasure.seconds} s; removed ${JSON.stringify(r.erasure.removed)}; ${r.erasure.d1_rows_written} D1 rows written`,
  ];
}
