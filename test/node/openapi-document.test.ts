import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { describe, expect, it } from "vitest";
import { newApp, openApiDocument } from "../../src/app";

/**
 * Writes the OpenAPI document that GET /openapi.json serves to dist/openapi.json, for `redocly lint`
 * (`npm run lint:openapi`). It runs in Node: the app's module graph needs no Workers runtime to be
 * built, and the file system is at hand.
 */
const DOCUMENT_PATH = "dist/openapi.json";

describe("the OpenAPI document", () => {
  const doc = openApiDocument(newApp()) as unknown as {
    paths: Record<string, Record<string, { operationId?: string; security?: unknown[] }>>;
  };

  it("names and secures every operation", () => {
    const operations = Object.values(doc.paths).flatMap((methods) => Object.values(methods));
    expect(operations.length).toBeGreaterThan(10);
    const ids = operations.map((op) => op.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const op of operations) expect(Array.isArray(op.security)).toBe(true);
  });

  it("is written for the linter", () => {
    mkdirSync(dirname(DOCUMENT_PATH), { recursive: true });
    writeFileSync(DOCUMENT_PATH, `${JSON.stringify(doc, null, 2)}\n`);
  });
});
