import { defineConfig } from "vitest/config";

/**
 * End-to-end tests, in Node rather than workerd: they start `wrangler dev` and drive a real
 * browser against it (test/e2e). `npm test` runs them after the workerd suite.
 */
export default defineConfig({
  test: {
    name: "e2e",
    include: ["test/e2e/**/*.test.ts"],
    environment: "node",
    testTimeout: 90_000,
    hookTimeout: 90_000,
    fileParallelism: false,
  },
});
