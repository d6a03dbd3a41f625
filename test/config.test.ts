import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { type ConfigKey, config, plans } from "../src/config";
import type { Env } from "../src/env";
import type { ApiError } from "../src/lib/errors";

/** The variables of Env (the string-valued members), for overriding one per case. */
type StringVars = { [K in keyof Env as Env[K] extends string | undefined ? K : never]?: string };
const withVars = (vars: StringVars): Env => ({ ...(env as unknown as Env), ...vars }) as Env;

function configError(e: Env, key: ConfigKey): ApiError {
  try {
    config(e, key);
  } catch (err) {
    return err as ApiError;
  }
  throw new Error(`${key} parsed`);
}

describe("configuration", () => {
  it("parses the test configuration", () => {
    const e = env as unknown as Env;
    expect(config(e, "TRACKING_KEYS")).toHaveLength(2);
    expect(config(e, "SNS_TOPIC_ARNS").get("arn:aws:sns:us-east-1:123456789012:ses-events")).toBe(
      "acct_bound",
    );
    expect(config(e, "SNS_TOPIC_ARNS").get("arn:aws:sns:us-east-1:123456789012:ses-shared")).toBeNull();
    expect(plans(e)).toEqual({ plans: { starter: 3, growth: 7, scale: 30 }, defaultPlan: "starter" });
    expect(config(withVars({ PUBLIC_BASE_URL: "https://t.example.com/some/path" }), "PUBLIC_BASE_URL")).toBe(
      "https://t.example.com",
    );
  });

  it.each([
    ["TRACKING_KEYS", undefined, "TRACKING_KEYS is required"],
    ["TRACKING_KEYS", "c2hvcnQ", "TRACKING_KEYS"],
    ["SNS_TOPIC_ARNS", undefined, "SNS_TOPIC_ARNS"],
    ["SNS_TOPIC_ARNS", "not-an-arn", "SNS_TOPIC_ARNS"],
    ["SNS_CERT_HOST_PATTERN", "([", "SNS_CERT_HOST_PATTERN"],
    ["PLANS", "{nope", "PLANS"],
    ["PLANS", '{"gold": -1}', "PLANS"],
    ["JWT_JWKS_URL", "ftp://x", "JWT_JWKS_URL"],
  ] as const)("fails %s=%s with configuration_error naming it, never its value", (key, value, message) => {
    const err = configError(withVars({ [key]: value } as StringVars), key);
    expect(err.type).toBe("configuration_error");
    expect(err.status).toBe(500);
    expect(err.message).toContain(message);
    if (value && value.length > 3) expect(err.message).not.toContain(value);
  });

  it("fails when DEFAULT_PLAN is not one of PLANS", () => {
    expect(() => plans(withVars({ DEFAULT_PLAN: "gold" }))).toThrow(/DEFAULT_PLAN/);
  });
});
