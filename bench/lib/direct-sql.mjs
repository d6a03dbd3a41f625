// The query baselines: each GET /v1/events case written by hand as the SQL one would write against
// this schema, using the best index it has (events_email_idx, events_recipient_idx or the clustered
// primary key), a row-value keyset and LIMIT n + 1. Written independently of src/events/query.ts so
// that the comparison can catch the API reading rows a direct query would not.
//
// The keyset is the upper bound of the range: on a later page the cursor replaces the window's end
// (every row after the first page is older than the cursor anyway). SQLite takes one upper bound for
// an index range; given both `occurred_at < end` and the cursor, it ranges on the end and filters
// the cursor, so page n reads about n x limit rows. With the cursor as the bound, every page reads
// about limit + 1.

/** SQL and parameters for one page. `params` are the API's query parameters (strings). */
export function directPageSql(accountId, window, params, cursor, limit) {
  const where = ["account_id = ?", "occurred_at >= ?"];
  const args = [accountId, window.start];
  const countWhere = ["account_id = ?", "occurred_at >= ?", "occurred_at < ?"];
  const countArgs = [accountId, window.start, window.end];
  if (cursor) {
    where.push("(occurred_at, id) < (?, ?)");
    args.push(cursor.occurred_at, cursor.id);
  } else {
    where.push("occurred_at < ?");
    args.push(window.end);
  }
  const filter = (sql, ...values) => {
    where.push(sql);
    args.push(...values);
    countWhere.push(sql);
    countArgs.push(...values);
  };
  const eq = (column, value) => {
    if (value !== undefined) filter(`${column} = ?`, value);
  };
  eq("email_id", params.email_id);
  eq("recipient", params.recipient?.toLowerCase());
  eq("message_id", params.message_id);
  eq("topic", params.topic);
  eq("template_id", params.template_id);
  eq("campaign", params.campaign);
  eq("from_domain", params.domain?.toLowerCase());
  if (params.event_type) {
    const types = params.event_type.split(",");
    filter(`type IN (${types.map(() => "?").join(", ")})`, ...types);
  }
  if (params.tags) {
    const tags = params.tags.split(",");
    filter(
      `EXISTS (SELECT 1 FROM json_each(events.tags) WHERE value IN (${tags.map(() => "?").join(", ")}))`,
      ...tags,
    );
  }
  // The most selective index the schema has for this filter set; otherwise the clustered key. A
  // Message-ID alone goes through the message_ids map to its emails, then events_email_idx.
  const byMessage =
    params.message_id !== undefined && params.email_id === undefined && params.recipient === undefined;
  if (byMessage)
    filter(
      "email_id IN (SELECT email_id FROM message_ids WHERE account_id = ? AND message_id = ?)",
      accountId,
      params.message_id,
    );
  const index =
    params.email_id !== undefined || byMessage
      ? " INDEXED BY events_email_idx"
      : params.recipient !== undefined
        ? " INDEXED BY events_recipient_idx"
        : "";
  const countSql = `SELECT COUNT(*) AS total FROM events${index} WHERE ${countWhere.join(" AND ")}`;
  args.push(limit + 1);
  return {
    page: {
      sql: `SELECT * FROM events${index} WHERE ${where.join(" AND ")} ORDER BY occurred_at DESC, id DESC LIMIT ?`,
      params: args,
    },
    count: { sql: countSql, params: countArgs },
  };
}
