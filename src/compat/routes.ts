import type { App } from "../lib/openapi";
import { registerNumonicRoutes } from "./numonic/routes";
import { registerSparkPostRoutes } from "./sparkpost/routes";
import { registerUnosendRoutes } from "./unosend/routes";

/** The compatibility surfaces of SPEC §16, each under its own prefix, error shape and OpenAPI tag. */
export function registerCompatRoutes(app: App): void {
  registerSparkPostRoutes(app);
  registerNumonicRoutes(app);
  registerUnosendRoutes(app);
}
