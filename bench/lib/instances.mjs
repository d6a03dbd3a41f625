// Local workerd instances for the benchmark: bundles built by wrangler exactly as `wrangler deploy`
// builds them, served by Miniflare (the runtime under `wrangler dev`) on loopback ports.
//
// Why Miniflare directly and not `wrangler dev`: `wrangler dev` puts a ProxyWorker, in a second
// workerd process, in front of the Worker (it buffers requests across reloads). Every request would
// cross two runtimes, and that fixed cost would dilute the Worker-versus-bare-Worker comparison.
// Served directly, each Worker gets its own workerd process, the request path is the same for both,
// and the CPU each process spends is read from /proc. Building once also means the instance does not
// reload when someone edits src/ mid-run.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { Log, LogLevel, Miniflare } from "miniflare";
import { unstable_readConfig } from "wrangler";

export const ROOT = path.join(import.meta.dirname, "..", "..");
const WRANGLER = path.join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js");

/** request.cf for every request: a residential network, so the classifier sees a person. */
const CF = {
  asn: 7922,
  asOrganization: "Comcast Cable Communications, LLC",
  country: "US",
  region: "California",
  regionCode: "CA",
  city: "San Francisco",
  colo: "SFO",
  timezone: "America/Los_Angeles",
  httpProtocol: "HTTP/1.1",
  tlsVersion: "TLSv1.3",
};

/**
 * Bundles an entry with `wrangler deploy --dry-run --outdir` and the repository's wrangler.toml
 * (same build, conditions and compatibility settings as a deploy). Returns the output files.
 */
export function buildBundle(entry, outdir, extraArgs = []) {
  return new Promise((resolve, reject) => {
    const args = [
      WRANGLER,
      "deploy",
      ...(entry ? [entry] : []),
      "--dry-run",
      "--outdir",
      outdir,
      ...extraArgs,
    ];
    const child = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => {
      output += d;
    });
    child.stderr.on("data", (d) => {
      output += d;
    });
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code !== 0) {
        reject(
          new Error(
            `wrangler deploy --dry-run ${entry ?? ""} failed (exit ${code}):\n${output.slice(-4000)}`,
          ),
        );
        return;
      }
      const modules = readdirSync(outdir)
        .filter((f) => /\.(m?js|wasm)$/.test(f))
        .map((f) => path.join(outdir, f));
      const reported = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(output);
      resolve({
        outdir,
        main: modules.find((m) => m.endsWith(".js")),
        modules,
        wranglerReport: reported ? { kib: Number(reported[1]), gzipKib: Number(reported[2]) } : null,
      });
    });
  });
}

/** Raw and gzipped size of a bundle's modules, gzipped as wrangler reports it (zlib defaults). */
export function bundleSize(modules) {
  const content = Buffer.concat(modules.map((m) => readFileSync(m)));
  return {
    bytes: content.length,
    gzipBytes: gzipSync(content).length,
    files: modules.map((m) => path.basename(m)),
  };
}

/** Raw bytes of the bundle by source package (esbuild metafile), largest first. */
export function bundleComposition(metafilePath, top = 8) {
  const meta = JSON.parse(readFileSync(metafilePath, "utf8"));
  const [, output] = Object.entries(meta.outputs)
    .filter(([file]) => file.endsWith(".js"))
    .sort((a, b) => b[1].bytes - a[1].bytes)[0];
  const by = new Map();
  for (const [file, input] of Object.entries(output.inputs)) {
    const inModules = file.lastIndexOf("node_modules/");
    let key;
    if (inModules >= 0) {
      const rest = file.slice(inModules + "node_modules/".length).split("/");
      key = rest[0].startsWith("@") ? `${rest[0]}/${rest[1]}` : rest[0];
      if (key === "zod" && file.includes("/locales/")) key = "zod (locales)";
    } else {
      key = file.split("/").slice(0, 2).join("/");
      if (key.startsWith("src/")) key = "src/ (mailtrail)";
    }
    by.set(key, (by.get(key) ?? 0) + input.bytesInOutput);
  }
  return [...by.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([source, bytes]) => ({ source, bytes }));
}

