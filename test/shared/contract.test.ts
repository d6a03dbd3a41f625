import { describe, expect, it } from "vitest";
import { call, freshAccount, json, mintToken } from "../helpers";
import {
  type Document,
  invalidValues,
  type JsonSchema,
  minimalObject,
  queryText,
  resolve,
  validValues,
} from "./schema-samples";

/**
 * The document is the contract (SPEC §13): every operation of the served /openapi.json is walked,
 * and requests are generated from its schemas. A request the document allows is never refused as
 * invalid, unless it breaks a rule between fields or of the account's data that the operation's
 * description states (the table below, each checked against the description); a request that breaks
 * one schema rule of one parameter or body field is refused with 400 naming it. No request is a 5xx.
 */

const SCOPES = "events:read suppressions:read suppressions:write send webhooks:read webhooks:write admin";

/**
 * Documented rules a schema cannot carry: operationId → parameter → words the description (of the
 * operation or of the parameter) must contain. A generated request that breaks one may be refused.
 */
const DOCUMENTED_RULES: Record<string, Record<string, string>> = {
  // The account's data: a sending domain it has never sent from.
  listEvents: { domain: "has sent from" },
  exportEvents: { domain: "has sent from" },
  getMetrics: { domain: "has sent from" },
  getLinkMetrics: { domain: "has sent from" },
  getReputation: { domain: "has sent from" },
  // Offset paging reads the rows before the page (SPEC §18): page × limit, offset + limit.
  numonicListEvents: { page: "page × limit" },
  numonicListSuppressions: { page: "page × limit" },
  unosendListSuppressions: { page: "page × per_page" },
  unosendListEvents: { offset: "offset + limit" },
  unosendListEventsV1: { offset: "offset + limit" },
  sparkpostSearchMessageEvents: { ab_test_versions: "`ab_test_versions` requires `ab_tests`" },
  // KV stores an expiring entry only at least 60 s ahead (SPEC §10).
  addSuppression: { expires_at: "at least 60 s ahead" },
  // A plan is one of the deployment's PLANS.
  setAccountPlan: { plan: "PLANS" },
  // Either event ids or a window.
  replayWebhookEvents: { body: "Either event_ids" },
};

/** Parameters whose values the server issues (cursors, tokens): only their schema rules are tried. */
const SERVER_ISSUED = new Set(["after", "cursor", "token"]);

interface Operation {
  method: string;
  path: string;
  op: JsonSchema;
}

interface Attempt {
  what: string;
  path: Record<string, string>;
  query: Record<string, string>;
  body?: unknown;
}

async function operations(): Promise<{ doc: Document; ops: Operation[] }> {
  const doc = await json(await call("GET", "/openapi.json"));
  const ops: Operation[] = [];
  for (const [path, methods] of Object.entries(doc.paths as Record<string, Record<string, JsonSchema>>)) {
    for (const [method, op] of Object.entries(methods)) ops.push({ method, path, op });
  }
  return { doc, ops };
}

const media = (op: JsonSchema) => Object.keys(op.requestBody?.content ?? {})[0];

async function send(o: Operation, attempt: Attempt): Promise<{ status: number; body: JsonSchema | null }> {
  const path = o.path.replace(/\{([^}]+)\}/g, (_, name: string) =>
    encodeURIComponent(attempt.path[name] ?? ""),
  );
  const query = new URLSearchParams(attempt.query).toString();
  const url = `${path}${query ? `?${query}` : ""}`;
  const type = media(o.op);
  const token = await mintToken(freshAccount("contract"), SCOPES);
  const options =
    attempt.body === undefined
      ? {}
      : type === "application/json"
        ? { body: attempt.body }
        : type === "application/x-www-form-urlencoded"
          ? {
              rawBody: new URLSearchParams(attempt.body as Record<string, string>).toString(),
              headers: { "content-type": type },
            }
          : { rawBody: JSON.stringify(attempt.body), headers: { "content-type": type ?? "text/plain" } };
  const res = await call(o.method.toUpperCase(), url, { token, ...options });
  const text = await res.text();
  let body: JsonSchema | null = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status: res.status, body };
}

/** Whether the answer refuses the request as invalid, in the native or a compatibility surface's shape. */
const refusedAsInvalid = (status: number, body: JsonSchema | null) =>
  status === 400 &&
  (body?.error?.type === "validation_error" ||
    body?.error?.code === "VALIDATION_ERROR" ||
    body?.errors?.[0]?.message === "invalid params");

/** Whether the refusal names the parameter: `param` natively, the message on the compatibility surfaces. */
function namesParam(body: JsonSchema | null, name: string): boolean {
  if (body?.error?.param !== undefined) return body.error.param === name;
  const text = `${body?.error?.message ?? ""} ${body?.errors?.[0]?.description ?? ""}`;
  return new RegExp(`(^|[^A-Za-z_])${name}([^A-Za-z_]|$)`).test(text);
}

/** The base request: required path parameters and body, at their first valid values. */
function baseOf(doc: Document, o: Operation): Attempt {
  const path: Record<string, string> = {};
  for (const p of o.op.parameters ?? []) {
    if (p.in === "path") path[p.name] = queryText(validValues(doc, p.schema)[0]);
  }
  const bodySchema = o.op.requestBody?.content?.[media(o.op) ?? ""]?.schema;
  const body = bodySchema && o.op.requestBody.required ? minimalObject(doc, bodySchema) : undefined;
  return { what: "base", path, query: {}, body };
}

