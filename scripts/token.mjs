#!/usr/bin/env node
// Mints a local API token signed with .dev.vars' JWT_SECRET.
// npm run token -- [--sub ACCOUNT] [--scope "events:read send"] [--ttl 24h]
import { parseArgs } from "node:util";
import { DEMO_ACCOUNT, mintToken } from "./lib.mjs";

const { values } = parseArgs({
  options: {
    sub: { type: "string", default: DEMO_ACCOUNT },
    scope: {
      type: "string",
      default: "events:read suppressions:read suppressions:write send webhooks:read webhooks:write",
    },
    ttl: { type: "string", default: "24h" },
  },
});
console.log(await mintToken(values));
