#!/usr/bin/env node
// `npm run bench` — the mailtrail benchmark on local workerd. See BENCHMARKS.md for what each phase
// measures and the latest figures.
//
//   npm run bench                 full run: 1,000,000 events in D1, 10 s load rounds (about 10 minutes)
//   npm run bench -- --quick      quick check: 50,000 events, 3 s rounds (about 1-2 minutes)
//   npm run bench -- --self-test  no workerd: checks the generator, statistics, cost math and
//                                 shard simulation on tiny data (seconds)
//   npm run bench -- --classify   no workerd: classifier and burst precision/recall (bench/classify.mjs)
//   options: --only hot,query,ingest,metrics,size,export,adversarial,webhooks-delivery,suppressions,shards   --events N   --keep (keep the temp dir)   --out FILE
//   node bench/run.mjs --markdown [results.json]   the figures as Markdown tables, for BENCHMARKS.md
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";

const { values: args, positionals } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    "self-test": { type: "boolean", default: false },
    only: { type: "string" },
    events: { type: "string" },
    keep: { type: "boolean", default: false },
    out: { type: "string" },
    markdown: { type: "boolean", default: false },
    classify: { type: "boolean", default: false },
  },
  allowPositionals: true,
});

if (args.classify) {
  // Machine-traffic precision and recall (issue 14): pure modules, no workerd. See bench/classify.mjs.
  const { runClassifyBench } = await import("./classify.mjs");
  await runClassifyBench({ markdown: args.markdown });
  process.exit(0);
}

if (args.markdown) {
  // Markdown tables of a finished run (default bench/results.json), for BENCHMARKS.md.
  const { markdown } = await import("./lib/markdown.mjs");
  const file = positionals[0] ?? path.join(import.meta.dirname, "results.json");
  console.log(markdown(JSON.parse(readFileSync(file, "utf8"))));
  process.exit(0);
}

if (args["self-test"]) {
  const { selfTest } = await import("./self-test.mjs");
  process.exit((await selfTest()) ? 0 : 1);
}

const ROOT = path.join(import.meta.dirname, "..");
const MODE = args.quick ? "quick" : "full";
const SETTINGS = {
  quick: {
    events: 50_000,
    hot: { seconds: 3, rounds: 2, warmup: 1, connections: 16, unloadedSeconds: 1.5 },
    query: { repeats: 2, deepPages: 20, singlePages: 2, cpuRequests: 100 },
    ingest: { batchesPerKind: 5, mixMessages: 300 },
    webhooks: { steadyEvents: 100, rate: 20, burstEvents: 500 },
    metrics: { repeats: 20 },
    shards: { throughputEvents: 6_000, balanceEvents: 20_000, inFlight: 4, deliveryRows: 10_000 },
    suppressions: { rows: 20_000, erasureEvents: 10_000 },
  },
  full: {
    events: 1_000_000,
    hot: { seconds: 10, rounds: 3, warmup: 2, connections: 16, unloadedSeconds: 4 },
    query: { repeats: 5, deepPages: 25, singlePages: 3, cpuRequests: 400 },
    ingest: { batchesPerKind: 50, mixMessages: 3000 },
    webhooks: { steadyEvents: 300, rate: 20, burstEvents: 2000 },
    metrics: { repeats: 100 },
    shards: { throughputEvents: 60_000, balanceEvents: 200_000, inFlight: 4, deliveryRows: 50_000 },
    suppressions: { rows: 1_000_000, erasureEvents: 10_000 },
  },
}[MODE];
if (args.events) SETTINGS.events = Number(args.events);
const PHASES = new Set(
  (args.only ?? "hot,query,ingest,metrics,size,export,adversarial,webhooks-delivery,suppressions,shards")
    .split(",")
    .map((s) => s.trim()),
);
const OUT = args.out ? path.resolve(args.out) : path.join(ROOT, "bench", "results.json");

const { benchSecrets, buildBundle, bundleComposition, bundleSize, startWorker, workerConfig } = await import(
  "./lib/instances.mjs"
);
const { benchClient } = await import("./lib/client.mjs");
const { costPerMillion, eventsPerDay, PRICES } = await import("./lib/cost.mjs");
const { dollars, table } = await import("./lib/report.mjs");
const { round } = await import("./lib/stats.mjs");
const { toQueueMessage, syntheticEvent, buildUniverse, accountMessages } = await import("./lib/generate.mjs");

const startedAt = new Date();
/** The export phase's console lines (bench/phases/export.mjs renders them). */
let exportLines = [];
const t0 = Date.now();
const elapsed = () => `${((Date.now() - t0) / 1000).toFixed(0)}s`;
const say = (line) => process.stderr.write(`${line}\n`);

