import { defineConfig } from "vitest/config";

/** Tests that run in Node rather than workerd: they write files (test/node; `npm run lint:openapi`). */
export default defineConfig({
  test: {
    name: "node",
    include: ["test/node/**/*.test.ts"],
    environment: "node",
  },
});
