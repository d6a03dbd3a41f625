import type * as z from "zod";
import { ApiError, type FieldError } from "./errors";

/**
 * The one validation hook. Every route's path, query and JSON body (lib/http.ts parseJsonBody) are
 * checked against the zod schemas its OpenAPI description shows (lib/openapi.ts `route()` calls
 * them with those schemas), and every
 * fault becomes the SPEC §4 error: `param` names the parameter or top-level body field, and
 * `errors[]` lists every fault when there are several.
 */

type Where = "query" | "path" | "body";

/** One fault, and how it reads as the error's message when it comes first. */
type Fault = FieldError & { headline: string };

function fault(where: Where, issue: z.core.$ZodIssue): Fault {
  const top = issue.path[0];
  const param = typeof top === "string" ? top : typeof top === "number" ? String(top) : where;
  if (where === "body") {
    const at = issue.path.length > 1 ? `${issue.path.map(String).join(".")}: ` : "";
    const message = `${at}${issue.message}`;
    return { param, message, headline: param === "body" ? message : `${param}: ${message}` };
  }
  // Parameter schemas (lib/params.ts) word their messages as predicates of the parameter.
  const message = `${param} ${issue.message}`;
  return { param, message, headline: message };
}

const plain = (param: string, message: string): Fault => ({ param, message, headline: message });

function toApiError(faults: Fault[], fallback: string): ApiError {
  const first = faults[0];
  if (!first) return new ApiError("validation_error", fallback);
  return new ApiError("validation_error", first.headline, {
    param: first.param,
    ...(faults.length > 1 ? { errors: faults.map(({ param, message }) => ({ param, message })) } : {}),
  });
}

/** Turns zod issues into the SPEC §4 error: `param` is the top-level body field or the parameter. */
export function zodToApiError(error: z.ZodError, where: Where = "body"): ApiError {
  return toApiError(
    error.issues.map((issue) => fault(where, issue)),
    "the request is invalid",
  );
}

/**
 * A query's schema: an object of parameters, or one whose values are prepared first as a whole
 * (`z.preprocess(fn, z.object(…))`, e.g. SparkPost's lists split at the request's own `delimiter`).
 */
export type QuerySchema = z.ZodObject | z.ZodPreprocess<z.ZodObject>;

/** The parameters a query schema names. */
export function queryShape(schema: QuerySchema): Record<string, z.ZodType> {
  return "shape" in schema ? schema.shape : schema.def.out.shape;
}

/**
 * Query parameters against their schema. A parameter the schema does not name, or one given twice,
 * is a fault like any other: a misspelt filter never silently widens a read or a delete.
 */
export function parseQuery<S extends QuerySchema>(schema: S, params: URLSearchParams): z.output<S> {
  const shape = queryShape(schema);
  const raw: Record<string, string> = {};
  const faults: Fault[] = [];
  for (const [name, value] of params) {
    if (!Object.hasOwn(shape, name)) faults.push(plain(name, `unknown parameter ${name}`));
    else if (Object.hasOwn(raw, name)) faults.push(plain(name, `${name} may be given once`));
    else raw[name] = value;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) faults.push(...parsed.error.issues.map((issue) => fault("query", issue)));
  if (faults.length > 0) throw toApiError(faults, "the query is invalid");
  return parsed.data as z.output<S>;
}

/** Path parameters (Hono has percent-decoded them) against their schema. */
export function parsePath<S extends z.ZodObject>(schema: S, params: Record<string, string>): z.output<S> {
  const parsed = schema.safeParse(params);
  if (!parsed.success) throw zodToApiError(parsed.error, "path");
  return parsed.data;
}

/** A value against its schema, faults as the SPEC §4 error. */
export function parseValue<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw zodToApiError(parsed.error);
  return parsed.data;
}
