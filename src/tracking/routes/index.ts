export { registerTrackingRoutes } from "./unsubscribe";
