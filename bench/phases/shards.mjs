// Phase "shards" (SPEC §17): many D1 databases, measured in the real runtime.
// - Ingest throughput through the real consumer on one event shard vs four (the consumer writes a
//   batch's shards in parallel, each in one transaction), with batches in flight as Queues runs them.
// - Placement balance on a Zipf(1.1) set of accounts: the heavy tail placed and the largest accounts
//   striped through PUT /v1/admin/placements, then every account ingested through the consumer;
//   max/mean bytes per shard from GET /v1/admin/shards (D1's own size), against rendezvous alone.
// - A striped account's page cost: rows read by one page of GET /v1/events (listEvents, every
//   statement's meta), per D1 binding: each event shard it touches against one page's budget (10,000
//   rows, SPEC §18), their sum against stripes × that budget (SPEC §17), the control database apart.
// - Capacity: bytes per event with everything that grows with mail (events, registrations, the
//   Message-ID map, rollups, sending domains, suppressions, and one webhook delivery per event),
//   events per day one shard holds at 3, 7 and 30 days, and shards for 1, 10 and 100 M emails a day.
import path from "node:path";
import { hashedShard, mintToken } from "../../scripts/lib.mjs";
import { benchClient } from "../lib/client.mjs";
import { accountMessages, buildUniverse, toQueueMessage, toRegistration } from "../lib/generate.mjs";
import { startWorker } from "../lib/instances.mjs";
import { progressBar } from "../lib/progress.mjs";
import { round } from "../lib/stats.mjs";

const BATCH = 100;
const SHARDS = [0, 1, 2, 3];
const PAGE_BUDGET = 10_000;
const SIZE_LIMIT = 10_000_000_000;
/** Keep a shard under 80 % full: freed pages are reused, not returned, and a day can be twice the mean. */
const FILL = 0.8;
const EVENTS_PER_EMAIL = 2.65;

const chunk = (list, size) =>
  Array.from({ length: Math.ceil(list.length / size) }, (_, i) => list.slice(i * size, (i + 1) * size));

/** Registrations and events of the universe's accounts, in arrival order. */
function stream(universe, accountIds = null) {
  const out = [];
  for (const account of universe.accounts) {
    if (accountIds && !accountIds.has(account.id)) continue;
    for (const { message, events } of accountMessages(universe, account)) {
      out.push({ at: message.sent_at - 1000, body: toRegistration(message) });
      for (const e of events) out.push({ at: e.occurred_at, body: toQueueMessage(e) });
    }
  }
  return out.sort((a, b) => a.at - b.at).map((s) => s.body);
}

