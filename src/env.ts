/** Bindings and variables of SPEC §2, typed once. Variables arrive as strings and are parsed in config.ts. */
export interface Env {
  DB: D1Database;
  /** Message bodies are typed where they are sent (pipeline/enqueue.ts) and checked where they are read. */
  EVENTS_QUEUE: Queue<unknown>;
  SUPPRESSIONS: KVNamespace;
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
}
