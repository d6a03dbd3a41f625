/**
 * Finding 8 through `wrangler dev` itself: a body refused with 413 while the client is still sending
 * it (chunked, no Content-Length) used to leave the dev server unable to answer the next request
 * (it hung, or answered `503 "Your worker restarted mid-request"`). No browser needed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "./wrangler-dev";

const ROOT = path.resolve(import.meta.dirname, "../..");
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");

/** A body of unknown length: fetch sends it chunked. */
function chunked(bytes: number): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(16 * 1024).fill(0x78);
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= bytes) return controller.close();
      sent += chunk.byteLength;
      controller.enqueue(chunk);
    },
  });
}

describe("wrangler dev after a refused streamed body", () => {
  let dir = "";
  let origin = "";
  let dev: ChildProcess | undefined;
  let devOutput = "";

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "mailtrail-e2e-body-"));
    const [port, inspectorPort] = [await freePort(), await freePort()];
    origin = `http://127.0.0.1:${port}`;
    const envFile = path.join(dir, "e2e.env");
    writeFileSync(envFile, `JWT_SECRET=${randomBytes(36).toString("base64url")}\n`, { mode: 0o600 });
    dev = spawn(
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
        path.join(dir, "state"),
        "--env-file",
        envFile,
        "--show-interactive-dev-session=false",
      ],
      {
        cwd: ROOT,
        env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
        detached: true,
      },
    );
    dev.stdout?.on("data", (d) => (devOutput += d));
    dev.stderr?.on("data", (d) => (devOutput += d));
    const deadline = Date.now() + 45_000;
    for (;;) {
      try {
        if ((await fetch(`${origin}/healthz`)).ok) break;
      } catch {}
      if (Date.now() > deadline) throw new Error(`wrangler dev did not start:\n${devOutput.slice(-4000)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }, 90_000);

  afterAll(async () => {
    if (dev?.pid && dev.exitCode === null) {
      try {
        process.kill(-dev.pid, "SIGTERM");
      } catch {}
      await new Promise((r) => setTimeout(r, 500));
      try {
        process.kill(-dev.pid, "SIGKILL");
      } catch {}
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("answers 413 and then keeps answering", async () => {
    for (let round = 0; round < 3; round++) {
      const refused = await fetch(`${origin}/webhooks/ses`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: chunked(300 * 1024),
        duplex: "half",
        signal: AbortSignal.timeout(15_000),
      } as RequestInit);
      expect(refused.status).toBe(413);
      expect(((await refused.json()) as { error: { type: string } }).error.type).toBe("payload_too_large");
      const next = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(10_000) });
      expect(next.status, `round ${round}`).toBe(200);
      expect(await next.json()).toEqual({ ok: true });
    }
  });
});