/** The Worker's settings from wrangler.toml, so the benchmark follows the real configuration. */
export function workerConfig() {
  const config = unstable_readConfig({ config: path.join(ROOT, "wrangler.toml") }, { hideWarnings: true });
  return {
    compatibilityDate: config.compatibility_date,
    compatibilityFlags: config.compatibility_flags ?? [],
    vars: config.vars ?? {},
    d1: Object.fromEntries(
      (config.d1_databases ?? []).map((d) => [d.binding, d.database_id ?? d.database_name]),
    ),
    kv: Object.fromEntries((config.kv_namespaces ?? []).map((k) => [k.binding, k.id ?? k.binding])),
    r2: Object.fromEntries((config.r2_buckets ?? []).map((b) => [b.binding, b.bucket_name ?? b.binding])),
    queueProducers: Object.fromEntries(
      (config.queues?.producers ?? []).map((p) => [p.binding, { queueName: p.queue }]),
    ),
  };
}

/**
 * Fresh local secrets in the shape of `.dev.vars`, for this run's instance only. PUBLIC_BASE_URL is
 * left unset: tracking URLs then use the request's origin, the instance's loopback port.
 */
export function benchSecrets() {
  const b64url = (n) => randomBytes(n).toString("base64url");
  return {
    JWT_SECRET: b64url(36),
    TRACKING_KEYS: b64url(32),
    SECRETS_KEY: b64url(32),
    SNS_TOPIC_ARNS: "arn:aws:sns:us-east-1:000000000000:mailtrail-bench=acct_bench_ses",
    SNS_CERT_HOST_PATTERN: "127\\.0\\.0\\.1|localhost",
    BENCH_KEY: b64url(18),
    ERASURE_KEY: b64url(32),
  };
}

/** Process ids of workerd processes that are children of this Node process. */
function workerdChildren() {
  const pids = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      const comm = stat.slice(stat.indexOf("(") + 1, close);
      const ppid = Number(stat.slice(close + 2).split(" ")[1]);
      if (comm === "workerd" && ppid === process.pid) pids.push(Number(entry));
    } catch {}
  }
  return pids;
}

const CLOCK_TICKS = 100; // USER_HZ on Linux
/** CPU seconds (user + system, all threads) a process has used so far, or null off Linux. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

/**
 * Starts one Worker in its own workerd process on a loopback port. `d1`, `kv` and `queueProducers`
 * come from workerConfig(); the queue has no consumer here (Miniflare accepts and drops the sends),
 * so the consumer's D1 work never competes with the hot path for CPU: it is measured on its own.
 */
export async function startWorker({
  name,
  bundle,
  config,
  bindings,
  persistDir,
  logFile,
  inspectorPort,
  queueConsumers,
}) {
  if (persistDir) mkdirSync(persistDir, { recursive: true });
  const before = new Set(workerdChildren());
  const log = logFile ? createWriteStream(logFile, { flags: "a" }) : null;
  const mf = new Miniflare({
    host: "127.0.0.1",
    port: 0,
    name,
    modules: true,
    modulesRoot: path.dirname(bundle.main),
    scriptPath: bundle.main,
    compatibilityDate: config?.compatibilityDate ?? "2026-04-20",
    compatibilityFlags: config?.compatibilityFlags ?? [],
    bindings,
    d1Databases: config?.d1 ?? {},
    kvNamespaces: config?.kv ?? {},
    r2Buckets: config?.r2 ?? {},
    queueProducers: config?.queueProducers ?? {},
    // Only phases that measure the queues end to end ask for consumers (webhooks-delivery).
    ...(queueConsumers ? { queueConsumers } : {}),
    ...(persistDir
      ? {
          d1Persist: path.join(persistDir, "d1"),
          kvPersist: path.join(persistDir, "kv"),
          r2Persist: path.join(persistDir, "r2"),
          cachePersist: false,
        }
      : {}),
    cf: CF,
    ...(inspectorPort ? { inspectorPort } : {}),
    log: new Log(LogLevel.WARN),
    handleRuntimeStdio(stdout, stderr) {
      // The Worker's structured logs go to a file, not the benchmark's table.
      if (log) {
        stdout.pipe(log, { end: false });
        stderr.pipe(log, { end: false });
      } else {
        stdout.resume();
        stderr.resume();
      }
    },
  });
  const url = await mf.ready;
  const pid = workerdChildren().find((p) => !before.has(p)) ?? null;
  return {
    name,
    url: url.href.replace(/\/$/, ""),
    pid,
    cpuSeconds: () => (pid === null ? null : cpuSeconds(pid)),
    async stop() {
      await mf.dispose();
      log?.end();
    },
  };
}

/** Bytes used under a directory (the persisted D1 and KV state). */
export function directoryBytes(dir) {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    total += entry.isDirectory() ? directoryBytes(full) : statSync(full).size;
  }
  return total;
}
