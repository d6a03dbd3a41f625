import { describe, expect, it } from "vitest";
import { call, json } from "../helpers";

const SURFACES = {
  "/compat/sparkpost/": "compat: SparkPost",
  "/compat/numonic/": "compat: Numonic",
  "/compat/unosend/": "compat: Unosend",
} as const;

const EXPECTED = [
  ["get", "/compat/sparkpost/api/v1/events/message"],
  ["get", "/compat/sparkpost/api/v1/events/message/documentation"],
  ["get", "/compat/sparkpost/api/v1/events/message/samples"],
  ["get", "/compat/numonic/api/v1/events"],
  ["get", "/compat/numonic/api/v1/suppression"],
  ["delete", "/compat/numonic/api/v1/suppression/{email}"],
  ["get", "/compat/unosend/api/v1/events"],
  ["get", "/compat/unosend/v1/events"],
  ["get", "/compat/unosend/v1/metrics"],
  ["get", "/compat/unosend/v1/metrics/links"],
  ["get", "/compat/unosend/v1/suppressions"],
  ["post", "/compat/unosend/v1/suppressions"],
  ["get", "/compat/unosend/v1/suppressions/{id}"],
  ["delete", "/compat/unosend/v1/suppressions/{id}"],
] as const;

describe("OpenAPI: compatibility surfaces and the export", () => {
  it("documents every compat route under its surface's own tag, with its choices", async () => {
    const doc = await json(await call("GET", "/openapi.json"));
    const compatPaths = Object.keys(doc.paths).filter((p) => p.startsWith("/compat/"));
    expect(compatPaths.sort()).toEqual([...new Set(EXPECTED.map(([, p]) => p))].sort());
    const operationIds = new Set<string>();
    for (const [method, path] of EXPECTED) {
      const op = doc.paths[path][method];
      expect(op, `${method} ${path}`).toBeDefined();
      const tag = Object.entries(SURFACES).find(([prefix]) => path.startsWith(prefix))?.[1];
      expect(op.tags).toEqual([tag]);
      expect(op.operationId).toMatch(/^[a-z][A-Za-z0-9]+$/);
      operationIds.add(op.operationId);
      // The scope the route requires, as the native routes name it (SPEC §3).
      expect(op.security).toEqual([
        {
          bearer: [
            method === "delete" || (method === "post" && path.endsWith("/suppressions"))
              ? "suppressions:write"
              : /\/suppressions?(\/|$)/.test(path)
                ? "suppressions:read"
                : "events:read",
          ],
        },
      ]);
      expect(op.description.length).toBeGreaterThan(80);
      const statuses = Object.keys(op.responses);
      expect(statuses.some((s) => s.startsWith("2"))).toBe(true);
      expect(statuses).toEqual(expect.arrayContaining(["400", "401", "403"]));
    }
    expect(operationIds.size).toBe(EXPECTED.length);
    const search = doc.paths["/compat/sparkpost/api/v1/events/message"].get;
    expect(search.description).toContain("Keyword search");
    expect(search.description).toContain("10,000 rows");
    expect(search.parameters.map((p: { name: string }) => p.name)).toEqual(
      expect.arrayContaining([
        "from",
        "to",
        "cursor",
        "per_page",
        "delimiter",
        "campaigns",
        "bounce_classes",
      ]),
    );
    const errorRef = search.responses["400"].content["application/json"].schema.$ref;
    expect(errorRef).toBe("#/components/schemas/SparkPostError");
    expect(
      doc.paths["/compat/numonic/api/v1/events"].get.responses["401"].content["application/json"].schema.$ref,
    ).toBe("#/components/schemas/NumonicError");

    const exportOp = doc.paths["/v1/events/export"].get;
    expect(exportOp.tags).toEqual(["events"]);
    expect(Object.keys(exportOp.responses["200"].content).sort()).toEqual([
      "application/x-ndjson",
      "text/csv",
    ]);
    expect(exportOp.description).toContain("RFC 4180");
  });
});
