/** Bindings and variables of SPEC §2, typed once. Variables arrive as strings and are parsed in config.ts. */
export interface Env {
  DB: D1Database;
  /** Message bodies are typed where they are sent (pipeline/enqueue.ts) and checked where they are read. */
  EVENTS_QUEUE: Queue<unknown>;
  /** Webhook deliveries (webhooks/enqueue.ts sends them, webhooks/deliver.ts reads them). */
  WEBHOOKS_QUEUE: Queue<unknown>;
  SUPPRESSIONS: KVNamespace;
  /** Background work in steps (queue/jobs.ts): suppression imports, one chunk a message. */
  JOBS_QUEUE: Queue<unknown>;
  /** Dead-lettered queue messages waiting for D1 (queue/parked.ts). */
  PARKED: R2Bucket;
  /** Per account on /v1 (auth/rate-limit.ts); absent: no limit (the benchmark's bare instances). */
  API_LIMITER?: RateLimit;
  /** Per client address on the tracking routes; absent: no limit. */
  TRACKING_LIMITER?: RateLimit;
  JWT_SECRET?: string;
  JWT_JWKS_URL?: string;
  JWT_ISSUER?: string;
  JWT_AUDIENCE?: string;
  TRACKING_KEYS?: string;
  PUBLIC_BASE_URL?: string;
  SNS_TOPIC_ARNS?: string;
  SNS_CERT_HOST_PATTERN?: string;
  PLANS?: string;
  DEFAULT_PLAN?: string;
  WEBHOOK_ALLOW_INSECURE_URLS?: string;
  /** base64url 32-byte AES-GCM key; webhook signing secrets are stored sealed under it. */
  SECRETS_KEY?: string;
  /** base64url 32-byte HMAC key for erased addresses (SPEC §20; suppressions/erasure-hash.ts). */
  ERASURE_KEY?: string;
}
