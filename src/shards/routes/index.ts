import { requireScope } from "../../auth/middleware";
import { type App, BEARER, bodyErrors, commonErrors, jsonContent, route } from "../../lib/openapi";
import { getPlacement, putPlacement } from "../placements";
import { shardStats } from "../stats";
import { accountPath, placementSchema, putPlacementBody, shardListSchema, tags } from "./schema";

/** The shard routes of SPEC §17 (`admin`). */
export function registerShardRoutes(app: App): void {
  route(
    app,
    {
      method: "put",
      path: "/v1/admin/placements/{account_id}",
      operationId: "putPlacement",
      summary: "Place an account on event shards (admin)",
      description:
        "New writes go to `shards` at once; no row is copied. Reads merge the previous placement until it " +
        "holds nothing of the account (after its retention, or the rollups' 400 days), when the scheduled work " +
        "drops `previous`. The account's suppressions move in this request. Other isolates follow within 60 s. " +
        "The same list again changes nothing.",
      tags,
      security: BEARER,
      request: {
        params: accountPath,
        body: { content: { "application/json": { schema: putPlacementBody } }, required: true },
      },
      responses: { 200: jsonContent(placementSchema, "The placement"), ...commonErrors, ...bodyErrors },
    },
    requireScope("admin"),
    async (c, { params, body }) => c.json(await putPlacement(c.env, params.account_id, body.shards)),
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/admin/placements/{account_id}",
      operationId: "getPlacement",
      summary: "An account's placement (admin)",
      description: "For an account without a placement, `shards` is its hashed shard alone.",
      tags,
      security: BEARER,
      request: { params: accountPath },
      responses: { 200: jsonContent(placementSchema, "The placement"), ...commonErrors },
    },
    requireScope("admin"),
    async (c, { params }) => c.json(await getPlacement(c.env, params.account_id)),
  );

  route(
    app,
    {
      method: "delete",
      path: "/v1/admin/placements/{account_id}",
      operationId: "deletePlacement",
      summary: "Return an account to its hashed shard (admin)",
      description:
        "Moves the way `PUT` does: the shards it leaves become `previous` until they hold nothing of it.",
      tags,
      security: BEARER,
      request: { params: accountPath },
      responses: { 200: jsonContent(placementSchema, "The placement"), ...commonErrors },
    },
    requireScope("admin"),
    async (c, { params }) => c.json(await putPlacement(c.env, params.account_id, null)),
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/admin/shards",
      operationId: "listShards",
      summary: "Event shards, their load and size (admin)",
      description:
        "Every bound `EVENTS_i`: whether it takes new accounts, accounts and events on it (counted up to a " +
        "budget, estimated beyond it and flagged), and its size as D1 reports it against the 10 GB limit.",
      tags,
      security: BEARER,
      responses: { 200: jsonContent(shardListSchema, "The shards"), ...commonErrors },
    },
    requireScope("admin"),
    async (c) => c.json({ object: "list" as const, data: await shardStats(c.env) }),
  );
}
