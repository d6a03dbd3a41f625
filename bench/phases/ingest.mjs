// Phase 2, ingest: the real queue consumer (handleEventsBatch, run by the bench route on batches of
// 100 messages, the configured max_batch_size) writing into the same local D1 that holds the query
// dataset. Per kind: events per second, and rows written and read per event summed from D1's meta of
// every statement the consumer ran, plus the KV writes of the suppression mirror.
import {
  accountMessages,
  buildUniverse,
  syntheticEvent,
  toQueueMessage,
  toRegistration,
} from "../lib/generate.mjs";
import { progressBar } from "../lib/progress.mjs";
import { round, summarize } from "../lib/stats.mjs";

const BATCH = 100;

const chunk = (list, size) =>
  Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

/** Posts batches to the consumer route one at a time (one consumer invocation at a time). */
async function runBatches(client, app, kind, batches, bar) {
  let events = 0;
  let registrations = 0;
  let rowsWritten = 0;
  let rollupRowsWritten = 0;
  let sqlMs = 0;
  let rollupSqlMs = 0;
  /** Rollup rows written per table (the table a WITH statement inserts into). */
  const rollupByTable = {};
  let rowsRead = 0;
  let kvWrites = 0;
  let kvReads = 0;
  let retried = 0;
  const batchMs = [];
  const cpu0 = app.cpuSeconds();
  const started = performance.now();
  for (const batch of batches) {
    const { data, ms } = await client.call("/__bench/consume", { method: "POST", body: batch });
    batchMs.push(ms);
    retried += data.retried;
    events += batch.filter((m) => m.type === "event").length;
    registrations += batch.filter((m) => m.type === "register").length;
    for (const s of data.statements) {
      rowsWritten += s.rows_written ?? 0;
      // The metrics rollup statements (src/metrics/rollup.ts) are the consumer's only WITH statements.
      if (s.sql.startsWith("WITH ")) {
        rollupRowsWritten += s.rows_written ?? 0;
        const table = s.inserts ?? "other";
        rollupByTable[table] = (rollupByTable[table] ?? 0) + (s.rows_written ?? 0);
        rollupSqlMs += s.duration ?? 0;
      }
      sqlMs += s.duration ?? 0;
      rowsRead += s.rows_read ?? 0;
    }
    kvWrites += data.kv.writes + data.kv.deletes;
    kvReads += data.kv.reads;
    bar.tick(batch.length);
  }
  const seconds = (performance.now() - started) / 1000;
  const cpu1 = app.cpuSeconds();
  const unit = events || registrations;
  const ms = summarize(batchMs);
  return {
    kind,
    batches: batches.length,
    messages: events + registrations,
    events,
    registrations,
    seconds: round(seconds),
    per_second: Math.round(unit / seconds),
    rows_written: rowsWritten,
    rows_written_per_unit: round(rowsWritten / unit),
    rollup_rows_written: rollupRowsWritten,
    rollup_rows_written_per_unit: round(rollupRowsWritten / unit),
    rollup_rows_written_per_unit_by_table: Object.fromEntries(
      Object.entries(rollupByTable).map(([table, rows]) => [table, round(rows / unit)]),
    ),
    // D1's own execution time (meta.duration) of every statement, and the rollup statements' share.
    sql_ms_per_batch: round(sqlMs / batches.length),
    rollup_sql_share: sqlMs > 0 ? round(rollupSqlMs / sqlMs) : null,
    rows_read_per_unit: round(rowsRead / unit),
    kv_writes_per_unit: round(kvWrites / unit),
    kv_reads_per_unit: round(kvReads / unit),
    batch_ms: { p50: round(ms.p50), p99: round(ms.p99) },
    cpu_ms_per_unit: cpu0 === null || cpu1 === null ? null : round(((cpu1 - cpu0) * 1000) / unit),
    retried,
  };
}

