// Makes the documented local cron trigger work with the dashboard's [assets] (SPEC §13):
//   curl "http://127.0.0.1:8787/cdn-cgi/handler/scheduled"
//
// Why: with [assets], miniflare hands /cdn-cgi/handler/scheduled to its assets RPC proxy, and the
// proxy in the miniflare that wrangler 4.86 ships (the newest wrangler that runs on Node 20) has no
// scheduled handler, so the trigger answers `500 exception` and runs nothing
// (cloudflare/workers-sdk#9882; fixed upstream in a miniflare that needs Node 22). This adds the
// missing handler, which forwards to the Worker's own scheduled() exactly as the fixed proxy does.
//
// Local development only: the file patched is miniflare's simulator, never part of the deployed
// bundle. Idempotent; a miniflare whose proxy already handles scheduled events (or whose file has
// another shape) is left alone. Run by `npm install` (postinstall), `npm run dev` and the e2e helper.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const MARK = "mailtrail: local cron with [assets]";
const ANCHOR = "  tail(events) {";
const HANDLER = `  // ${MARK} (cloudflare/workers-sdk#9882)
  async scheduled(controller) {
    const result = await this.env.USER_WORKER.scheduled({ scheduledTime: new Date(controller.scheduledTime), cron: controller.cron });
    if (result && result.outcome !== "ok") throw new Error("scheduled handler outcome: " + result.outcome);
  }
`;

/** Every miniflare copy wrangler may load: the project's own and one nested under wrangler. */
function proxyFiles(root) {
  const require = createRequire(join(root, "package.json"));
  const files = new Set();
  for (const from of [root, dirname(require.resolve("wrangler/package.json"))]) {
    try {
      const pkg = createRequire(join(from, "package.json")).resolve("miniflare/package.json");
      const file = join(dirname(pkg), "dist/src/workers/assets/rpc-proxy.worker.js");
      if (existsSync(file)) files.add(file);
    } catch {}
  }
  return [...files];
}

/** Returns what it did per file: "patched", "already" or "left alone". */
export function fixLocalCron(root = join(dirname(fileURLToPath(import.meta.url)), "..")) {
  return proxyFiles(root).map((file) => {
    const source = readFileSync(file, "utf8");
    if (source.includes(MARK)) return { file, result: "already" };
    if (/\n\s+(async\s+)?scheduled\s*\(/.test(source) || !source.includes(ANCHOR)) {
      return { file, result: "left alone" };
    }
    // A new file renamed into place: node_modules may be hard-linked from another checkout.
    writeFileSync(`${file}.tmp`, source.replace(ANCHOR, `${HANDLER}${ANCHOR}`));
    renameSync(`${file}.tmp`, file);
    return { file, result: "patched" };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const { file, result } of fixLocalCron()) console.log(`local cron trigger: ${result} ${file}`);
}
