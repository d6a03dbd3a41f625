/**
 * Values generated from the OpenAPI document's JSON schemas, for the contract test: values the
 * schema allows, and values that break exactly one of its rules. A small generator written for the
 * keywords the document uses (type, enum, format, pattern, minLength/maxLength, minimum/maximum,
 * minItems/maxItems, properties/required, anyOf/oneOf, $ref); anything else is a test failure, so
 * a new keyword in the document is noticed rather than silently skipped.
 */

export type JsonSchema = Record<string, any>;

export interface Document {
  components?: { schemas?: Record<string, JsonSchema> };
}

const HOUR_MS = 3_600_000;

/** Strings tried in turn for a string schema without examples or format; the first that fits is used. */
const STRING_CANDIDATES = ["example", "example.com", "Example_1", "a", "abc-1", "x.y"];
/** Strings tried in turn to break a pattern. */
const PATTERN_BREAKERS = ["", " ", "not valid!", "\u0001", "@@", "a b"];

export function resolve(doc: Document, schema: JsonSchema): JsonSchema {
  const ref = schema.$ref as string | undefined;
  if (!ref) return schema;
  const name = ref.replace("#/components/schemas/", "");
  const target = doc.components?.schemas?.[name];
  if (!target) throw new Error(`unresolved ${ref}`);
  return resolve(doc, target);
}

const typesOf = (schema: JsonSchema): string[] =>
  Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];

function fitsString(schema: JsonSchema, value: string): boolean {
  const length = [...value].length;
  if (schema.minLength !== undefined && length < schema.minLength) return false;
  if (schema.maxLength !== undefined && length > schema.maxLength) return false;
  if (schema.pattern !== undefined && !new RegExp(schema.pattern, "u").test(value)) return false;
  return true;
}

function validStrings(schema: JsonSchema): string[] {
  if (schema.enum) return schema.enum;
  if (schema.examples) return schema.examples;
  switch (schema.format) {
    case "date-time":
      return [new Date(Date.now() - HOUR_MS).toISOString()];
    case "email":
      return ["someone@example.com"];
    case "uri":
      return ["https://example.com/hooks/mailtrail"];
  }
  const fits = STRING_CANDIDATES.filter((s) => fitsString(schema, s));
  if (fits.length === 0) throw new Error(`no candidate fits ${JSON.stringify(schema)}: give it examples`);
  return fits.slice(0, 1);
}

/** Values the schema allows: its edges and a few representatives. */
export function validValues(doc: Document, raw: JsonSchema): unknown[] {
  const schema = resolve(doc, raw);
  if (schema.anyOf || schema.oneOf) return validValues(doc, (schema.anyOf ?? schema.oneOf)[0]);
  if (schema.enum) return schema.enum;
  const [type] = typesOf(schema).filter((t) => t !== "null");
  switch (type) {
    case "integer": {
      const min = schema.minimum ?? 0;
      const max = schema.maximum ?? min + 10;
      return [...new Set([min, max, Math.floor((min + max) / 2)])];
    }
    case "number":
      return [schema.minimum ?? 0.5];
    case "boolean":
      return [true, false];
    case "string":
      return validStrings(schema);
    case "array": {
      const items = validValues(doc, schema.items);
      const out: unknown[][] = [items.slice(0, 1)];
      const most = Math.min(schema.maxItems ?? 3, items.length);
      if (most > 1) out.push(items.slice(0, most));
      return out;
    }
    case "object":
      return [minimalObject(doc, schema)];
  }
  throw new Error(`cannot generate from ${JSON.stringify(schema)}`);
}

/** An object with its required properties only, each at its first valid value. */
export function minimalObject(doc: Document, raw: JsonSchema): Record<string, unknown> {
  const schema = resolve(doc, raw);
  if (schema.anyOf || schema.oneOf) return minimalObject(doc, (schema.anyOf ?? schema.oneOf)[0]);
  const out: Record<string, unknown> = {};
  for (const name of (schema.required as string[] | undefined) ?? []) {
    out[name] = validValues(doc, schema.properties[name])[0];
  }
  return out;
}

/** Values that break one rule of the schema, each with the rule it breaks. */
export function invalidValues(doc: Document, raw: JsonSchema): { value: unknown; breaks: string }[] {
  const schema = resolve(doc, raw);
  if (schema.anyOf || schema.oneOf) return [];
  const out: { value: unknown; breaks: string }[] = [];
  if (schema.enum) return [{ value: "not-one-of-them", breaks: "enum" }];
  const [type] = typesOf(schema).filter((t) => t !== "null");
  switch (type) {
    case "integer":
      out.push({ value: "abc", breaks: "type" }, { value: 1.5, breaks: "integer" });
      if (schema.minimum !== undefined) out.push({ value: schema.minimum - 1, breaks: "minimum" });
      if (schema.maximum !== undefined) out.push({ value: schema.maximum + 1, breaks: "maximum" });
      break;
    case "boolean":
      out.push({ value: "maybe", breaks: "type" });
      break;
    case "string": {
      if (schema.maxLength !== undefined)
        out.push({ value: "x".repeat(schema.maxLength + 1), breaks: "maxLength" });
      if (schema.minLength) out.push({ value: "", breaks: "minLength" });
      if (schema.pattern !== undefined) {
        const breaker = PATTERN_BREAKERS.find((s) => !new RegExp(schema.pattern, "u").test(s));
        if (breaker !== undefined) out.push({ value: breaker, breaks: "pattern" });
      }
      const format = { "date-time": "not-a-timestamp", email: "not-an-address", uri: "not a uri" }[
        schema.format as string
      ];
      if (format) out.push({ value: format, breaks: "format" });
      break;
    }
    case "array": {
      const items = validValues(doc, schema.items);
      if (schema.maxItems !== undefined) {
        const distinct = distinctItems(schema.items, items, schema.maxItems + 1, doc);
        if (distinct.length > schema.maxItems) out.push({ value: distinct, breaks: "maxItems" });
      }
      for (const bad of invalidValues(doc, schema.items)) {
        // A lone empty string in a comma list is the empty list; its rule is minItems or the item's.
        out.push({ value: [items[0], bad.value], breaks: `items.${bad.breaks}` });
      }
      break;
    }
  }
  return out;
}

/** `count` distinct values the item schema allows (derived from its first one when it has few). */
function distinctItems(raw: JsonSchema, items: unknown[], count: number, doc: Document): unknown[] {
  const schema = resolve(doc, raw);
  if (items.length >= count) return items.slice(0, count);
  if (typesOf(schema).includes("string") && !schema.enum) {
    const base = String(items[0]);
    const made = Array.from({ length: count }, (_, i) => `${base}${i}`).filter((s) => fitsString(schema, s));
    return made;
  }
  if (typesOf(schema).includes("integer") && !schema.enum) {
    const min = schema.minimum ?? 0;
    return Array.from({ length: count }, (_, i) => min + i).filter(
      (n) => schema.maximum === undefined || n <= schema.maximum,
    );
  }
  return items;
}

/** A value as a query string carries it: arrays comma-joined (`style: form`, `explode: false`). */
export const queryText = (value: unknown): string =>
  Array.isArray(value) ? value.map(String).join(",") : String(value);
