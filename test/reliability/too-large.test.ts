import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { newApp } from "../../src/app";

/**
 * SPEC §4/§18: a statement D1 refuses as too large or too complex fails the same way on every
 * retry, so it is the client's 400 validation_error, never 503. The statements below make real
 * local D1 raise each refusal; the app's one error layer maps them.
 */

function appRunning(sql: (db: D1Database) => Promise<unknown>) {
  const app = newApp();
  app.get("/probe", async (c) => {
    await sql(c.env.DB);
    return c.json({ ok: true });
  });
  return app.fetch(new Request("https://mailtrail.test/probe"), env);
}

describe("D1 refusing a request as too large", () => {
  it("answers 'Expression tree is too large' with 400 validation_error", async () => {
    const deep = Array.from({ length: 1200 }, (_, i) => `x LIKE '%w${i}%'`).join(" OR ");
    const res = await appRunning((db) => db.prepare(`SELECT 1 FROM (SELECT 'a' AS x) WHERE ${deep}`).all());
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { type: string } };
    expect(body.error.type).toBe("validation_error");
  });

  it("answers SQLITE_TOOBIG with 400 validation_error", async () => {
    const res = await appRunning((db) => db.prepare("SELECT zeroblob(2000000000) AS b").all());
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("validation_error");
  });

  it("answers too many bound variables with 400 validation_error", async () => {
    const values = Array.from({ length: 40_000 }, (_, i) => i);
    const res = await appRunning((db) =>
      db
        .prepare(`SELECT 1 WHERE 1 IN (${values.map(() => "?").join(",")})`)
        .bind(...values)
        .all(),
    );
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe("validation_error");
  });

  it("still answers an outage with 503", async () => {
    const res = await appRunning(async () => {
      throw new Error("D1_ERROR: Network connection lost.");
    });
    expect(res.status).toBe(503);
  });
});
