import type { App } from "../../lib/openapi";
import { registerInstrumentRoute } from "./instrument-message";
import { registerRegisterMessages } from "./register-messages";

/** The message routes of SPEC §6: one file per operation beside this one. */
export function registerMessageRoutes(app: App): void {
  registerRegisterMessages(app);
  registerInstrumentRoute(app);
}