/** Requests the document allows: the base, then each optional parameter or body field alone. */
function validAttempts(doc: Document, o: Operation): Attempt[] {
  const base = baseOf(doc, o);
  const out: Attempt[] = [base];
  for (const p of o.op.parameters ?? []) {
    if (SERVER_ISSUED.has(p.name) || p.in !== "query") continue;
    for (const value of validValues(doc, p.schema))
      out.push({ ...base, what: `${p.name}=${queryText(value)}`, query: { [p.name]: queryText(value) } });
  }
  const bodySchema = o.op.requestBody?.content?.["application/json"]?.schema;
  if (bodySchema) {
    const schema = resolve(doc, bodySchema);
    const required = new Set<string>(schema.required ?? []);
    for (const [name, prop] of Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>)) {
      if (required.has(name) || name === "account_id") continue;
      for (const value of validValues(doc, prop))
        out.push({
          ...base,
          what: `body.${name}=${JSON.stringify(value)}`,
          body: { ...(base.body as object), [name]: value },
        });
    }
  }
  return out;
}

/** Requests that break one schema rule of one parameter or top-level body field, and whom they name. */
function invalidAttempts(doc: Document, o: Operation): (Attempt & { param: string })[] {
  const base = baseOf(doc, o);
  const out: (Attempt & { param: string })[] = [];
  for (const p of o.op.parameters ?? []) {
    for (const { value, breaks } of invalidValues(doc, p.schema)) {
      const text = queryText(value);
      if (p.in === "path") {
        // An empty path segment is another route; a path's rules are tried with what a URL can hold.
        if (text === "" || o.path.startsWith("/o/") || o.path.startsWith("/c/") || o.path.startsWith("/u/"))
          continue;
        out.push({
          ...base,
          what: `${p.name} breaks ${breaks}`,
          param: p.name,
          path: { ...base.path, [p.name]: text },
        });
      } else if (p.in === "query") {
        out.push({
          ...base,
          what: `${p.name}=${text} breaks ${breaks}`,
          param: p.name,
          query: { [p.name]: text },
        });
      }
    }
  }
  const bodySchema = o.op.requestBody?.content?.["application/json"]?.schema;
  if (bodySchema) {
    const schema = resolve(doc, bodySchema);
    for (const [name, prop] of Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>)) {
      for (const { value, breaks } of invalidValues(doc, prop))
        out.push({
          ...base,
          what: `body.${name}=${JSON.stringify(value).slice(0, 40)} breaks ${breaks}`,
          param: name,
          body: { ...(base.body as object), [name]: value },
        });
    }
  }
  return out;
}

describe("the OpenAPI document as the contract", async () => {
  const { doc, ops } = await operations();

  it("lists every served operation, each with a scope or none, and lists as comma arrays", () => {
    expect(ops.length).toBeGreaterThan(30);
    for (const o of ops) {
      for (const p of o.op.parameters ?? []) {
        if (resolve(doc, p.schema).type === "array") {
          expect({ [`${o.op.operationId} ${p.name}`]: [p.style, p.explode] }).toEqual({
            [`${o.op.operationId} ${p.name}`]: ["form", false],
          });
        }
      }
    }
  });

  it("states in its descriptions every rule the table below lets a request break", () => {
    const byId = new Map(ops.map((o) => [o.op.operationId as string, o.op]));
    for (const [id, rules] of Object.entries(DOCUMENTED_RULES)) {
      const op = byId.get(id);
      expect(op, id).toBeDefined();
      for (const [param, words] of Object.entries(rules)) {
        const paramText =
          (op?.parameters ?? []).find((p: JsonSchema) => p.name === param)?.schema?.description ?? "";
        const bodyText = JSON.stringify(op?.requestBody ?? {});
        const described = `${op?.description ?? ""} ${paramText} ${bodyText} ${JSON.stringify(doc.components ?? {})}`;
        expect(described.includes(words), `${id}: ${param} "${words}"`).toBe(true);
      }
    }
  });

  describe.each(ops.map((o) => [`${o.method.toUpperCase()} ${o.path}`, o] as const))("%s", (_, o) => {
    it("accepts what its schemas allow", async () => {
      const rules = DOCUMENTED_RULES[o.op.operationId] ?? {};
      for (const attempt of validAttempts(doc, o)) {
        const { status, body } = await send(o, attempt);
        expect(status, `${attempt.what}: ${JSON.stringify(body)}`).toBeLessThan(500);
        if (refusedAsInvalid(status, body)) {
          const allowed = Object.keys(rules).some((param) => namesParam(body, param));
          expect(allowed, `${attempt.what} refused: ${JSON.stringify(body)}`).toBe(true);
        }
      }
    });

    it("refuses what breaks a schema rule with 400 naming the parameter", async () => {
      for (const attempt of invalidAttempts(doc, o)) {
        const { status, body } = await send(o, attempt);
        expect(status, `${attempt.what}: ${JSON.stringify(body)}`).toBe(400);
        expect(refusedAsInvalid(status, body), `${attempt.what}: ${JSON.stringify(body)}`).toBe(true);
        expect(namesParam(body, attempt.param), `${attempt.what}: ${JSON.stringify(body)}`).toBe(true);
      }
    });
  });
});
