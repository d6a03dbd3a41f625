import { validationError } from "../lib/errors";

/** The query string as a map; unknown or repeated parameters are a 400 naming them. */
export function knownParams<K extends string>(url: string, known: readonly K[]): Partial<Record<K, string>> {
  const out: Partial<Record<K, string>> = {};
  for (const [name, value] of new URL(url).searchParams) {
    if (!(known as readonly string[]).includes(name))
      throw validationError(name, `unknown parameter ${name}`);
    if (out[name as K] !== undefined) throw validationError(name, `${name} may be given once`);
    out[name as K] = value;
  }
  return out;
}

export function intParam(
  param: string,
  value: string | undefined,
  min: number,
  max: number,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,9}$/.test(value) || Number(value) < min || Number(value) > max)
    throw validationError(param, `${param} must be an integer from ${min} to ${max}`);
  return Number(value);
}
