/**
 * Starting `wrangler dev` for an end-to-end test: a throwaway persist dir with migrations applied,
 * its own variables (`--env-file`, so the repository's .dev.vars is untouched), free ports, and a
 * stop that ends the process group wrangler leads (workerd included).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

const ROOT = path.resolve(import.meta.dirname, "../..");
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const CHILD_ENV = { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" };

export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Runs a wrangler command to completion; throws with its output on failure. */
export function runWrangler(args: string[], env: NodeJS.ProcessEnv = CHILD_ENV): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER, ...args], { cwd: ROOT, env });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`wrangler ${args.join(" ")} exited ${code}:\n${output}`)),
    );
  });
}

export async function until<T>(
  what: string,
  timeoutMs: number,
  attempt: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await attempt();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${lastError}` : ""}`);
}

export interface DevServer {
  origin: string;
  output: () => string;
  stop: () => Promise<void>;
}

export interface DevOptions {
  /** SQL run on the local D1 after the migrations, before the Worker starts (accounts, events…). */
  seedSql?: string;
  /** More `wrangler dev` arguments. */
  args?: string[];
  /** Milliseconds to wait for /healthz (default 60 s). */
  startTimeoutMs?: number;
}

/**
 * The documented local cron trigger needs miniflare's assets proxy fixed (scripts/local-cron-fix.mjs);
 * npm install applies it, and this repeats it for an install that ran no scripts. Once per process.
 */
let localCronFixed = false;
function fixLocalCron(): void {
  if (localCronFixed) return;
  const run = spawnSync(process.execPath, [path.join(ROOT, "scripts/local-cron-fix.mjs")], { cwd: ROOT });
  if (run.status !== 0) throw new Error(`scripts/local-cron-fix.mjs failed:\n${run.stderr}`);
  localCronFixed = true;
}

/**
 * Starts wrangler dev with these variables (origin-dependent ones may use `{origin}`): the one way
 * an end-to-end test runs the Worker.
 */
export async function startWranglerDev(
  vars: Record<string, string>,
  options: DevOptions = {},
): Promise<DevServer> {
  fixLocalCron();
  const dir = mkdtempSync(path.join(tmpdir(), "mailtrail-e2e-"));
  const [port, inspectorPort] = [await freePort(), await freePort()];
  const origin = `http://127.0.0.1:${port}`;
  const persist = path.join(dir, "state");
  const envFile = path.join(dir, "e2e.env");
  const lines = Object.entries(vars).map(([k, v]) => `${k}=${v.replaceAll("{origin}", origin)}`);
  writeFileSync(envFile, `${lines.join("\n")}\n`, { mode: 0o600 });
  await runWrangler(["d1", "migrations", "apply", "DB", "--local", "--persist-to", persist]);
  if (options.seedSql) {
    const seedFile = path.join(dir, "seed.sql");
    writeFileSync(seedFile, options.seedSql);
    await runWrangler(["d1", "execute", "DB", "--local", "--persist-to", persist, "--file", seedFile]);
  }
  const dev: ChildProcess = spawn(
    process.execPath,
    [
      WRANGLER,
      "dev",
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      persist,
      "--env-file",
      envFile,
      "--show-interactive-dev-session=false",
      ...(options.args ?? []),
    ],
    { cwd: ROOT, env: CHILD_ENV, detached: true },
  );
  let output = "";
  dev.stdout?.on("data", (d) => (output += d));
  dev.stderr?.on("data", (d) => (output += d));
  const stop = async () => {
    if (dev.pid && dev.exitCode === null) {
      try {
        process.kill(-dev.pid, "SIGTERM");
      } catch {}
      await new Promise((r) => setTimeout(r, 500));
      try {
        process.kill(-dev.pid, "SIGKILL");
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until("wrangler dev to answer /healthz", options.startTimeoutMs ?? 60_000, async () =>
      (await fetch(`${origin}/healthz`)).ok ? true : undefined,
    );
  } catch (err) {
    await stop();
    throw new Error(`${err}\nwrangler dev output:\n${output.slice(-4000)}`);
  }
  return { origin, output: () => output, stop };
}
