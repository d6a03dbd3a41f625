import type { Principal } from "./auth/jwt";
import type { Env } from "./env";

/** Hono's environment for this app: bindings plus per-request variables. */
export interface AppEnv {
  Bindings: Env;
  Variables: { requestId: string; principal?: Principal };
}
