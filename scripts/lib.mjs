// Helpers shared by the developer scripts (Node, not the Worker).
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { SignJWT } from "jose";

export const ROOT = path.join(import.meta.dirname, "..");
export const DEV_VARS = path.join(ROOT, ".dev.vars");
export const DEMO_ACCOUNT = "acct_demo";
export const DEMO_TOPIC_ARN = "arn:aws:sns:us-east-1:000000000000:mailtrail-demo";

/** Writes .dev.vars with fresh local secrets, only when it does not exist. Returns true if written. */
export function ensureDevVars(port = 8787) {
  const b64url = (n) => randomBytes(n).toString("base64url");
  if (existsSync(DEV_VARS)) {
    // A .dev.vars from before SECRETS_KEY or ERASURE_KEY existed gets them appended (nothing else changes).
    const text = readFileSync(DEV_VARS, "utf8");
    const missing = ["SECRETS_KEY", "ERASURE_KEY"].filter((name) => !new RegExp(`^${name}=`, "m").test(text));
    if (missing.length > 0) {
      const added = missing.map((name) => `${name}=${b64url(32)}\n`).join("");
      writeFileSync(DEV_VARS, `${text.replace(/\n?$/, "\n")}${added}`, { mode: 0o600 });
    }
    return false;
  }
  const lines = [
    "# Local secrets for `wrangler dev`, written once by `npm run dev`. Never commit this file.",
    `JWT_SECRET=${b64url(36)}`,
    `TRACKING_KEYS=${b64url(32)}`,
    // Webhook signing secrets are stored encrypted under SECRETS_KEY; erased addresses are kept
    // only as HMACs under ERASURE_KEY (SPEC §2, §20). Both are base64url 32-byte keys.
    `SECRETS_KEY=${b64url(32)}`,
    `ERASURE_KEY=${b64url(32)}`,
    `PUBLIC_BASE_URL=http://127.0.0.1:${port}`,
    `SNS_TOPIC_ARNS=${DEMO_TOPIC_ARN}=${DEMO_ACCOUNT}`,
    "SNS_CERT_HOST_PATTERN=127\\.0\\.0\\.1|localhost",
    // Local receivers (http, loopback) for webhooks; never set in production (SPEC §2).
    "WEBHOOK_ALLOW_INSECURE_URLS=true",
    "",
  ];
  writeFileSync(DEV_VARS, lines.join("\n"), { mode: 0o600 });
  return true;
}

export function readDevVars() {
  if (!existsSync(DEV_VARS)) throw new Error(".dev.vars is missing: run `npm run dev` once first");
  const vars = {};
  for (const line of readFileSync(DEV_VARS, "utf8").split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) vars[m[1]] = m[2].replace(/^"(.*)"$/, "$1");
  }
  return vars;
}

export async function mintToken({
  sub = DEMO_ACCOUNT,
  scope,
  ttl = "24h",
  secret = readDevVars().JWT_SECRET,
}) {
  if (!secret) throw new Error("JWT_SECRET is not set in .dev.vars");
  return new SignJWT({ scope })
    .setProtectedHeader({ alg: "HS256" })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(ttl)
    .sign(new TextEncoder().encode(secret));
}

/** The D1 bindings of wrangler.toml: DB and every event shard EVENTS_i (SPEC §17). */
export function d1Bindings() {
  const toml = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  return toml
    .split(/^\[\[/m)
    .filter((block) => block.startsWith("d1_databases]]"))
    .map((block) => /^binding\s*=\s*"([^"]+)"/m.exec(block)?.[1])
    .filter(Boolean);
}

/** The event shards `EVENT_SHARDS` lists in wrangler.toml's [vars] (default "0"). */
export function eventShards() {
  const toml = readFileSync(path.join(ROOT, "wrangler.toml"), "utf8");
  const value = /^EVENT_SHARDS\s*=\s*"([^"]*)"/m.exec(toml)?.[1] ?? "0";
  return value.split(",").map((s) => Number(s.trim()));
}

/** src/shards/hash.ts's hash53 (cyrb53), for the scripts; test/node/shard-hash.test.ts keeps them equal. */
export function hash53(text) {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ ch, 2654435761);
    h2 = Math.imul(h2 ^ ch, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507);
  h1 ^= Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507);
  h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** The shard an account without a placement lives on (rendezvous over `shards`), as the Worker routes it. */
export function hashedShard(accountId, shards = eventShards()) {
  let best = shards[0] ?? 0;
  let bestScore = -1;
  for (const shard of shards) {
    const score = hash53(`${accountId}\u0000shard-${shard}`);
    if (score > bestScore || (score === bestScore && shard < best)) {
      best = shard;
      bestScore = score;
    }
  }
  return best;
}

/** The binding that holds an account's rows in a local run: `EVENTS_i`, or DB when no shard is bound. */
export function shardBindingOf(accountId) {
  const bindings = d1Bindings();
  const binding = `EVENTS_${hashedShard(accountId)}`;
  return bindings.includes(binding) ? binding : "DB";
}
