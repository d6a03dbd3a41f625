import type { WebhookEndpointRow } from "../db/webhooks";
import type { WebhookFilters } from "./schema";

/** The fields of an event that endpoint subscriptions look at (after enrichment). */
export interface MatchableEvent {
  type: string;
  topic: string | null;
  campaign: string | null;
  from_domain: string | null;
  /** JSON array text as stored, or the array. */
  tags: string | string[];
}

/** Parsed subscription of an endpoint, cached with the row. */
export interface Subscription {
  eventTypes: ReadonlySet<string> | null;
  filters: WebhookFilters;
}

export function subscriptionOf(row: Pick<WebhookEndpointRow, "eventTypes" | "filters">): Subscription {
  return {
    eventTypes: row.eventTypes === null ? null : new Set(JSON.parse(row.eventTypes) as string[]),
    filters: JSON.parse(row.filters) as WebhookFilters,
  };
}

/** Whether an endpoint wants an event: its type is subscribed and every given filter matches. */
export function matches(sub: Subscription, event: MatchableEvent): boolean {
  if (sub.eventTypes !== null && !sub.eventTypes.has(event.type)) return false;
  // Filters are about events (§8); an alert (§19) has none of their fields and goes by its type
  // alone. A suppression change keeps them: its topic is the entry's (suppressions/changes.ts).
  if (event.type.startsWith("alert.")) return true;
  const f = sub.filters;
  if (f.topic !== undefined && event.topic !== f.topic) return false;
  if (f.campaign !== undefined && event.campaign !== f.campaign) return false;
  if (f.domain !== undefined && event.from_domain !== f.domain) return false;
  if (f.tags !== undefined) {
    const tags = typeof event.tags === "string" ? (JSON.parse(event.tags) as string[]) : event.tags;
    if (!f.tags.some((t) => tags.includes(t))) return false;
  }
  return true;
}
