import * as z from "zod";
import type { Env } from "./env";
import { fromBase64url } from "./lib/base64";
import { ApiError } from "./lib/errors";

/**
 * Configuration of SPEC §2, parsed with zod once per isolate (per `env` object). Each variable is
 * parsed on first use, so a malformed value fails only the requests that need it, with
 * `500 configuration_error` naming the variable and never echoing its value.
 */

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === "" ? null : v.trim()));

/** A 32-byte key in base64url (SECRETS_KEY, ERASURE_KEY), decoded; the message never echoes it. */
const key32 = (required: string) =>
  z.string({ error: required }).transform((v, ctx) => {
    const bytes = fromBase64url(v.trim().replace(/=+$/, ""));
    if (bytes === null || bytes.length !== 32) {
      ctx.addIssue({
        code: "custom",
        message:
          "is not 32 bytes of base64url (make one with: openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')",
      });
      return z.NEVER;
    }
    return bytes;
  });

const parsers = {
  // The key is the UTF-8 bytes of the string as given (SPEC §2): not trimmed.
  JWT_SECRET: z
    .string()
    .optional()
    .transform((v) => (v === undefined || v === "" ? null : v))
    .refine((v) => v === null || v.length >= 32, "must be at least 32 characters"),
  JWT_JWKS_URL: optionalString.refine((v) => v === null || /^https?:\/\//.test(v), "must be an http(s) URL"),
  JWT_ISSUER: optionalString,
  JWT_AUDIENCE: optionalString,
  TRACKING_KEYS: z.string({ error: "is required" }).transform((v, ctx) => {
    try {
      return parseTrackingKeys(v);
    } catch (err) {
      const reason = err instanceof Error ? err.message : "is malformed";
      ctx.addIssue({ code: "custom", message: reason.replace(/^TRACKING_KEYS:?\s*/, "") });
      return z.NEVER;
    }
  }),
  PUBLIC_BASE_URL: optionalString.transform((v, ctx) => {
    if (v === null) return null;
    try {
      return new URL(v).origin;
    } catch {
      ctx.addIssue({ code: "custom", message: "must be an origin such as https://t.example.com" });
      return z.NEVER;
    }
  }),
  SNS_TOPIC_ARNS: z.string({ error: "is required for ingestion" }).transform((v, ctx) => {
    const topics = new Map<string, string | null>();
    for (const entry of v.split(",")) {
      const trimmed = entry.trim();
      if (trimmed === "") continue;
      const [arn = "", account] = trimmed.split("=", 2).map((s) => s.trim());
      if (!/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_.-]+$/.test(arn) || account === "") {
        ctx.addIssue({ code: "custom", message: "entries must be ARN or ARN=ACCOUNT_ID" });
        return z.NEVER;
      }
      topics.set(arn, account ?? null);
    }
    return topics;
  }),
  // Always anchored: the whole hostname must match. Refused: a bare `.` (it matches any character,
  // so `mail.example.com` would also admit the registrable look-alike `mail-example.com`) and a
  // pattern so loose that it admits an arbitrary host.
  SNS_CERT_HOST_PATTERN: optionalString.transform((v, ctx) => {
    if (v === null) return null;
    let pattern: RegExp;
    try {
      pattern = new RegExp(`^(?:${v})$`, "i");
    } catch {
      ctx.addIssue({ code: "custom", message: "must be a regular expression" });
      return z.NEVER;
    }
    if (hasBareDot(v)) {
      ctx.addIssue({
        code: "custom",
        message: "has an unescaped '.', which matches any character; write \\.",
      });
      return z.NEVER;
    }
    if (LOOK_ALIKE_PROBES.some((host) => pattern.test(host))) {
      ctx.addIssue({
        code: "custom",
        message: "matches hosts it cannot mean (it must name the certificate host)",
      });
      return z.NEVER;
    }
    return pattern;
  }),
  PLANS: optionalString
    .transform((v, ctx) => {
      if (v === null) return { starter: 3, growth: 7, scale: 30 };
      try {
        return JSON.parse(v) as unknown;
      } catch {
        ctx.addIssue({ code: "custom", message: "must be a JSON object of plan to retention days" });
        return z.NEVER;
      }
    })
    // A plan name starts with a letter or digit (so never `__proto__`), and the table has no
    // prototype: `constructor` or `toString` is a plan only when PLANS names it.
    .pipe(z.record(z.string().regex(/^[a-z0-9][a-z0-9_-]{0,31}$/), z.number().int().min(1).max(3650)))
    .transform((table) => Object.assign(Object.create(null) as Record<string, number>, table)),
  DEFAULT_PLAN: optionalString.transform((v) => v ?? "starter"),
  WEBHOOK_ALLOW_INSECURE_URLS: optionalString.pipe(
    z
      .enum(["true", "false"], { error: "must be true or false" })
      .nullable()
      .transform((v) => v === "true"),
  ),
  SECRETS_KEY: key32("is required for webhooks"),
  ERASURE_KEY: key32("is required for erasure"),
} satisfies { [K in keyof Env]?: z.ZodType };