function machine() {
  const cpus = os.cpus();
  const git = (...a) => {
    try {
      return execFileSync("git", a, {
        cwd: ROOT,
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      }).trim();
    } catch {
      return null;
    }
  };
  const version = (pkg) => {
    try {
      return JSON.parse(readFileSync(path.join(ROOT, "node_modules", pkg, "package.json"), "utf8")).version;
    } catch {
      return null;
    }
  };
  return {
    cpu: cpus[0]?.model ?? "unknown",
    cores: cpus.length,
    memory_gb: Math.round(os.totalmem() / 1e9),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    wrangler: version("wrangler"),
    miniflare: version("miniflare"),
    workerd: version("workerd"),
    autocannon: version("autocannon"),
    commit: git("rev-parse", "--short", "HEAD"),
    uncommitted_changes: (git("status", "--porcelain") ?? "").split("\n").filter(Boolean).length,
  };
}

const tmp = mkdtempSync(path.join(os.tmpdir(), "mailtrail-bench-"));
const instances = [];
let interrupted = false;
async function cleanup() {
  for (const i of instances.splice(0)) await i.stop().catch(() => {});
  if (!args.keep) rmSync(tmp, { recursive: true, force: true });
}
process.on("SIGINT", () => {
  if (interrupted) process.exit(130);
  interrupted = true;
  say("\ninterrupted; stopping workerd");
  cleanup().finally(() => process.exit(130));
});

const results = {
  mode: MODE,
  started_at: startedAt.toISOString(),
  command: `npm run bench${args.quick ? " -- --quick" : ""}`,
  machine: machine(),
  settings: SETTINGS,
  prices: PRICES,
};

