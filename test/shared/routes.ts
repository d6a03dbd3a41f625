/**
 * Every /v1 route, one line each, for the shared tables (security.test.ts, body-rejection.test.ts).
 * A new route adds its line here; the tables check that the OpenAPI document lists nothing else.
 */
export interface V1Route {
  method: "GET" | "POST" | "PUT" | "DELETE" | "PATCH";
  /** The OpenAPI path, and the path to call (parameters filled in). */
  doc: string;
  path: string;
  scope: string;
  /** A valid JSON body, for the routes that take one. */
  body?: unknown;
  /** A JSON body with several faults, each naming its own top-level field. */
  faults?: unknown;
  /** How a request names another account: in the query (`account_id=`) or the body; null: admin-only route. */
  account: "query" | "body" | null;
}

export const V1_ROUTES: V1Route[] = [
  { method: "GET", doc: "/v1/events", path: "/v1/events", scope: "events:read", account: "query" },
  {
    method: "GET",
    doc: "/v1/events/export",
    path: "/v1/events/export",
    scope: "events:read",
    account: "query",
  },
  { method: "GET", doc: "/v1/account", path: "/v1/account", scope: "events:read", account: "query" },
  {
    method: "PUT",
    doc: "/v1/accounts/{id}",
    path: "/v1/accounts/acct_shared_table",
    scope: "admin",
    body: { plan: "growth" },
    faults: { plan: 5, extra: true },
    account: null,
  },
  {
    method: "POST",
    doc: "/v1/messages",
    path: "/v1/messages",
    scope: "send",
    body: { messages: [{ email_id: "email_shared_table" }] },
    faults: { messages: [], account_id: "not an account id" },
    account: "body",
  },
  {
    method: "POST",
    doc: "/v1/messages/instrument",
    path: "/v1/messages/instrument",
    scope: "send",
    body: { email_id: "email_shared_table", recipient: "a@example.com", html: "<p>Hi</p>" },
    faults: { email_id: "", recipient: "not an address", html: "" },
    account: "body",
  },
  {
    method: "GET",
    doc: "/v1/suppressions",
    path: "/v1/suppressions",
    scope: "suppressions:read",
    account: "query",
  },
  {
    method: "GET",
    doc: "/v1/suppressions/{email}",
    path: "/v1/suppressions/a%40example.com",
    scope: "suppressions:read",
    account: "query",
  },
  {
    method: "PUT",
    doc: "/v1/suppressions/{email}",
    path: "/v1/suppressions/a%40example.com",
    scope: "suppressions:write",
    body: {},
    faults: { topic: "Not A Topic", account_id: "not an account id" },
    account: "query",
  },
  {
    method: "DELETE",
    doc: "/v1/suppressions/{email}",
    path: "/v1/suppressions/a%40example.com",
    scope: "suppressions:write",
    account: "query",
  },
  {
    method: "POST",
    doc: "/v1/suppressions/check",
    path: "/v1/suppressions/check",
    scope: "send",
    body: { emails: ["a@example.com"] },
    faults: { emails: [], topic: "Not A Topic" },
    account: "query",
  },
  {
    method: "POST",
    doc: "/v1/suppressions/imports",
    path: "/v1/suppressions/imports",
    scope: "suppressions:write",
    account: "query",
  },
  {
    method: "GET",
    doc: "/v1/suppressions/imports/{id}",
    path: "/v1/suppressions/imports/imp_00000000000000000000000000000000",
    scope: "suppressions:read",
    account: "query",
  },
  {
    method: "GET",
    doc: "/v1/suppressions/export",
    path: "/v1/suppressions/export",
    scope: "suppressions:read",
    account: "query",
  },
  {
    method: "POST",
    doc: "/v1/erasures",
    path: "/v1/erasures",
    scope: "suppressions:write",
    body: { email: "erased-shared-table@example.com" },
    faults: { email: "not an address", extra: true },
    account: "query",
  },
  {
    method: "GET",
    doc: "/v1/erasures/{id}",
    path: "/v1/erasures/era_00000000000000000000000000000000",
    scope: "suppressions:write",
    account: "query",
  },
  { method: "GET", doc: "/v1/admin/parked", path: "/v1/admin/parked", scope: "admin", account: null },
  { method: "GET", doc: "/v1/metrics", path: "/v1/metrics", scope: "events:read", account: "query" },
  {
    method: "GET",
    doc: "/v1/metrics/links",
    path: "/v1/metrics/links",
    scope: "events:read",
    account: "query",
  },
  { method: "GET", doc: "/v1/reputation", path: "/v1/reputation", scope: "events:read", account: "query" },
  {
    method: "POST",
    doc: "/v1/alerts",
    path: "/v1/alerts",
    scope: "alerts:write",
    body: { metric: "bounce_rate", threshold: 0.05, window: "24h" },
    faults: { metric: "spam_rate", threshold: 5, window: "2h" },
    account: "query",
  },
  { method: "GET", doc: "/v1/alerts", path: "/v1/alerts", scope: "events:read", account: "query" },
  {
    method: "GET",
    doc: "/v1/alerts/{id}",
    path: "/v1/alerts/alr_000000000000000000000000",
    scope: "events:read",
    account: "query",
  },
  {
    method: "PATCH",
    doc: "/v1/alerts/{id}",
    path: "/v1/alerts/alr_000000000000000000000000",
    scope: "alerts:write",
    body: { threshold: 0.1 },
    faults: { threshold: 5, window: "2h" },
    account: "query",
  },
  {
    method: "DELETE",
    doc: "/v1/alerts/{id}",
    path: "/v1/alerts/alr_000000000000000000000000",
    scope: "alerts:write",
    account: "query",
  },
  {
    method: "GET",
    doc: "/v1/alerts/{id}/history",
    path: "/v1/alerts/alr_000000000000000000000000/history",
    scope: "events:read",
    account: "query",
  },
  {
    method: "POST",
    doc: "/v1/webhooks",
    path: "/v1/webhooks",
    scope: "webhooks:write",
    body: { url: "https://hooks.example.com/mailtrail" },
    faults: { url: 5, event_types: ["email.nope"] },
    account: "query",
  },
  { method: "GET", doc: "/v1/webhooks", path: "/v1/webhooks", scope: "webhooks:read", account: "query" },
  {
    method: "GET",
    doc: "/v1/webhooks/{id}",
    path: "/v1/webhooks/whk_shared_table",
    scope: "webhooks:read",
    account: "query",
  },
  {
    method: "PATCH",
    doc: "/v1/webhooks/{id}",
    path: "/v1/webhooks/whk_shared_table",
    scope: "webhooks:write",
    body: { description: "shared table" },
    faults: { url: 5, status: "sometimes" },
    account: "query",
  },
  {
    method: "DELETE",
    doc: "/v1/webhooks/{id}",
    path: "/v1/webhooks/whk_shared_table",
    scope: "webhooks:write",
    account: "query",
  },
  {
    method: "POST",
    doc: "/v1/webhooks/{id}/secret",
    path: "/v1/webhooks/whk_shared_table/secret",
    scope: "webhooks:write",
    account: "query",
  },
  {
    method: "GET",
    doc: "/v1/webhooks/{id}/deliveries",
    path: "/v1/webhooks/whk_shared_table/deliveries",
    scope: "webhooks:read",
    account: "query",
  },
  {
    method: "POST",
    doc: "/v1/webhooks/{id}/replay",
    path: "/v1/webhooks/whk_shared_table/replay",
    scope: "webhooks:write",
    body: { event_ids: ["evt_0000000000000000"] },
    faults: { event_ids: "evt_x", extra: true },
    account: "query",
  },
];
