// Cloudflare list prices (Workers Paid, usage beyond the included allowances) and the cost math.
// Included allowances and the $5 monthly base are left out: these are marginal costs at scale.

export const PRICES = {
  read_on: "2026-11-22",
  workers: {
    request_per_million: 0.3,
    cpu_ms_per_million: 0.02,
    source: "https://developers.cloudflare.com/workers/platform/pricing/",
  },
  queues: {
    operation_per_million: 0.4,
    operations_per_message: 3, // write + read + delete, per 64 KB
    operation_bytes: 64_000,
    source: "https://developers.cloudflare.com/queues/pricing/",
  },
  d1: {
    rows_read_per_million: 0.001,
    rows_written_per_million: 1.0,
    storage_gb_month: 0.75,
    source: "https://developers.cloudflare.com/d1/platform/pricing/",
  },
  kv: {
    read_per_million: 0.5,
    write_per_million: 5.0, // writes, deletes and lists
    source:
      "https://developers.cloudflare.com/kv/platform/pricing/ (figures confirmed from blog.cloudflare.com/workers-kv-free-tier)",
  },
};

/**
 * Dollars per million operations of something whose per-operation usage is `u`:
 * requests, cpu_ms, queue_messages (with queue_message_bytes), d1_rows_read, d1_rows_written,
 * kv_reads, kv_writes, stored_bytes kept for storage_months.
 */
export function costPerMillion(u, prices = PRICES) {
  const m = 1_000_000;
  const queueOps =
    (u.queue_messages ?? 0) *
    prices.queues.operations_per_message *
    Math.max(1, Math.ceil((u.queue_message_bytes ?? 1) / prices.queues.operation_bytes));
  const lines = [
    ["Workers requests", ((u.requests ?? 0) * m * prices.workers.request_per_million) / m],
    ["Workers CPU", ((u.cpu_ms ?? 0) * m * prices.workers.cpu_ms_per_million) / m],
    ["Queues operations", (queueOps * m * prices.queues.operation_per_million) / m],
    ["D1 rows read", ((u.d1_rows_read ?? 0) * m * prices.d1.rows_read_per_million) / m],
    ["D1 rows written", ((u.d1_rows_written ?? 0) * m * prices.d1.rows_written_per_million) / m],
    [
      "D1 storage",
      (((u.stored_bytes ?? 0) * m) / 1e9) * (u.storage_months ?? 0) * prices.d1.storage_gb_month,
    ],
    ["KV reads", ((u.kv_reads ?? 0) * m * prices.kv.read_per_million) / m],
    ["KV writes", ((u.kv_writes ?? 0) * m * prices.kv.write_per_million) / m],
  ].map(([item, dollars]) => ({ item, dollars }));
  return { lines, total: lines.reduce((s, l) => s + l.dollars, 0) };
}

/** Events a single D1 database of `capacityBytes` holds per day at `retentionDays`. */
export function eventsPerDay(bytesPerEvent, { capacityBytes = 10e9, retentionDays = 30 } = {}) {
  return Math.floor(capacityBytes / (bytesPerEvent * retentionDays));
}
