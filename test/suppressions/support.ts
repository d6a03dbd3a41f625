import { env } from "cloudflare:workers";
import { expect, vi } from "vitest";
import { mirrorKey } from "../../src/suppressions/mirror";
import { call, eventsDb, json, mintToken } from "../helpers";

/** Tokens of one account, one per scope the suppression routes use. */
export async function tokensFor(account: string) {
  const [read, write, send, events, admin] = await Promise.all([
    mintToken(account, "suppressions:read"),
    mintToken(account, "suppressions:write"),
    mintToken(account, "send"),
    mintToken(account, "events:read"),
    mintToken(account, "admin"),
  ]);
  return { read, write, send, events, admin };
}

export const enc = (email: string) => encodeURIComponent(email);

/** PUT /v1/suppressions/{email}, expecting success. */
export async function suppress(token: string, email: string, topic?: string) {
  const res = await call("PUT", `/v1/suppressions/${enc(email)}`, {
    token,
    ...(topic === undefined ? {} : { body: { topic } }),
  });
  if (res.status !== 200) throw new Error(`PUT ${email}: ${res.status} ${await res.text()}`);
  return json(res);
}

export async function check(token: string, body: Record<string, unknown>) {
  return call("POST", "/v1/suppressions/check", { token, body });
}

/** The check result of each address, as `email → reason | null`. */
export async function suppressedReasons(token: string, emails: string[], topic?: string) {
  const res = await check(token, { emails, ...(topic === undefined ? {} : { topic }) });
  if (res.status !== 200) throw new Error(`check: ${res.status} ${await res.text()}`);
  const body = await json<{ data: { email: string; suppressed: boolean; reason: string | null }[] }>(res);
  return Object.fromEntries(body.data.map((r) => [r.email, r.suppressed ? r.reason : null]));
}

export const mirrorOf = (account: string, email: string) =>
  env.SUPPRESSIONS.get<
    { topic: string | null; reason: string; suppressed_at: number; expires_at?: number }[]
  >(mirrorKey(account, email), "json");

export async function d1Rows(account: string, email?: string) {
  const { results } = await eventsDb(account)
    .prepare(
      `SELECT email, topic, reason, email_id, suppressed_at FROM suppressions
      WHERE account_id = ?1 AND (?2 IS NULL OR email = ?2) ORDER BY email, topic`,
    )
    .bind(account, email ?? null)
    .all<{ email: string; topic: string; reason: string; email_id: string | null; suppressed_at: number }>();
  return results;
}

/** A suppression row written straight to D1, behind the mirror's back. */
export async function insertRow(
  account: string,
  email: string,
  topic = "",
  reason = "manual",
  at = Date.now(),
) {
  await eventsDb(account)
    .prepare(
      "INSERT INTO suppressions (account_id, email, topic, reason, email_id, suppressed_at) VALUES (?, ?, ?, ?, NULL, ?)",
    )
    .bind(account, email, topic, reason, at)
    .run();
}

/** POST /v1/erasures (SPEC §20), waiting until the erasure has completed: the 202 body and the final one. */
export async function erase(token: string, email: string) {
  const res = await call("POST", "/v1/erasures", { token, body: { email } });
  expect(res.status).toBe(202);
  const created = await json(res);
  let done: Record<string, any> = created;
  await vi.waitFor(
    async () => {
      done = await json(await call("GET", `/v1/erasures/${created.id}`, { token }));
      expect(done.status).toBe("completed");
    },
    { timeout: 10_000, interval: 100 },
  );
  return { created, done };
}
