import { SUPPRESSION_REASONS, type SuppressionReason } from "../pipeline/messages";
import { normalizeEmail } from "./address";

/**
 * The file formats of suppression import and export (SPEC §10): pure functions, table-tested.
 *
 * CSV is RFC 4180 (a header row; fields optionally in double quotes, a quote inside doubled, commas
 * and line breaks allowed inside quotes; CRLF or LF). The parser is hand-written rather than
 * csv-parse because the import resumes at a byte offset in a file kept in R2, one chunk per queue
 * message: it needs to know where each record starts and ends in bytes and lines, which a
 * streaming library hides, and one record at a time is a 40-line state machine (checked against
 * csv-parse in test/suppressions/import-format.test.ts). NDJSON is one JSON object a line.
 */

/** The fields a row may carry. `email_hash` stands in for an erased address (an export's hashed entries). */
export const IMPORT_FIELDS = [
  "email",
  "reason",
  "topic",
  "expires_at",
  "suppressed_at",
  "email_id",
  "email_hash",
] as const;
export type ImportField = (typeof IMPORT_FIELDS)[number];
/** The export's columns: the import's, plus the entry's id (ignored on import). */
export const EXPORT_COLUMNS = [
  "email",
  "reason",
  "topic",
  "expires_at",
  "id",
  "email_id",
  "suppressed_at",
  "email_hash",
] as const;

/**
 * Header spellings of the major providers' suppression exports, folded (lowercase, without spaces,
 * `_`, `-` and `.`) onto our fields. Sources:
 * - Mailgun bounce, unsubscribe and complaint imports/exports: `address`, `code`, `error`,
 *   `created_at` (documentation.mailgun.com, "Import list of bounces", POST /v3/{domain}/bounces/import).
 * - Amazon SES account-level suppression list (SESv2 SuppressedDestination / ListSuppressedDestinations):
 *   `EmailAddress`, `Reason` (BOUNCE | COMPLAINT), `LastUpdateTime` (docs.aws.amazon.com, API_SuppressedDestination).
 * - Postmark suppressions (postmark-dotnet / postmark-php wiki "Managing Suppressions"): `EmailAddress`,
 *   `SuppressionReason` (HardBounce | SpamComplaint | ManualSuppression), `Origin`, `CreatedAt`.
 * - SendGrid suppression CSV exports (bounces, blocks, spam reports, unsubscribes): `email`, `created`
 *   (Unix seconds), `reason`, `status`.
 * - Brevo blocked contacts (GET /smtp/blockedContacts): `email`, `reason`, `blockedAt`.
 * - Telnyx email suppressions export: `to`, `reason`, `created_at`, `expires_at`
 *   (developers.telnyx.com, "Export suppressions as CSV").
 * Columns not named here (Mailgun's `code`/`error`, Postmark's `Origin`, SendGrid's `status`, an
 * export's `id`) are ignored.
 */
const HEADER_ALIASES: Record<string, ImportField> = {
  email: "email",
  emailaddress: "email",
  address: "email",
  recipient: "email",
  to: "email",
  reason: "reason",
  suppressionreason: "reason",
  topic: "topic",
  expiresat: "expires_at",
  expires: "expires_at",
  suppressedat: "suppressed_at",
  createdat: "suppressed_at",
  created: "suppressed_at",
  lastupdatetime: "suppressed_at",
  blockedat: "suppressed_at",
  emailid: "email_id",
  emailhash: "email_hash",
};

/** Reason spellings of the same providers, folded, onto ours (SES BOUNCE/COMPLAINT, Postmark, SendGrid…). */
const REASON_ALIASES: Record<string, SuppressionReason> = {
  manual: "manual",
  manualsuppression: "manual",
  customer: "manual",
  hardbounce: "hard_bounce",
  bounce: "hard_bounce",
  bounced: "hard_bounce",
  bounces: "hard_bounce",
  permanent: "hard_bounce",
  softbounce: "soft_bounce",
  transient: "soft_bounce",
  complaint: "complaint",
  complaints: "complaint",
  spamcomplaint: "complaint",
  spamreport: "complaint",
  spamreports: "complaint",
  unsubscribe: "unsubscribe",
  unsubscribed: "unsubscribe",
  unsubscribes: "unsubscribe",
  listunsubscribe: "unsubscribe",
};

const fold = (s: string) => s.toLowerCase().replace(/[\s_.-]/g, "");

/** Column index of each field a CSV header names; an error message when it has no email column. */
export function mapHeader(
  fields: string[],
): { columns: Partial<Record<ImportField, number>> } | { error: string } {
  const columns: Partial<Record<ImportField, number>> = {};
  fields.forEach((name, i) => {
    const field = HEADER_ALIASES[fold(name.replace(/^\uFEFF/, ""))];
    if (field !== undefined && columns[field] === undefined) columns[field] = i;
  });
  if (columns.email === undefined && columns.email_hash === undefined) {
    return { error: "the header row names no email column (email, email_address, address, recipient or to)" };
  }
  return { columns };
}