try {
  say(
    `mailtrail benchmark (${MODE}) on ${results.machine.cpu}, ${results.machine.cores} cores; temp dir ${tmp}`,
  );

  // Build the real Worker (its size is a figure) and the bench entry (what runs), as deploy builds them.
  say(`[${elapsed()}] building bundles with wrangler deploy --dry-run`);
  const metafile = path.join(tmp, "meta-real.json");
  const [realBundle, minifiedBundle, benchBundle] = await Promise.all([
    buildBundle(null, path.join(tmp, "build-real"), ["--metafile", metafile]),
    buildBundle(null, path.join(tmp, "build-minified"), ["--minify"]),
    buildBundle("bench/bench-worker.ts", path.join(tmp, "build-bench")),
  ]);
  results.size = {
    bundle: {
      ...bundleSize(realBundle.modules),
      wrangler_reported: realBundle.wranglerReport,
      largest_sources: bundleComposition(metafile),
      with_minify: bundleSize(minifiedBundle.modules),
    },
  };

  const config = workerConfig();
  const secrets = benchSecrets();
  const app = await startWorker({
    name: "mailtrail",
    bundle: benchBundle,
    config,
    bindings: { ...config.vars, ...secrets },
    persistDir: path.join(tmp, "state"),
    logFile: path.join(tmp, "worker.log"),
  });
  instances.push(app);
  const bare = await startWorker({
    name: "bare",
    bundle: { main: path.join(ROOT, "bench", "bare-worker.js") },
    config: { compatibilityDate: config.compatibilityDate, compatibilityFlags: config.compatibilityFlags },
    bindings: {},
  });
  instances.push(bare);
  const client = benchClient(app, secrets.BENCH_KEY);
  say(
    `[${elapsed()}] worker on ${app.url} (workerd pid ${app.pid}), bare worker on ${bare.url} (pid ${bare.pid})`,
  );

  // Schema from migrations/, applied in order to every D1 binding (the control database and each
  // event shard), as `wrangler d1 migrations apply` would.
  const migrationsDir = path.join(ROOT, "migrations");
  const statements = readdirSync(migrationsDir)
    .filter((f) => f.endsWith(".sql"))
    .sort()
    .flatMap((f) =>
      readFileSync(path.join(migrationsDir, f), "utf8")
        .split("--> statement-breakpoint")
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .map((sql) => ({ sql, on: "all" }));
  await client.sql(statements);

  if (PHASES.has("hot")) {
    say(`[${elapsed()}] phase 1: hot path`);
    const { hotPhase } = await import("./phases/hot.mjs");
    results.hot = {
      settings: SETTINGS.hot,
      ...(await hotPhase({ app, bare, client, secrets, options: SETTINGS.hot })),
    };
    if (!results.hot.available)
      say(`  not available: ${results.hot.reason ?? results.hot.routes.map((r) => r.reason).join("; ")}`);
    const { webhookPhase } = await import("./phases/webhook.mjs");
    results.webhook = await webhookPhase({ app, client, options: SETTINGS.hot });
    if (!results.webhook.available) say(`  SES webhook not available: ${results.webhook.reason}`);
  }

  let seeded = null;
  if (
    PHASES.has("query") ||
    PHASES.has("size") ||
    PHASES.has("metrics") ||
    PHASES.has("export") ||
    PHASES.has("adversarial")
  ) {
    say(`[${elapsed()}] phase 3: query dataset, ${SETTINGS.events.toLocaleString("en-US")} events`);
    const { seedPhase } = await import("./phases/seed.mjs");
    seeded = await seedPhase({ client, totalEvents: SETTINGS.events });
    results.dataset = seeded.result;
    // The rollups of the bulk-loaded events (the consumer writes them in production), before any
    // phase reads them: totals by the hourly rollups (count=true, total_count) and the metrics.
    const { rebuildRollups } = await import("./lib/rollups.mjs");
    const { progressBar } = await import("./lib/progress.mjs");
    const bar = progressBar("  rolling up accounts", seeded.universe.accounts.length);
    seeded.rollupMs = 0;
    for (const { id } of seeded.universe.accounts) {
      seeded.rollupMs += (await rebuildRollups(client, id)).ms;
      bar.tick();
    }
    bar.done();
    if (PHASES.has("query")) {
      const { queryPhase } = await import("./phases/query.mjs");
      results.query = await queryPhase({
        app,
        client,
        secret: secrets.JWT_SECRET,
        values: seeded.values,
        options: SETTINGS.query,
      });
    }
    if (PHASES.has("export")) {
      say(`[${elapsed()}] phase: export and SparkPost pages`);
      const { exportPhase, renderExport } = await import("./phases/export.mjs");
      results.export = await exportPhase({
        app,
        client,
        secret: secrets.JWT_SECRET,
        values: seeded.values,
        options: { repeats: SETTINGS.query.repeats },
      });
      exportLines = renderExport(results.export);
    }
    if (PHASES.has("adversarial")) {
      say(`[${elapsed()}] phase: adversarial parameters (SPEC §18 budgets)`);
      const { adversarialPhase, renderAdversarial } = await import("./phases/adversarial.mjs");
      results.adversarial = await adversarialPhase({
        client,
        secret: secrets.JWT_SECRET,
        values: seeded.values,
      });
      exportLines = [...(exportLines ?? []), ...renderAdversarial(results.adversarial)];
    }
  }

  if (PHASES.has("metrics") && seeded) {
    say(`[${elapsed()}] phase 4: metrics (rollups of the dataset, GET /v1/metrics)`);
    const { metricsPhase } = await import("./phases/metrics.mjs");
    results.metrics = await metricsPhase({
      app,
      client,
      secret: secrets.JWT_SECRET,
      universe: seeded.universe,
      values: seeded.values,
      rollupMs: seeded.rollupMs,
      options: SETTINGS.metrics,
    });
  }

  if (PHASES.has("ingest")) {
    say(`[${elapsed()}] phase 2: ingest through the queue consumer`);
    const { ingestPhase } = await import("./phases/ingest.mjs");
    results.ingest = await ingestPhase({
      client,
      app,
      options: SETTINGS.ingest,
      largeAccount: results.query?.values?.[0] ?? null,
    });
  }

  if (PHASES.has("webhooks-delivery")) {
    say(
      `[${elapsed()}] phase 5: webhooks, event accepted -> webhook received (queue settings of wrangler.toml)`,
    );
    const { webhooksDeliveryPhase } = await import("./phases/webhooks-delivery.mjs");
    results.webhooks_delivery = await webhooksDeliveryPhase({
      bundle: benchBundle,
      config,
      secrets,
      migrations: statements,
      tmp,
      options: SETTINGS.webhooks,
      say,
    });
    if (!results.webhooks_delivery.available) say(`  not available: ${results.webhooks_delivery.reason}`);
  }

  if (PHASES.has("suppressions")) {
    say(`[${elapsed()}] phase: suppressions (import, export, erasure)`);
    const { suppressionsPhase, renderSuppressions } = await import("./phases/suppressions.mjs");
    results.suppressions = await suppressionsPhase({
      app,
      client,
      secret: secrets.JWT_SECRET,
      options: SETTINGS.suppressions,
    });
    for (const line of renderSuppressions(results.suppressions)) say(`  ${line}`);
  }

  if (PHASES.has("shards")) {
    say(`[${elapsed()}] phase 6: event shards (1 vs 4, placement balance, striped pages, capacity)`);
    const { shardsPhase } = await import("./phases/shards.mjs");
    results.shards = await shardsPhase({
      bundle: benchBundle,
      config,
      secrets,
      migrations: statements,
      tmp,
      options: SETTINGS.shards,
      say,
    });
  }

  if (results.dataset) {
    results.size.bytes_per_event = round(results.dataset.bytes_per_event);
    results.size.events_per_day_in_10gb_at_30_days = eventsPerDay(results.dataset.bytes_per_event);
  }
  results.cost = costs(results);
  results.targets = targets(results);
  results.seconds = Math.round((Date.now() - t0) / 1000);
  // Idempotent requests sent again after the local runtime closed their connection (client.mjs).
  results.client_retries = client.retried;
  if (client.retried.length > 0)
    say(`  requests sent again after a lost connection: ${client.retried.join(", ")}`);
  writeFileSync(OUT, `${JSON.stringify(results, null, 2)}\n`);
  console.log(render(results));
  say(`[${elapsed()}] wrote ${path.relative(process.cwd(), OUT)}`);
} catch (err) {
  say(`benchmark failed: ${err.stack ?? err}${err.cause ? `\ncause: ${err.cause.stack ?? err.cause}` : ""}`);
  say(`worker log: ${path.join(tmp, "worker.log")} (kept)`);
  args.keep = true;
  process.exitCode = 1;
} finally {
  await cleanup();
}

/** Cost per million operations from the measured counts (null where a count was not measured). */
function costs(r) {
  const kind = (name) => r.ingest?.kinds.find((k) => k.kind.startsWith(name));
  const hotRoute = (route) => r.hot?.routes?.find((x) => x.route === route && x.available);
  const bytes = r.dataset?.bytes_per_event ?? null;
  const sample = (type) => {
    const u = buildUniverse({ accounts: 1, totalEvents: 10, seed: 3 });
    const { message } = accountMessages(u, u.accounts[0]).next().value;
    return JSON.stringify(toQueueMessage(syntheticEvent(message, type, 1))).length;
  };
  const consumer = (k) =>
    k && {
      requests: 1 / (r.ingest.batch_size ?? 100), // one consumer invocation per batch
      cpu_ms_consumer: k.cpu_ms_per_unit,
      d1_rows_read: k.rows_read_per_unit,
      d1_rows_written: k.rows_written_per_unit,
      kv_writes: k.kv_writes_per_unit,
      kv_reads: k.kv_reads_per_unit,
    };
  const item = (name, edge, consumed, notes) => {
    if (!consumed && !edge.d1_rows_read) return { name, available: false, notes };
    const usage = {
      requests: edge.requests + (consumed?.requests ?? 0),
      cpu_ms: (edge.cpu_ms ?? 0) + (consumed?.cpu_ms_consumer ?? 0),
      queue_messages: edge.queue_messages ?? 0,
      queue_message_bytes: edge.queue_message_bytes,
      d1_rows_read: (edge.d1_rows_read ?? 0) + (consumed?.d1_rows_read ?? 0),
      d1_rows_written: consumed?.d1_rows_written ?? 0,
      kv_reads: (edge.kv_reads ?? 0) + (consumed?.kv_reads ?? 0),
      kv_writes: consumed?.kv_writes ?? 0,
      stored_bytes: consumed ? bytes : 0,
      storage_months: 1, // 30-day retention: each event is stored for one month
    };
    const c = costPerMillion(usage);
    return { name, available: true, usage, lines: c.lines, total: c.total, notes };
  };
  const open = hotRoute("GET /o/{token}");
  const webhookCpu = r.webhook?.available ? r.webhook.cpu_ms_per_request : 1;
  const webhookNote = r.webhook?.available
    ? "webhook CPU measured (whole workerd process per notification, an upper bound)"
    : "webhook CPU assumed 1 ms: the webhook was not measured in this run";
  const q50 = r.query?.cases.find((c) => c.name === "window only, limit=50");
  const q50f = r.query?.cases.find((c) => c.name === "event_type=email.opened, limit=50");
  const queryItem = (name, c) =>
    c
      ? item(
          name,
          {
            requests: 1,
            cpu_ms: c.api_cpu_ms_per_request,
            d1_rows_read: c.rows_read_mean + (r.query.overhead.plan_lookup_rows_read ?? 1),
          },
          null,
          "CPU is the whole workerd process per request (HTTP, JWT, the query and local D1's SQLite), an upper bound",
        )
      : { name, available: false };
  return [
    item(
      "tracked opens (GET /o/{token} + consumer)",
      open
        ? {
            requests: 1,
            cpu_ms: open.app.cpu_ms_per_request,
            queue_messages: open.bindings_per_request.queue_messages,
            queue_message_bytes: sample("open"),
            kv_reads: open.bindings_per_request.kv_calls,
          }
        : { requests: 1, cpu_ms: null, queue_messages: 1, queue_message_bytes: sample("open") },
      consumer(kind("open")),
      open
        ? "edge CPU measured on the hot path (whole workerd process, an upper bound)"
        : "hot path not available in this tree: edge CPU not counted, 1 queue message per open assumed",
    ),
    item(
      "SES delivery notifications",
      { requests: 1, cpu_ms: webhookCpu, queue_messages: 1, queue_message_bytes: sample("delivery") },
      consumer(kind("SES delivery")),
      webhookNote,
    ),
    item(
      "SES permanent bounces (suppressing)",
      { requests: 1, cpu_ms: webhookCpu, queue_messages: 1, queue_message_bytes: sample("bounce") },
      consumer(kind("permanent bounce")),
      webhookNote,
    ),
    queryItem("queries of 50 events (no filter)", q50),
    queryItem("queries of 50 events (event_type=email.opened)", q50f),
  ];
}

function targets(r) {
  const out = [];
  if (r.hot) {
    const routes = r.hot.routes ?? [];
    const measured = routes.filter((x) => x.available);
    out.push({
      target: "hot path >= 0.9x the bare Worker (requests/s)",
      status:
        measured.length === 0
          ? "not available"
          : measured.every((x) => x.ratio_rps >= 0.9)
            ? "met"
            : "missed",
      detail:
        measured.length === 0
          ? (r.hot.reason ?? routes.map((x) => `${x.route}: ${x.reason}`).join("; "))
          : measured
              .map(
                (x) =>
                  `${x.route} ${x.ratio_rps}x (${x.app.rps} vs ${x.bare.rps} req/s); D1 ${x.bindings_per_request.d1_calls}, KV ${x.bindings_per_request.kv_calls} calls per request`,
              )
              .join("; "),
    });
  }
  if (r.query) {
    const over = r.query.cases.filter((c) => c.meets_row_budget === false);
    out.push({
      target: "every page <= 10,000 rows read (SPEC §9 bounded work)",
      status: over.length === 0 ? "met" : "missed",
      detail:
        over.length === 0
          ? `${r.query.cases.length} cases, max ${Math.max(...r.query.cases.map((c) => c.rows_read_max))} rows per page`
          : over.map((c) => `${c.name} on ${c.account}: ${c.rows_read_max} rows`).join("; "),
    });
    const singles = r.query.cases.filter((c) => c.kind === "single");
    const misses = singles.filter((c) => !c.meets_target);
    out.push({
      target: "every single-filter page <= 2 x limit + 10 rows read",
      status: misses.length === 0 ? "met" : "missed",
      detail:
        misses.length === 0
          ? `${singles.length} cases, max ${Math.max(...singles.map((c) => c.rows_read_max))} rows per page`
          : misses
              .map((c) => `${c.name} on ${c.account}: ${c.rows_read_max} rows (target ${c.target_rows})`)
              .join("; "),
    });
  }
  if (r.ingest) {
    const v = r.ingest.mix.rows_written_per_event;
    const delivery = r.ingest.kinds.find((k) => k.kind === "SES delivery")?.rows_written_per_unit;
    out.push({
      target: "<= 3 rows written per event on average",
      status: v <= 3 ? "met" : "missed",
      detail:
        `${v} per event over the realistic mix, counting each email's registration row, suppressions and new ` +
        `sending domains; an event's own rows (row + 2 indexes): ${delivery}`,
    });
  }
  const wd = r.webhooks_delivery;
  if (wd?.available) {
    out.push({
      target: "webhooks: p95 event accepted -> webhook received <= 5 s locally",
      status: wd.steady.p95_ms <= 5000 ? "met" : "missed",
      detail: `p50 ${wd.steady.p50_ms} ms, p95 ${wd.steady.p95_ms} ms at ${wd.steady.rate_per_s}/s; burst ${wd.burst.deliveries_per_s} deliveries/s`,
    });
    out.push({
      target: "webhooks: <= 1 D1 row written per successful delivery",
      status: wd.consumer.d1_rows_written_per_delivery <= 1 ? "met" : "missed",
      detail: `${wd.consumer.d1_rows_written_per_delivery} rows written, ${wd.consumer.d1_rows_read_per_delivery} read, ${wd.consumer.d1_statements_per_delivery} statements per delivery`,
    });
  }
  if (r.ingest?.mix.rollup_rows_written_per_event !== undefined) {
    const v = r.ingest.mix.rollup_rows_written_per_event;
    out.push({
      target: "metrics rollups add <= 0.5 rows written per event (hard limit 1.0)",
      status: v <= 0.5 ? "met" : v <= 1 ? "missed (under the hard limit)" : "missed",
      detail:
        `${v} per event over the realistic mix (a month sampled: batches span hours); ` +
        `${r.ingest.day?.rollup_rows_written_per_event} over one day of the account at its real density`,
    });
  }
  const mq = r.metrics?.cases?.[0];
  if (mq) {
    out.push({
      target: "GET /v1/metrics 30 days, daily, group_by=campaign p99 <= 50 ms",
      status: mq.latency_ms.p99 <= 50 ? "met" : "missed",
      detail: `p50 ${mq.latency_ms.p50} ms, p99 ${mq.latency_ms.p99} ms, ${mq.rows_read} rows read, on ${r.metrics.account} (${r.metrics.account_events} events)`,
    });
    // SPEC §18: a metrics request reads at most 10,000 rollup rows (a refusal stops at the 10,001st).
    const over = r.metrics.cases.filter((c) => c.rows_read > 10_001);
    const refused = r.metrics.cases.filter((c) => c.refused);
    out.push({
      target: "every GET /v1/metrics case within the §18 budget (10,000 rollup rows)",
      status: over.length === 0 ? "met" : "missed",
      detail:
        `max ${Math.max(...r.metrics.cases.map((c) => c.rows_read))} rows read over ${r.metrics.cases.length} cases` +
        (refused.length ? `; refused (400): ${refused.map((c) => c.name).join(", ")}` : "; none refused") +
        (over.length ? `; over: ${over.map((c) => `${c.name} ${c.rows_read}`).join(", ")}` : ""),
    });
  }
  const gz = r.size?.bundle?.gzipBytes;
  if (gz) {
    out.push({
      target: "bundle <= 250 KB gzipped",
      status: gz <= 250_000 ? "met" : "missed",
      detail: `${(gz / 1000).toFixed(1)} KB (${(gz / 1024).toFixed(1)} KiB) gzipped, ${(r.size.bundle.bytes / 1000).toFixed(0)} KB raw`,
    });
  }
  return out;
}

function render(r) {
  const parts = [
    "",
    `mailtrail benchmark, ${r.mode} run, ${r.started_at}`,
    `${r.machine.cpu}, ${r.machine.cores} cores, ${r.machine.memory_gb} GB; Node ${r.machine.node}, wrangler ${r.machine.wrangler}, workerd ${r.machine.workerd}; commit ${r.machine.commit}${r.machine.uncommitted_changes ? ` + ${r.machine.uncommitted_changes} uncommitted files` : ""}`,
  ];
  if (r.hot) {
    parts.push(
      "",
      `HOT PATH (${r.hot.settings.connections} connections, ${r.hot.settings.rounds} x ${r.hot.settings.seconds} s rounds per target, alternating)`,
    );
    if (!r.hot.available)
      parts.push(
        `  not available: ${r.hot.reason ?? r.hot.routes.map((x) => `${x.route}: ${x.reason}`).join("; ")}`,
      );
    const rows = [];
    const labels = {
      constant_in_bundle: "  constant, same isolate",
      queue_send_stubbed: "  route, queue send stubbed",
    };
    for (const x of r.hot.routes ?? []) {
      if (!x.available) {
        rows.push([x.route, "not available", null, null, null, null, null, null, null, null, null, null]);
        continue;
      }
      const b = x.bindings_per_request;
      const f = x.app;
      rows.push([
        x.route,
        "mailtrail",
        f.rps,
        f.p50_ms,
        f.p99_ms,
        f.unloaded_p50_ms,
        f.unloaded_p99_ms,
        f.cpu_ms_per_request,
        b.d1_calls,
        b.kv_calls,
        b.queue_messages,
        x.ratio_rps,
      ]);
      const g = x.bare;
      rows.push([
        "",
        "bare Worker",
        g.rps,
        g.p50_ms,
        g.p99_ms,
        g.unloaded_p50_ms,
        g.unloaded_p99_ms,
        g.cpu_ms_per_request,
        null,
        null,
        null,
        1,
      ]);
      for (const [key, d] of Object.entries(x.diagnostics ?? {})) {
        rows.push([
          "",
          labels[key] ?? key,
          d.rps,
          d.p50_ms,
          d.p99_ms,
          null,
          null,
          d.cpu_ms_per_request,
          null,
          null,
          null,
          d.ratio_rps,
        ]);
      }
    }
    if (rows.length) {
      parts.push(
        table(
          [
            "route",
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "1-conn p50",
            "1-conn p99",
            "CPU ms/req",
            "D1/req",
            "KV/req",
            "queue msg/req",
            "vs bare",
          ],
          rows,
        ),
      );
      parts.push(
        "CPU ms/req: the target's whole workerd process (user + system) over the requests it served.",
      );
    }
  }
  if (r.webhook) {
    const w = r.webhook;
    parts.push(
      "",
      w.available
        ? `SES WEBHOOK ${w.route}: ${w.rps} req/s, p50 ${w.p50_ms} ms, p99 ${w.p99_ms} ms, ${w.cpu_ms_per_request} CPU ms/req; ` +
            `D1 ${w.bindings_per_request.d1_calls}, KV ${w.bindings_per_request.kv_calls}, queue messages ${w.bindings_per_request.queue_messages} per notification; certificate fetched ${w.certificate_fetches} time(s)`
        : `SES WEBHOOK not available: ${w.reason}`,
    );
  }
  if (r.webhooks_delivery) {
    const w = r.webhooks_delivery;
    parts.push(
      "",
      w.available
        ? `WEBHOOKS (event accepted -> received, 1 endpoint): steady ${w.steady.rate_per_s}/s p50 ${w.steady.p50_ms} ms, ` +
            `p95 ${w.steady.p95_ms} ms, max ${w.steady.max_ms} ms (${w.steady.delivered}/${w.steady.events}); ` +
            `burst of ${w.burst.events} queued at once: ${w.burst.deliveries_per_s} deliveries/s, last after ${w.burst.p95_ms} ms (p95); ` +
            `D1 per delivery: ${w.consumer.d1_rows_written_per_delivery} rows written, ${w.consumer.d1_rows_read_per_delivery} read; ` +
            `signatures verified ${w.signatures.verified}, rejected ${w.signatures.rejected}; ` +
            `load average ${w.load_average.before} -> ${w.load_average.after}`
        : `WEBHOOKS not available: ${w.reason}`,
    );
  }
  if (r.ingest) {
    parts.push("", `INGEST (queue consumer -> local D1, batches of ${r.ingest.batch_size}, one at a time)`);
    parts.push(
      table(
        [
          "kind",
          "msgs",
          "per s",
          "rows written/msg",
          "rows read/msg",
          "KV writes/msg",
          "batch p50 ms",
          "batch p99 ms",
        ],
        r.ingest.kinds.map((k) => [
          k.kind,
          k.messages,
          k.per_second,
          k.rows_written_per_unit,
          k.rows_read_per_unit,
          k.kv_writes_per_unit,
          k.batch_ms.p50,
          k.batch_ms.p99,
        ]),
      ),
    );
    parts.push(
      `realistic mix: ${r.ingest.mix.messages} emails, ${r.ingest.mix.events} events (${r.ingest.mix.events_per_message}/email), ` +
        `${r.ingest.mix.rows_written_per_event} rows written per event; enrichment check ${r.ingest.enrichment_check.enriched}/${r.ingest.enrichment_check.opens_checked} opens enriched`,
    );
  }
  if (r.ingest?.day) {
    parts.push(
      `metrics rollups: ${r.ingest.mix.rollup_rows_written_per_event} rows written per event over the mix, ` +
        `${r.ingest.day.rollup_rows_written_per_event} over one day at real density (${r.ingest.day.events} events)`,
    );
  }
  if (r.shards?.available) {
    const x = r.shards;
    parts.push(
      "",
      `EVENT SHARDS (SPEC §17): ingest ${x.throughput.one_shard.per_second}/s on 1 shard, ${x.throughput.four_shards.per_second}/s on 4 (${x.throughput.ratio}x, ${x.settings.inFlight} batches in flight)`,
      `  balance on ${x.balance.accounts} Zipf accounts (${x.balance.events} events, ${x.balance.placed_accounts} placed, ${x.balance.striped.length} striped): max/mean bytes ${x.balance.max_over_mean}, min/mean ${x.balance.min_over_mean}; rendezvous alone ${x.balance.rendezvous_alone_max_over_mean}`,
      `  capacity: ${x.capacity.bytes_per_event} bytes per event (${x.capacity.bytes_per_event_without_deliveries} + ${x.capacity.bytes_per_delivery} for one delivery); events/day per shard at 3/7/30 days: ${Object.values(
        x.capacity.events_per_day_per_shard,
      )
        .map((n) => n.toLocaleString("en-US"))
        .join(" / ")}`,
    );
    parts.push(
      table(
        [
          "striped page",
          "stripes",
          "returned",
          "rows read per shard",
          "shards' sum",
          "budget",
          "control DB",
          "ok",
        ],
        x.page_cost.map((c) => [
          c.query,
          c.stripes,
          c.returned,
          c.rows_read_per_shard
            ? Object.entries(c.rows_read_per_shard)
                .map(([shard, n]) => `${shard}: ${n}`)
                .join(", ")
            : "",
          c.shard_rows_read ?? c.rows_read,
          c.budget,
          c.control_rows_read ?? "",
          c.within ? "yes" : "NO",
        ]),
      ),
    );
  }
  if (r.metrics) {
    const m = r.metrics;
    parts.push(
      "",
      `METRICS on ${m.account} (${m.account_events} events; ${m.largest_account_rollup_rows} rollup rows; dataset ${m.rollup_rows_per_event_stored} rollup rows per stored event, rolled up in ${m.rebuild_seconds} s)`,
    );
    parts.push(
      table(
        ["case", "rows read", "buckets", "p50 ms", "p99 ms"],
        m.cases.map((c) => [c.name, c.rows_read, c.buckets_returned, c.latency_ms.p50, c.latency_ms.p99]),
      ),
    );
  }
  if (r.dataset) {
    const d = r.dataset;
    parts.push(
      "",
      `DATASET ${d.events_inserted.toLocaleString("en-US")} events, ${d.accounts} accounts (largest ${d.largest_accounts[0].events.toLocaleString("en-US")}, smallest ${d.smallest_account_events.toLocaleString("en-US")}), loaded in ${d.seconds.toFixed(0)} s (${d.events_per_second_bulk.toLocaleString("en-US")}/s bulk), ${d.rows_written_per_event} rows written per event`,
    );
  }
  if (r.query) {
    parts.push(
      "",
      `QUERIES (GET /v1/events, ${r.query.window_days}-day window, limit 20 unless noted; latency over ${r.query.repeats} walks)`,
    );
    parts.push(
      table(
        [
          "case",
          "account",
          "pages",
          "rows/page max",
          "target",
          "ok",
          "API p50",
          "API p99",
          "SQL rows/page max",
          "SQL p50",
          "rows ratio",
          "p50 ratio",
        ],
        r.query.cases.map((c) => [
          c.limit === 20 ? c.name : `${c.name}`,
          `${c.account.slice(0, 8)} (${(c.account_events / 1000).toFixed(0)}k)`,
          c.pages,
          c.rows_read_max,
          c.target_rows,
          c.kind === "single" ? c.meets_target : c.meets_target ? "yes" : "(n/a)",
          c.api_ms.p50,
          c.api_ms.p99,
          Math.max(...c.direct_rows_read_per_page),
          c.direct_ms.p50,
          c.ratio_rows_read,
          c.ratio_p50,
        ]),
      ),
    );
    parts.push(
      `fixed per request: plan lookup ${r.query.overhead.plan_lookup_rows_read} row, domain check ${r.query.overhead.domain_check_rows_read} row (with domain=)`,
    );
  }
  if (r.size) {
    const b = r.size.bundle;
    parts.push(
      "",
      `SIZE bundle ${(b.bytes / 1000).toFixed(0)} KB raw, ${(b.gzipBytes / 1000).toFixed(1)} KB gzipped` +
        ` (with --minify: ${(b.with_minify.gzipBytes / 1000).toFixed(1)} KB); largest sources: ` +
        b.largest_sources.map((x) => `${x.source} ${(x.bytes / 1000).toFixed(0)} KB`).join(", ") +
        (r.size.bytes_per_event
          ? `; D1 ${r.size.bytes_per_event} bytes per event incl. indexes -> ${r.size.events_per_day_in_10gb_at_30_days.toLocaleString("en-US")} events/day per 10 GB database at 30-day retention`
          : ""),
    );
  }
  if (r.cost) {
    parts.push("", "COST per million (list prices beyond included usage)");
    parts.push(
      table(
        ["what", "requests", "CPU", "queues", "D1 read", "D1 write", "D1 storage", "KV", "total"],
        r.cost.map((c) =>
          c.available
            ? [
                c.name,
                dollars(c.lines[0].dollars),
                dollars(c.lines[1].dollars),
                dollars(c.lines[2].dollars),
                dollars(c.lines[3].dollars),
                dollars(c.lines[4].dollars),
                dollars(c.lines[5].dollars),
                dollars(c.lines[6].dollars + c.lines[7].dollars),
                dollars(c.total),
              ]
            : [c.name, "not measured", "", "", "", "", "", "", ""],
        ),
      ),
    );
  }
  parts.push(...exportLines);
  parts.push("", "TARGETS");
  for (const t of r.targets) parts.push(`  [${t.status}] ${t.target}: ${t.detail}`);
  parts.push("", `${r.seconds} s in all`);
  return parts.join("\n");
}
