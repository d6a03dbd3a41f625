/**
 * A client generated from the served /openapi.json, as a new user would make one (SPEC §13):
 * `openapi-typescript` turns the document into types, a typed `openapi-fetch` call of GET /v1/events
 * is compiled with the TypeScript compiler (numbers as numbers, a boolean as a boolean, event types
 * as their enum: a wrong type is a compile error, checked with `@ts-expect-error`), then run against
 * `wrangler dev`.
 */
import { randomBytes } from "node:crypto";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { SignJWT } from "jose";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type DevServer, startWranglerDev } from "./wrangler-dev";

const ROOT = path.resolve(import.meta.dirname, "../..");
// Inside node_modules/.cache, so the generated module resolves openapi-fetch like any project would.
const OUT = path.join(
  ROOT,
  "node_modules/.cache",
  `mailtrail-openapi-client-${randomBytes(4).toString("hex")}`,
);

const CLIENT = `import createClient from "openapi-fetch";
import type { paths } from "./schema";

/** The arrays of the document are comma lists (style: form, explode: false), as it says. */
export const connect = (baseUrl: string, token: string) =>
  createClient<paths>({
    baseUrl,
    headers: { Authorization: \`Bearer \${token}\` },
    querySerializer: { array: { style: "form", explode: false } },
  });

export async function listRecentDeliveries(baseUrl: string, token: string) {
  const client = connect(baseUrl, token);
  const { data, error, response } = await client.GET("/v1/events", {
    params: { query: { limit: 5, days: 7, count: true, event_type: ["email.delivered", "email.bounced"] } },
  });
  const total: number | undefined = data?.total;
  return { status: response.status, data, error, total };
}

/** Never called: what the generated types refuse, each line a compile error that tsc must report. */
export function refusedAtCompileTime(client: ReturnType<typeof connect>) {
  // @ts-expect-error limit is an integer, not a string
  client.GET("/v1/events", { params: { query: { limit: "5" } } });
  // @ts-expect-error days is an integer
  client.GET("/v1/events", { params: { query: { days: "7" } } });
  // @ts-expect-error count is a boolean
  client.GET("/v1/events", { params: { query: { count: "true" } } });
  // @ts-expect-error an event type outside the enum
  client.GET("/v1/events", { params: { query: { event_type: ["email.bogus"] } } });
}
`;

describe("a client generated from /openapi.json", () => {
  const secret = randomBytes(36).toString("base64url");
  let dev: DevServer | undefined;

  beforeAll(async () => {
    dev = await startWranglerDev({
      JWT_SECRET: secret,
      TRACKING_KEYS: randomBytes(32).toString("base64url"),
    });
    mkdirSync(OUT, { recursive: true });
  }, 120_000);

  afterAll(async () => {
    await dev?.stop();
    rmSync(OUT, { recursive: true, force: true });
  });

  it("types GET /v1/events's parameters as the document states, and calls it", async () => {
    const origin = dev?.origin ?? "";
    const document = await (await fetch(`${origin}/openapi.json`)).json();
    writeFileSync(path.join(OUT, "schema.d.ts"), astToString(await openapiTS(document)));
    const clientFile = path.join(OUT, "client.ts");
    writeFileSync(clientFile, CLIENT);

    // Compiled strictly: an unused @ts-expect-error (a line that type-checks) is itself an error.
    const program = ts.createProgram([clientFile], {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ["lib.es2023.d.ts", "lib.dom.d.ts"],
      skipLibCheck: true,
      types: [],
    });
    const diagnostics = ts
      .getPreEmitDiagnostics(program)
      .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
    expect(diagnostics).toEqual([]);

    const js = ts.transpileModule(CLIENT, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    }).outputText;
    const jsFile = path.join(OUT, "client.mjs");
    writeFileSync(jsFile, js);
    const client = (await import(pathToFileURL(jsFile).href)) as {
      listRecentDeliveries: (baseUrl: string, token: string) => Promise<Record<string, any>>;
    };
    const token = await new SignJWT({ scope: "events:read" })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject(`acct_client_${randomBytes(4).toString("hex")}`)
      .setIssuedAt()
      .setExpirationTime("10m")
      .sign(new TextEncoder().encode(secret));
    const result = await client.listRecentDeliveries(origin, token);
    expect(result.error).toBeUndefined();
    expect(result.status).toBe(200);
    expect(result.data).toMatchObject({ object: "list", data: [], has_more: false, total: 0 });
  });
});
