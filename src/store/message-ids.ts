/**
 * The (account_id, message_id) → email_id map (src/db/message-ids.ts) as the queue consumer writes
 * it: one statement per registration chunk and one per event chunk, in the consumer's D1 batch, each
 * reading the same JSON array of rows as its neighbours. `ON CONFLICT DO NOTHING`, so a row is written
 * once per (account, message_id, email_id) and a redelivery writes nothing.
 *
 * Every message_id an event can carry is mapped: its own (SES common headers or messageId), or its
 * registration's, copied at insert time (the event statement joins `messages` the same way) or later
 * by the registration back-fill (the registration statement maps that value). So the map lists every
 * email of a Message-ID, and GET /v1/events?message_id= can read those emails' events through
 * events_email_idx, keeping `message_id = ?` as a check.
 */

import { jsonField as j, registrationOf } from "./fragments";

/** Bound to the consumer's registration rows (`account_id`, `email_id`, `message_id`, `registered_at`). */
export const MAP_REGISTERED_MESSAGE_IDS = `
INSERT INTO message_ids (account_id, message_id, email_id, first_seen_at)
SELECT ${j("account_id")}, ${j("message_id")}, ${j("email_id")}, MIN(${j("registered_at")})
FROM json_each(?1) WHERE ${j("message_id")} IS NOT NULL GROUP BY 1, 2, 3
ON CONFLICT DO NOTHING`;

/** Bound to the consumer's event rows; the registration fills a message_id the event lacks. */
export const MAP_EVENT_MESSAGE_IDS = `
INSERT INTO message_ids (account_id, message_id, email_id, first_seen_at)
SELECT e.account_id, COALESCE(e.message_id, m.message_id), e.email_id, MIN(e.occurred_at)
FROM (SELECT ${j("account_id")} AS account_id, ${j("email_id")} AS email_id, ${j("message_id")} AS message_id,
             ${j("occurred_at")} AS occurred_at FROM json_each(?1)) AS e
LEFT JOIN ${registrationOf("e")}
WHERE COALESCE(e.message_id, m.message_id) IS NOT NULL
GROUP BY 1, 2, 3
ON CONFLICT DO NOTHING`;
