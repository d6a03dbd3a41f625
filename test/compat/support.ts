import type { EventRecord } from "../../src/events/record";
import { call, consume, eventMessage, json } from "../helpers";

/** The seed documents (../shared/seeds), as the user supplied them. */
const seeds = import.meta.glob<string>("../../../shared/seeds/*.txt", {
  query: "?raw",
  import: "default",
  eager: true,
});
export function seedText(prefix: string): string {
  const entry = Object.entries(seeds).find(([path]) => path.split("/").pop()?.startsWith(prefix));
  if (!entry) throw new Error(`missing seed ${prefix}`);
  return entry[1];
}

/** The first JSON object in `text` after `marker` (balanced braces; strings respected). */
export function jsonAfter(text: string, marker: string): any {
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`marker not in seed: ${marker}`);
  const start = text.indexOf("{", at + marker.length);
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === "\\") i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "{") depth++;
    else if (ch === "}" && --depth === 0) return JSON.parse(text.slice(start, i + 1));
  }
  throw new Error(`unbalanced JSON after ${marker}`);
}

export async function seedEvents(records: EventRecord[]) {
  for (let i = 0; i < records.length; i += 100)
    await consume(records.slice(i, i + 100).map((e) => eventMessage(e)));
}

export async function getJson(path: string, headers: Record<string, string> = {}) {
  const res = await call("GET", path, { headers });
  return { res, body: await json(res) };
}
