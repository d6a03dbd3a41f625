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
