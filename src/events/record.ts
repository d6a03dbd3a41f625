/**
 * The event's vocabulary for the capabilities above db/: its one declaration lives in
 * db/event-record.ts (the root every shape is derived from); this module re-exports it and adds
 * the address rules producers use to fill it.
 */
export {
  type Bot,
  blankEvent,
  botSchema,
  DIMENSIONS,
  EVENT_TYPES,
  type EventBase,
  type EventRecord,
  type EventType,
  eventRecordSchema,
  eventTypeSchema,
  type Geo,
  geoSchema,
  MAX_TAGS,
  TAG_PATTERN,
  TOPIC_PATTERN,
  type Tracking,
  tagSchema,
  topicSchema,
  trackingSchema,
} from "../db/event-record";

/** The bare address of a From header value (`"News" <news@x.com>` → `news@x.com`), or null. */
export function bareAddress(from: string | null | undefined): string | null {
  if (!from) return null;
  const angle = /<([^<>\s]+@[^<>\s]+)>/.exec(from);
  const candidate = (angle?.[1] ?? from).trim();
  return /^[^\s@<>]+@[^\s@<>]+$/.test(candidate) ? candidate : null;
}

/** The lowercased domain of an address, or null. */
export function domainOf(address: string | null | undefined): string | null {
  if (!address) return null;
  const at = address.lastIndexOf("@");
  return at > 0 && at < address.length - 1 ? address.slice(at + 1).toLowerCase() : null;
}
