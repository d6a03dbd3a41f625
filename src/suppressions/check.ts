import { hashedKey } from "../db/suppressions";
import type { Env } from "../env";
import { blankEvent } from "../events/record";
import { ApiError } from "../lib/errors";
import { eventId } from "../lib/ids";
import { enqueue } from "../pipeline/enqueue";
import type { QueueMessage, SuppressionReason } from "../pipeline/messages";
import { erasureHashes } from "./erasure-hash";
import { isLive, type MirrorEntry, mirrorKey, readMirrorEntries } from "./mirror";

/**
 * POST /v1/suppressions/check: the send-time lookup. It reads only the KV mirror (one multi-key get
 * per 100 addresses), never D1, so it stays fast at the edge.
 */

export interface CheckResult {
  email: string;
  suppressed: boolean;
  reason: SuppressionReason | null;
}

/**
 * The entry that suppresses a send: an every-topic entry first (it is the broader reason), else the
 * entry for the send's topic. A send without a topic is suppressed only by every-topic entries. An
 * entry past its expires_at no longer suppresses, to the millisecond (KV drops the key a little later).
 */
export function suppressingEntry(
  entries: MirrorEntry[] | null,
  topic: string | null,
  now = Date.now(),
): MirrorEntry | null {
  if (!Array.isArray(entries)) return null;
  const live = entries.filter((e) => isLive(e, now));
  return (
    live.find((e) => e.topic === null) ??
    (topic === null ? undefined : live.find((e) => e.topic === topic)) ??
    null
  );
}

/** One result per requested address, in request order (duplicates answered each time). */
export async function checkAddresses(
  env: Env,
  accountId: string,
  emails: string[],
  topic: string | null,
): Promise<CheckResult[]> {
  // An erased address is kept under its hash (SPEC §20): each address is looked up under both keys.
  const hashes = await erasureHashes(env, emails);
  const hashKey = (i: number) => {
    const hash = hashes[i];
    return hash === null || hash === undefined ? null : mirrorKey(accountId, hashedKey(hash));
  };
  let mirror: Map<string, MirrorEntry[] | null>;
  try {
    mirror = await readMirrorEntries(env, [
      ...emails.map((email) => mirrorKey(accountId, email)),
      ...emails.flatMap((_, i) => hashKey(i) ?? []),
    ]);
  } catch (err) {
    // Answering "not suppressed" on a failed read would let a send through: fail loudly instead.
    throw new ApiError("unavailable", "the suppression list could not be read; retry", { cause: err });
  }
  const now = Date.now();
  return emails.map((email, i) => {
    const hk = hashKey(i);
    const entries = [
      ...(mirror.get(mirrorKey(accountId, email)) ?? []),
      ...((hk === null ? null : mirror.get(hk)) ?? []),
    ];
    const entry = suppressingEntry(entries, topic, now);
    return { email, suppressed: entry !== null, reason: entry ? (entry.reason as SuppressionReason) : null };
  });
}

/**
 * Records `email.suppressed` for each suppressed address of one email (its email_id), through the
 * queue like every event. The id is deterministic in (account, email_id, address), so a queue
 * redelivery or a repeated check of the same email names the same event, and the consumer stores it
 * once (it skips an email.suppressed id already stored for the email; see queue/consumer.ts).
 */
export async function recordSuppressedSends(
  env: Env,
  accountId: string,
  emailId: string,
  results: CheckResult[],
  topic: string | null,
  now: number,
): Promise<void> {
  const suppressed = [...new Set(results.filter((r) => r.suppressed).map((r) => r.email))];
  const messages: QueueMessage[] = await Promise.all(
    suppressed.map(async (email) => ({
      type: "event" as const,
      event: {
        ...blankEvent({
          id: await eventId(accountId, emailId, email, "suppressed"),
          account_id: accountId,
          type: "email.suppressed",
          occurred_at: now,
          email_id: emailId,
          recipient: email,
        }),
        topic,
      },
    })),
  );
  await enqueue(env, messages);
}
