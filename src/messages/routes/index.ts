export { registerMessageRoutes } from "./register-messages";