/** Posts batches to the consumer route, `inFlight` at a time; messages per second. */
async function ingest(client, batches, inFlight, bar) {
  const started = performance.now();
  let next = 0;
  let retried = 0;
  let rowsWritten = 0;
  const worker = async () => {
    while (next < batches.length) {
      const batch = batches[next++];
      const { data } = await client.call("/__bench/consume", { method: "POST", body: batch });
      retried += data.retried;
      for (const s of data.statements) rowsWritten += s.rows_written ?? 0;
      bar?.tick(batch.length);
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = (performance.now() - started) / 1000;
  const messages = batches.reduce((n, b) => n + b.length, 0);
  return {
    messages,
    seconds: round(seconds),
    per_second: Math.round(messages / seconds),
    retried,
    rowsWritten,
  };
}

async function adminCall(app, secret, method, pathname, body) {
  const token = await mintToken({ sub: "bench_operator", scope: "admin", secret, ttl: "1h" });
  const res = await fetch(`${app.url}${pathname}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${pathname} answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

const shardBytes = async (app, secret) =>
  (await adminCall(app, secret, "GET", "/v1/admin/shards")).data.map((s) => s.bytes);

/**
 * The placement table of BENCHMARKS.md "Beyond one database" with the Worker's own hash: accounts
 * above 5 % of a shard's fair share are placed largest first on the least-loaded shard; those above
 * half a share are striped over as many shards as they need.
 */
function placementTable(accounts, shards, { threshold = 0.05, stripeAbove = 0.5 } = {}) {
  const total = accounts.reduce((s, a) => s + a.events, 0);
  const fair = total / shards.length;
  const heavy = accounts.filter((a) => a.events > threshold * fair);
  const heavyIds = new Set(heavy.map((a) => a.id));
  const load = new Map(shards.map((s) => [s, 0]));
  for (const a of accounts) {
    if (!heavyIds.has(a.id)) {
      const s = hashedShard(a.id, shards);
      load.set(s, load.get(s) + a.events);
    }
  }
  const items = heavy.flatMap((a) => {
    const stripes =
      a.events > stripeAbove * fair ? Math.min(shards.length, Math.ceil(a.events / (stripeAbove * fair))) : 1;
    return Array.from({ length: stripes }, () => ({ id: a.id, events: a.events / stripes }));
  });
  items.sort((x, y) => y.events - x.events);
  const table = new Map();
  for (const item of items) {
    const taken = table.get(item.id) ?? [];
    let target = null;
    for (const s of shards) {
      if (taken.includes(s)) continue;
      if (target === null || load.get(s) < load.get(target)) target = s;
    }
    taken.push(target);
    table.set(item.id, taken);
    load.set(target, load.get(target) + item.events);
  }
  return table;
}

export async function shardsPhase({ bundle, config, secrets, migrations, tmp, options, say }) {
  const oneShardConfig = {
    ...config,
    d1: { DB: config.d1.DB, EVENTS_0: config.d1.EVENTS_0 },
  };
  const start = async (name, cfg, vars) => {
    const app = await startWorker({
      name,
      bundle,
      config: cfg,
      bindings: { ...cfg.vars, ...secrets, ...vars },
      persistDir: path.join(tmp, name),
      logFile: path.join(tmp, `${name}.log`),
    });
    const client = benchClient(app, secrets.BENCH_KEY);
    await client.sql(migrations);
    return { app, client };
  };
  const instances = [];
  try {
    // 1. Ingest throughput: the same stream of many accounts on 1 shard and on 4.
    const throughputUniverse = buildUniverse({
      accounts: 200,
      totalEvents: options.throughputEvents,
      seed: 17,
      now: Date.now(),
    });
    const throughputBatches = chunk(stream(throughputUniverse), BATCH);
    const throughput = {};
    for (const [label, cfg, vars] of [
      ["one_shard", oneShardConfig, { EVENT_SHARDS: "0" }],
      ["four_shards", config, { EVENT_SHARDS: "0,1,2,3" }],
    ]) {
      const instance = await start(`shards-${label}`, cfg, vars);
      instances.push(instance);
      const bar = progressBar(`  ingest, ${label.replace("_", " ")}`, throughputBatches.flat().length, {
        unit: " msgs",
      });
      throughput[label] = await ingest(instance.client, throughputBatches, options.inFlight, bar);
      bar.done();
      await instance.app.stop();
      instances.pop();
    }
    throughput.ratio = round(throughput.four_shards.per_second / throughput.one_shard.per_second);

    // 2. Balance, page cost and capacity on a Zipf set over 4 shards, with placements and stripes.
    const { app, client } = await start("shards-balance", config, { EVENT_SHARDS: "0,1,2,3" });
    instances.push({ app, client });
    const empty = await shardBytes(app, secrets.JWT_SECRET);
    const universe = buildUniverse({
      accounts: 100,
      totalEvents: options.balanceEvents,
      seed: 29,
      now: Date.now(),
    });
    const table = placementTable(universe.accounts, SHARDS);
    for (const [account, shards] of table) {
      await adminCall(app, secrets.JWT_SECRET, "PUT", `/v1/admin/placements/${account}`, { shards });
    }
    for (const a of universe.accounts) {
      await client.call("/__bench/sql", {
        method: "POST",
        body: {
          statements: [
            {
              sql: "INSERT INTO accounts (id, plan, created_at, updated_at) VALUES (?, 'scale', 0, 0) ON CONFLICT DO NOTHING",
              params: [a.id],
            },
          ],
        },
      });
    }
    const balanceBatches = chunk(stream(universe), BATCH);
    const bar = progressBar("  ingest, Zipf set over 4 shards", balanceBatches.flat().length, {
      unit: " msgs",
    });
    const ingested = await ingest(client, balanceBatches, options.inFlight, bar);
    bar.done();
    const full = await shardBytes(app, secrets.JWT_SECRET);
    const used = full.map((b, i) => b - empty[i]);
    const mean = used.reduce((a, b) => a + b, 0) / used.length;
    const events = balanceBatches.flat().filter((m) => m.type === "event").length;
    const emails = balanceBatches.flat().filter((m) => m.type === "register").length;
    // Rendezvous alone on the same volumes, for comparison (not ingested: computed from the events).
    const hashedLoad = SHARDS.map(() => 0);
    for (const a of universe.accounts) hashedLoad[hashedShard(a.id, SHARDS)] += a.events;
    const hashedMean = hashedLoad.reduce((x, y) => x + y, 0) / SHARDS.length;
    const balance = {
      accounts: universe.accounts.length,
      events,
      placed_accounts: table.size,
      striped: [...table.entries()]
        .filter(([, s]) => s.length > 1)
        .map(([id, s]) => ({ account: id, shards: s })),
      bytes_per_shard: used,
      max_over_mean: round(Math.max(...used) / mean),
      min_over_mean: round(Math.min(...used) / mean),
      rendezvous_alone_max_over_mean: round(Math.max(...hashedLoad) / hashedMean),
      ingest_per_second: ingested.per_second,
    };

    // 3. A striped account's page: one page of GET /v1/events, a common filter and a rare one. The
    // placements were made before ingest, so the account's hashed shard (unless one of its stripes)
    // is still its `previous` and read too, holding nothing of it, until the scheduled work drops it.
    const largest = universe.accounts[0];
    const placement = await adminCall(app, secrets.JWT_SECRET, "GET", `/v1/admin/placements/${largest.id}`);
    const stripes = placement.shards.length;
    const pageCost = [];
    for (const [name, query] of [
      ["days=30, limit 20", "days=30&limit=20"],
      ["days=30, limit 1000", "days=30&limit=1000"],
      ["rare filter (event_type=email.complained)", "days=30&limit=100&event_type=email.complained"],
    ]) {
      const { data } = await client.call(`/__bench/events?${query}`, {
        extraHeaders: { "x-bench-account": largest.id, "x-bench-measure-all": "1" },
      });
      const byBinding = {};
      for (const s of data.statements) byBinding[s.on] = (byBinding[s.on] ?? 0) + (s.rows_read ?? 0);
      const perShard = Object.fromEntries(
        Object.entries(byBinding)
          .filter(([on]) => on !== "DB")
          .map(([on, n]) => [Number(on.slice("EVENTS_".length)), n])
          .sort(([a], [b]) => a - b),
      );
      const shardRows = Object.values(perShard).reduce((a, b) => a + b, 0);
      const maxShard = Math.max(0, ...Object.values(perShard));
      pageCost.push({
        query: name,
        stripes,
        shards: placement.shards,
        previous: placement.previous,
        returned: data.count,
        rows_read_per_shard: perShard,
        max_shard_rows_read: maxShard,
        shard_rows_read: shardRows,
        control_rows_read: byBinding.DB ?? 0,
        unmeasured_statements: data.statements.filter((s) => s.rows_read === null).length,
        rows_read: shardRows + (byBinding.DB ?? 0),
        shard_budget: PAGE_BUDGET,
        budget: stripes * PAGE_BUDGET,
        // §18: no shard past its page budget; §17: the event shards' sum within the stripes' sum.
        within: maxShard <= PAGE_BUDGET && shardRows <= stripes * PAGE_BUDGET,
      });
    }

    // 4. Capacity: bytes per event with everything that grows with mail, plus one delivery per event.
    const deliveryRows = options.deliveryRows;
    const before = await shardBytes(app, secrets.JWT_SECRET);
    const rows = Array.from({ length: deliveryRows }, (_, i) => [
      `whk_${String(i % 7).padStart(26, "0")}`,
      Date.now() - i * 1000,
      `evt_${i.toString(36).padStart(16, "0")}`,
      largest.id,
      "email.delivered",
    ]);
    for (const part of chunk(rows, 2000)) {
      await client.sql([
        {
          on: "EVENTS_0",
          sql: `INSERT INTO webhook_deliveries (endpoint_id, event_occurred_at, event_id, account_id, event_type, status,
                  attempts, first_attempt_at, last_attempt_at, next_attempt_at, response_status, error)
                SELECT value->>0, value->>1, value->>2, value->>3, value->>4, 'succeeded', 1, value->>1, value->>1,
                  NULL, 200, NULL FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING`,
          params: [JSON.stringify(part)],
        },
      ]);
    }
    const after = await shardBytes(app, secrets.JWT_SECRET);
    const deliveryBytes = (after[0] - before[0]) / deliveryRows;
    const bytesPerEventWithoutDeliveries = used.reduce((a, b) => a + b, 0) / events;
    const bytesPerEvent = bytesPerEventWithoutDeliveries + deliveryBytes;
    const perDay = (days) => Math.floor((SIZE_LIMIT * FILL) / (bytesPerEvent * days));
    const shardsFor = (emailsPerDay, days) => Math.ceil((emailsPerDay * EVENTS_PER_EMAIL) / perDay(days));
    const capacity = {
      events,
      emails,
      events_per_email: round(events / emails),
      bytes_per_event_without_deliveries: Math.round(bytesPerEventWithoutDeliveries),
      bytes_per_delivery: Math.round(deliveryBytes),
      bytes_per_event: Math.round(bytesPerEvent),
      fill: FILL,
      events_per_day_per_shard: { 3: perDay(3), 7: perDay(7), 30: perDay(30) },
      shards_for_emails_per_day: Object.fromEntries(
        [1e6, 1e7, 1e8].map((n) => [n, { 3: shardsFor(n, 3), 7: shardsFor(n, 7), 30: shardsFor(n, 30) }]),
      ),
    };
    say(
      `  shards: ingest ${throughput.one_shard.per_second}/s on 1 shard, ${throughput.four_shards.per_second}/s on 4 ` +
        `(${throughput.ratio}x); balance max/mean ${balance.max_over_mean}; ${capacity.bytes_per_event} bytes/event`,
    );
    return { available: true, settings: options, throughput, balance, page_cost: pageCost, capacity };
  } finally {
    for (const { app } of instances) await app.stop();
  }
}
