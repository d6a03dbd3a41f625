import type { App } from "../lib/openapi";
import { registerSparkPostRoutes } from "./sparkpost/routes";

/** The compatibility surfaces of SPEC §16, each under its own prefix, error shape and OpenAPI tag. */
export function registerCompatRoutes(app: App): void {
  registerSparkPostRoutes(app);
}
