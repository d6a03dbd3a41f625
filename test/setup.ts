import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Applied once per test file's storage; applyD1Migrations skips migrations already recorded.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
