/**
 * The cron's work run locally under `wrangler dev` with the dashboard's [assets] in place (SPEC §13),
 * through the one helper: a suppression written straight into D1 (as a KV outage would leave it) is
 * missing from the KV mirror, so POST /v1/suppressions/check (which reads KV) does not see it; one
 * trigger of the scheduled work reconciles it, and check sees it.
 *
 * The trigger is the documented `/cdn-cgi/handler/scheduled`, which answers 200 only after the work
 * ran (a failed run answers 500). With [assets], wrangler 4.86's miniflare needs its assets proxy
 * fixed for it (cloudflare/workers-sdk#9882; scripts/local-cron-fix.mjs, applied by npm install).
 */
import { randomBytes } from "node:crypto";
import { SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startWranglerDev, until } from "./wrangler-dev";

const ACCOUNT = `acct_cron_${randomBytes(4).toString("hex")}`;
const ADDRESS = "only-in-d1@example.com";

describe("the scheduled work under wrangler dev", () => {
  const secret = randomBytes(36).toString("base64url");
  let dev: DevServer | undefined;

  beforeAll(async () => {
    dev = await startWranglerDev(
      { JWT_SECRET: secret, TRACKING_KEYS: randomBytes(32).toString("base64url") },
      {
        seedSql:
          "INSERT INTO suppressions (account_id, email, topic, reason, suppressed_at) " +
          `VALUES ('${ACCOUNT}', '${ADDRESS}', '', 'manual', ${Date.now() - 60_000});`,
      },
    );
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
  });

  it("runs when triggered, and its reconcile mirrors a suppression D1 holds and KV lacks", async () => {
    const origin = dev?.origin ?? "";
    const token = await new SignJWT({ scope: "send" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(ACCOUNT)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(secret));
    const check = async () => {
      const res = await fetch(`${origin}/v1/suppressions/check`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ emails: [ADDRESS] }),
      });
      expect(res.status).toBe(200);
      return ((await res.json()) as { data: { suppressed: boolean }[] }).data[0]?.suppressed;
    };
    expect(await check()).toBe(false);

    const run = await fetch(`${origin}/cdn-cgi/handler/scheduled`);
    expect(run.status).toBe(200);
    expect(await run.text()).toBe("ok");
    // Its log lines reach wrangler's output a moment later.
    await until("the reconcile's log line", 10_000, async () =>
      dev?.output().includes("mirror reconcile finished") ? true : undefined,
    );
    expect(await check()).toBe(true);
  });
});