/**
 * Splits one CSV record (which may span lines) into its fields; null when a quote is left open
 * (the record continues on the next line). A quote in the middle of an unquoted field is kept as
 * text, as most readers do.
 */
export function parseCsvRecord(text: string): string[] | null {
  const fields: string[] = [];
  let field = "";
  let quoted = false;
  let atStart = true;
  for (let i = 0; i < text.length; i += 1) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i += 1;
        } else quoted = false;
      } else field += ch;
    } else if (ch === '"' && atStart) {
      quoted = true;
      atStart = false;
    } else if (ch === ",") {
      fields.push(field);
      field = "";
      atStart = true;
    } else {
      field += ch;
      atStart = false;
    }
  }
  if (quoted) return null;
  fields.push(field);
  return fields;
}

/** Quotes a CSV field when it needs it (RFC 4180). */
export const csvField = (value: string) =>
  /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;

export interface ImportRow {
  /** The key column: the address, or `#` + hash for an erased one. */
  email: string;
  emailHash: string | null;
  reason: SuppressionReason;
  /** '' for every topic. */
  topic: string;
  expiresAt: number | null;
  suppressedAt: number;
  emailId: string | null;
}

const TOPIC = /^[a-z0-9_.-]{1,64}$/;
const HASH = /^[0-9a-f]{64}$/;

/** A timestamp cell: ISO 8601, RFC 2822 (Mailgun), or Unix seconds (SendGrid's `created`). */
function timestamp(value: string): number | null {
  if (/^\d{9,11}$/.test(value)) return Number(value) * 1000;
  if (/^\d{12,14}$/.test(value)) return Number(value);
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? ms : null;
}

/**
 * Validates one row's fields (an absent or empty cell is an absent field). `now` is the import's
 * time: the default suppressed_at, and the reference for expires_at, which must be at least 60 s
 * ahead (KV's minimum). Returns the row or the reason it is rejected.
 */
export function parseImportRow(
  values: Partial<Record<ImportField, unknown>>,
  now: number,
): { row: ImportRow } | { error: string } {
  const text = (field: ImportField): string | undefined => {
    const v = values[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") return String(v);
    const t = v.trim();
    return t === "" ? undefined : t;
  };
  const rawEmail = text("email");
  const rawHash = text("email_hash");
  let email: string;
  let emailHash: string | null = null;
  if (rawEmail !== undefined) {
    const normalized = normalizeEmail(rawEmail);
    if (normalized === null) return { error: "email is not a valid address" };
    email = normalized;
  } else if (rawHash !== undefined) {
    if (!HASH.test(rawHash)) return { error: "email_hash must be 64 lowercase hex digits" };
    emailHash = rawHash;
    email = `#${rawHash}`;
  } else return { error: "email is missing" };

  const rawReason = text("reason");
  let reason: SuppressionReason = "manual";
  if (rawReason !== undefined) {
    const mapped = REASON_ALIASES[fold(rawReason)];
    if (mapped === undefined) return { error: `reason must be one of ${SUPPRESSION_REASONS.join(", ")}` };
    reason = mapped;
  }
  const topic = text("topic") ?? "";
  if (topic !== "" && !TOPIC.test(topic)) return { error: "topic must be 1-64 characters of [a-z0-9_.-]" };

  let expiresAt: number | null = null;
  const rawExpires = text("expires_at");
  if (rawExpires !== undefined) {
    expiresAt = timestamp(rawExpires);
    if (expiresAt === null) return { error: "expires_at must be an ISO 8601 timestamp" };
    if (expiresAt < now + 60_000) return { error: "expires_at must be at least 60 seconds in the future" };
  }
  let suppressedAt = now;
  const rawAt = text("suppressed_at");
  if (rawAt !== undefined) {
    const at = timestamp(rawAt);
    if (at === null) return { error: "suppressed_at must be an ISO 8601 timestamp" };
    suppressedAt = at;
  }
  const emailId = text("email_id") ?? null;
  if (emailId !== null && emailId.length > 256) return { error: "email_id must be at most 256 characters" };
  return { row: { email, emailHash, reason, topic, expiresAt, suppressedAt, emailId } };
}

/** An NDJSON line as a row's values (the same field names and spellings as CSV headers). */
export function ndjsonValues(line: string): Partial<Record<ImportField, unknown>> | { error: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return { error: "not valid JSON" };
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
    return { error: "not a JSON object" };
  const values: Partial<Record<ImportField, unknown>> = {};
  for (const [name, value] of Object.entries(parsed)) {
    const field = HEADER_ALIASES[fold(name)];
    if (field !== undefined && values[field] === undefined) values[field] = value;
  }
  return values;
}