export async function ingestPhase({ client, app, options, largeAccount = null }) {
  const { batchesPerKind, mixMessages } = options;
  const n = batchesPerKind * BATCH;
  const universe = buildUniverse({
    accounts: 1,
    totalEvents: 50 * n + 20 * mixMessages,
    seed: 7,
    now: Date.now(),
  });
  const account = { ...universe.accounts[0], id: "acct_bench_ingest" };
  const source = accountMessages(universe, account);
  const take = (count) => Array.from({ length: count }, () => source.next().value.message);
  const forEngagement = take(n);
  // Every permanent bounce a new address, as it would be (SES stops sending to bounced addresses).
  const forBounces = take(n).map((m, i) => ({ ...m, recipient: m.recipient.replace("@", `+b${i}@`) }));
  const mix = Array.from({ length: mixMessages }, () => source.next().value);

  const registrations = chunk(
    [...forEngagement, ...forBounces].map((m) => toRegistration(m)),
    BATCH,
  );
  const deliveries = chunk(
    forEngagement.map((m, i) => toQueueMessage(syntheticEvent(m, "delivery", i + 1))),
    BATCH,
  );
  const opens = chunk(
    forEngagement.map((m, i) => toQueueMessage(syntheticEvent(m, "open", n + i + 1))),
    BATCH,
  );
  const bounces = chunk(
    forBounces.map((m, i) => toQueueMessage(syntheticEvent(m, "bounce", 2 * n + i + 1))),
    BATCH,
  );
  // The realistic mix: each message registered when sent, then its events in arrival order.
  const stream = mix
    .flatMap(({ message, events }) => [
      { at: message.sent_at - 1000, body: toRegistration(message) },
      ...events.map((e) => ({ at: e.occurred_at, body: toQueueMessage(e) })),
    ])
    .sort((a, b) => a.at - b.at)
    .map((s) => s.body);
  const mixBatches = chunk(stream, BATCH);
  // One batch of registrations for the largest seeded account: what a registration costs when the
  // account already holds many events (the back-fill looks for the message's earlier events).
  const largeRegistrations = largeAccount
    ? [take(BATCH).map((m) => toRegistration({ ...m, account_id: largeAccount.account }))]
    : [];
  // The same kind of traffic at the account's real density: the messages it sends in one day
  // (24 hours from the median send time of the rest of its stream), so that a batch of 100 spans
  // minutes, as the live consumer sees it. The mix above samples the whole month, so each of its
  // batches spans hours and few events share a rollup key: the worst case for rollup rows.
  // Generated in slices, yielding to the event loop: Miniflare serves the workerd process from it.
  const rest = [];
  for (const m of source) {
    rest.push(m);
    if (rest.length % 2000 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  const sends = rest.map((m) => m.message.sent_at).sort((a, b) => a - b);
  const dayStart = sends[Math.floor(sends.length / 2)] ?? 0;
  const day = rest.filter((m) => m.message.sent_at >= dayStart && m.message.sent_at < dayStart + 86_400_000);
  const dayStream = day
    .flatMap(({ message, events }) => [
      { at: message.sent_at - 1000, body: toRegistration(message) },
      ...events.map((e) => ({ at: e.occurred_at, body: toQueueMessage(e) })),
    ])
    .sort((a, b) => a.at - b.at)
    .map((s) => s.body);
  const dayBatches = chunk(dayStream, BATCH);

  const total =
    registrations.flat().length +
    deliveries.flat().length * 2 +
    opens.flat().length +
    bounces.flat().length +
    stream.length +
    dayStream.length +
    largeRegistrations.flat().length;
  const bar = progressBar("  consumer batches", total, { unit: " msgs" });
  const kinds = [];
  kinds.push(await runBatches(client, app, "registration (POST /v1/messages)", registrations, bar));
  kinds.push(await runBatches(client, app, "SES delivery", deliveries, bar));
  kinds.push(await runBatches(client, app, "open (enriched from registration)", opens, bar));
  kinds.push(await runBatches(client, app, "permanent bounce + suppression", bounces, bar));
  kinds.push(await runBatches(client, app, "redelivered SES delivery batch", deliveries, bar));
  const mixed = await runBatches(client, app, "realistic mix", mixBatches, bar);
  kinds.push(mixed);
  const daily = await runBatches(client, app, "one day of the account at its real density", dayBatches, bar);
  kinds.push(daily);
  if (largeAccount) {
    kinds.push(
      await runBatches(
        client,
        app,
        `registration, account with ${largeAccount.events.toLocaleString("en-US")} events`,
        largeRegistrations,
        bar,
      ),
    );
  }
  bar.done();

  // Check that enrichment happened: opens carry the registered campaign and tags.
  const [check] = await client.sql([
    {
      sql: `SELECT COUNT(*) AS n, SUM(campaign IS NOT NULL OR template_id IS NOT NULL) AS enriched
              FROM events WHERE account_id = ? AND type = 'email.opened' AND email_id IN (SELECT value FROM json_each(?))`,
      params: [account.id, JSON.stringify(forEngagement.slice(0, 200).map((m) => m.email_id))],
      on: `account:${account.id}`,
    },
  ]);
  const mixEvents = mixed.events;
  const mixTypes = {};
  for (const b of stream) if (b.type === "event") mixTypes[b.event.type] = (mixTypes[b.event.type] ?? 0) + 1;
  return {
    batch_size: BATCH,
    kinds,
    mix: {
      messages: mixMessages,
      events: mixEvents,
      events_per_message: round(mixEvents / mixMessages),
      types: mixTypes,
      rows_written_per_event: round(mixed.rows_written / mixEvents),
      rollup_rows_written_per_event: round(mixed.rollup_rows_written / mixEvents),
    },
    day: {
      messages: day.length,
      events: daily.events,
      rows_written_per_event: round(daily.rows_written / daily.events),
      rollup_rows_written_per_event: round(daily.rollup_rows_written / daily.events),
    },
    enrichment_check: { opens_checked: check.results[0].n, enriched: check.results[0].enriched },
  };
}
