/** Bindings and variables of SPEC §2, typed once. Variables arrive as strings and are parsed in config.ts. */
export interface Env {
  /** The control database (SPEC §17): accounts, placements, webhook endpoints, alert rules, imports, erasures. */
  DB: D1Database;
  /**
   * The event shards `EVENTS_0 … EVENTS_{n-1}` (SPEC §17): everything that grows with mail. Reached
   * only through src/shards/ (which one holds an account, an email, its suppressions).
   */
  [shard: `EVENTS_${number}`]: D1Database | undefined;
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
  /** Comma-separated indexes of the event shards that take new accounts (SPEC §2, §17). */
  EVENT_SHARDS?: string;
  /** base64url 32-byte AES-GCM key; webhook signing secrets are stored sealed under it. */
  SECRETS_KEY?: string;
  /** base64url 32-byte HMAC key for erased addresses (SPEC §20; suppressions/erasure-hash.ts). */
  ERASURE_KEY?: string;
}
