import type { QueueMessage } from "./queue/messages";
import type { WebhookMessage } from "./webhooks/messages";

/** Bindings and variables of SPEC §2, typed once. Variables arrive as strings and are parsed in config.ts. */
export interface Env {
  DB: D1Database;
  EVENTS_QUEUE: Queue<QueueMessage>;
  WEBHOOKS_QUEUE: Queue<WebhookMessage>;
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
  WEBHOOK_ALLOW_INSECURE_URLS?: string;
}
