import type { App } from "../../lib/openapi";
import { registerCheckSuppressions } from "./check";
import { registerDeleteSuppressions } from "./delete";
import { registerExportSuppressions } from "./export";
import { registerGetSuppressions } from "./get";
import { registerImportSuppressions } from "./import";
import { registerListSuppressions } from "./list";
import { registerPutSuppression } from "./put";

/** The suppression API of SPEC §10: one file per operation beside this one. */
export function registerSuppressionRoutes(app: App): void {
  // Before the {email} routes: /v1/suppressions/export and /imports are fixed paths, not addresses.
  registerExportSuppressions(app);
  registerImportSuppressions(app);
  registerListSuppressions(app);
  registerGetSuppressions(app);
  registerPutSuppression(app);
  registerDeleteSuppressions(app);
  registerCheckSuppressions(app);
}
