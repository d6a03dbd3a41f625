/** Structured JSON log lines; every line a request handles carries its request id. */
export type LogLevel = "debug" | "info" | "warn" | "error";

export function log(level: LogLevel, msg: string, fields: Record<string, unknown> = {}): void {
  const line = JSON.stringify({ level, msg, time: new Date().toISOString(), ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}

/** The message and name of an unknown thrown value, never its stack (logs may leave the account). */
export function describeError(err: unknown): { error: string; error_name?: string } {
  if (err instanceof Error) return { error: err.message, error_name: err.name };
  return { error: String(err) };
}