/** Hosts no certificate pattern may admit: anything an attacker could register or serve from. */
const LOOK_ALIKE_PROBES = [
  "attacker.example",
  "sns.us-east-1.amazonaws.com.attacker.example",
  "s3.amazonaws.com",
];

/** A `.` outside a character class and not escaped, that is not `.*`, `.+`, `.?` or `.{…}`. */
function hasBareDot(source: string): boolean {
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const ch = source[i];
    if (ch === "\\") {
      i++;
    } else if (inClass) {
      if (ch === "]") inClass = false;
    } else if (ch === "[") {
      inClass = true;
    } else if (ch === "." && !/[*+?{]/.test(source[i + 1] ?? "")) {
      return true;
    }
  }
  return false;
}

type Parsers = typeof parsers;
export type ConfigKey = keyof Parsers;
export type ConfigValue<K extends ConfigKey> = z.output<Parsers[K]>;

const cache = new WeakMap<object, Map<ConfigKey, unknown>>();

/** The parsed value of one variable, cached for the isolate. */
export function config<K extends ConfigKey>(env: Env, key: K): ConfigValue<K> {
  let values = cache.get(env);
  if (!values) {
    values = new Map();
    cache.set(env, values);
  }
  if (values.has(key)) return values.get(key) as ConfigValue<K>;
  const parsed = parsers[key].safeParse(env[key]);
  if (!parsed.success) {
    const reason = parsed.error.issues[0]?.message ?? "is malformed";
    throw new ApiError("configuration_error", `${key} ${reason}`);
  }
  values.set(key, parsed.data);
  return parsed.data as ConfigValue<K>;
}

/** Plans with the default plan checked against them. */
export function plans(env: Env): { plans: Record<string, number>; defaultPlan: string } {
  const all = config(env, "PLANS");
  const defaultPlan = config(env, "DEFAULT_PLAN");
  if (!Object.hasOwn(all, defaultPlan)) {
    throw new ApiError("configuration_error", "DEFAULT_PLAN is not one of PLANS");
  }
  return { plans: all, defaultPlan };
}

/**
 * The effective plan and retention of a stored plan name (null: no account row). A plan removed
 * from PLANS since it was set falls back to the default, so reads and the purge never fail on it.
 */
export function effectivePlan(env: Env, stored: string | null): { plan: string; retention_days: number } {
  const { plans: all, defaultPlan } = plans(env);
  const plan = stored !== null && Object.hasOwn(all, stored) ? stored : defaultPlan;
  return { plan, retention_days: all[plan] ?? 1 };
}

const TRACKING_KEY_BYTES = 32;

/**
 * Parses TRACKING_KEYS: comma-separated base64url keys of 32 bytes each (padding optional, blanks
 * around commas ignored). Throws a plain Error that names the variable and the key's position,
 * never its value.
 */
export function parseTrackingKeys(value: string): Uint8Array[] {
  const entries = value
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  if (entries.length === 0) {
    throw new Error("TRACKING_KEYS must hold at least one base64url key of 32 bytes");
  }
  return entries.map((entry, index) => {
    const bytes = fromBase64url(entry.replace(/=$/, ""));
    if (bytes === null || bytes.length !== TRACKING_KEY_BYTES) {
      throw new Error(
        `TRACKING_KEYS: key ${index + 1} of ${entries.length} is not 32 bytes of base64url ` +
          "(make one with: openssl rand -base64 32 | tr '+/' '-_' | tr -d '=')",
      );
    }
    return bytes;
  });
}
