import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Applied once per test file's storage to every D1 binding (the control database and each event
// shard, SPEC §17); applyD1Migrations skips migrations already recorded.
for (const [name, binding] of Object.entries(env)) {
  if (name === "DB" || /^EVENTS_\d+$/.test(name))
    await applyD1Migrations(binding as D1Database, env.TEST_MIGRATIONS);
}
