import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/** Test-only secrets and variables; production values come from `wrangler secret put`. */
export const TEST_VARS = {
  JWT_SECRET: "test-secret-test-secret-test-secret-0123456789",
  JWT_ISSUER: "",
  JWT_AUDIENCE: "",
  JWT_JWKS_URL: "",
  TRACKING_KEYS: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8,ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8",
  PUBLIC_BASE_URL: "https://t.mailtrail.test",
  ERASURE_KEY: "YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn8",
  SNS_TOPIC_ARNS:
    "arn:aws:sns:us-east-1:123456789012:ses-events=acct_bound,arn:aws:sns:us-east-1:123456789012:ses-shared," +
    "arn:aws:sns:us-east-1:364852123998:test-email=acct_django",
  SNS_CERT_HOST_PATTERN: "",
  SECRETS_KEY: "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY",
  // Webhook receivers in tests are local http servers (test/webhooks/receiver-global.ts).
  WEBHOOK_ALLOW_INSECURE_URLS: "true",
};

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(import.meta.dirname, "migrations"));
  return {
    plugins: [
      cloudflareTest({
        main: "./src/index.ts",
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: { ...TEST_VARS, TEST_MIGRATIONS: migrations },
        },
      }),
    ],
    test: {
      include: ["test/**/*.test.ts", "src/**/*.test.ts"],
      exclude: ["test/e2e/**", "test/node/**"],
      setupFiles: ["./test/setup.ts"],
      globalSetup: ["./test/webhooks/receiver-global.ts"],
      testTimeout: 30_000,
      silent: "passed-only",
    },
  };
});
