import type { App } from "../../lib/openapi";
import { registerOpenClickRoutes } from "./open-click";
import { registerUnsubscribeRoutes } from "./unsubscribe";

/** The tracking paths of SPEC §5: /o and /c (open-click.ts, also the fast path), /u (unsubscribe.ts). */
export function registerTrackingRoutes(app: App): void {
  registerOpenClickRoutes(app);
  registerUnsubscribeRoutes(app);
}
