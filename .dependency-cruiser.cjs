/**
 * The layers of src/, checked by `npm run check` (dependency-cruiser). The import graph reads top-down:
 *
 *   entry          src/index.ts, src/app.ts, src/scheduled.ts (the cron's entrance): composition only
 *   surface        routes (`routes.ts` or a `routes/` folder), queue consumers (src/queue/)
 *   capabilities   every other folder: events, tracking, ses, suppressions, messages, accounts, auth,
 *                  pipeline (what is sent to EVENTS_QUEUE), retention
 *   foundation     src/lib/, src/db/, src/config.ts, src/env.ts, src/app-env.ts
 *
 * A layer imports only layers below it (capabilities may use one another); nothing imports upward.
 *
 * test/ and bench/ are checked too: they import src/ and support files, never a test file.
 */
const ENTRY = "^src/(index|app|scheduled)\\.ts$";
const SURFACE = "^src/([^/]+/routes(\\.ts$|/)|queue/)";
const FOUNDATION = "^src/(lib/|db/|(config|env|app-env)\\.ts$)";

module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "A cycle has no top: split the shared part into the lower module.",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "foundation-knows-no-higher-layer",
      severity: "error",
      comment: "lib, db, config and env know nothing of the capabilities, routes or consumers above them.",
      from: { path: FOUNDATION },
      to: { path: "^src/", pathNot: FOUNDATION },
    },
    {
      name: "capabilities-know-no-surface",
      severity: "error",
      comment: "Capabilities are called by routes and consumers, never the reverse.",
      from: { path: "^src/", pathNot: [ENTRY, SURFACE] },
      to: { path: [ENTRY, SURFACE] },
    },
    {
      name: "surface-knows-no-entry",
      severity: "error",
      comment: "Routes and consumers are composed by the entry; they do not import it.",
      from: { path: SURFACE },
      to: { path: ENTRY },
    },
    {
      name: "no-test-imports-a-test",
      severity: "error",
      comment: "Tests share code through helpers and support files, never by importing another test file.",
      from: { path: "^(src|test|bench)/" },
      to: { path: "\\.test\\.ts$" },
    },
    {
      name: "tests-know-no-bench",
      severity: "error",
      comment: "Tests import src/ and test support files (helpers, support.ts, fixtures), not the benchmark.",
      from: { path: "^test/" },
      to: { path: "^bench/" },
    },
    {
      name: "e2e-through-the-one-helper",
      severity: "error",
      comment: "An e2e test starts wrangler dev through test/e2e/wrangler-dev.ts, never spawning it itself.",
      from: { path: "^test/e2e/.+\\.test\\.ts$" },
      to: { dependencyTypes: ["core"], path: "child_process$" },
    },
    {
      name: "bench-knows-no-tests",
      severity: "error",
      comment: "The benchmark stands on src/ alone.",
      from: { path: "^bench/" },
      to: { path: "^test/" },
    },
    {
      name: "per-email-tables-belong-to-the-store",
      severity: "error",
      comment:
        "Only the event store (src/store/) reads or writes the tables that grow with mail: their Drizzle objects (and the schema barrel that re-exports them) are not imported elsewhere. test/node/store-owns-sql.test.ts refuses raw SQL on them.",
      from: { path: "^src/", pathNot: "^src/(store/|db/)" },
      to: {
        path: "^src/db/(schema|events|messages|message-ids|metric-rollups|webhook-deliveries|click-bursts)\\.ts$",
      },
    },
    {
      name: "src-knows-no-tests",
      severity: "error",
      from: { path: "^src/" },
      to: { path: "^(test|bench)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
