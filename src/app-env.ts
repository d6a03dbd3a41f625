import type { Env } from "./env";

/** Who a verified API token speaks for (set by auth/middleware.ts). */
export interface Principal {
  accountId: string;
  scopes: ReadonlySet<string>;
}

/** Hono's environment for this app: bindings plus per-request variables. */
export interface AppEnv {
  Bindings: Env;
  Variables: { requestId: string; principal?: Principal };
}
