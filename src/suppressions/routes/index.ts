import type { App } from "../../lib/openapi";
import { registerCheckSuppressions } from "./check";
import { registerDeleteSuppressions } from "./delete";
import { registerGetSuppressions } from "./get";
import { registerListSuppressions } from "./list";
import { registerPutSuppression } from "./put";

/** The suppression API of SPEC §10: one file per operation beside this one. */
export function registerSuppressionRoutes(app: App): void {
  registerListSuppressions(app);
  registerGetSuppressions(app);
  registerPutSuppression(app);
  registerDeleteSuppressions(app);
  registerCheckSuppressions(app);
}
