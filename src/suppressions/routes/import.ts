import * as z from "zod";
import { requireScope } from "../../auth/middleware";
import { ApiError } from "../../lib/errors";
import { describeError, log } from "../../lib/log";
import {
  type App,
  BEARER,
  commonErrors,
  errorSchema,
  jsonContent,
  notFoundError,
  route,
} from "../../lib/openapi";
import { accountIdParam } from "../../lib/params";
import { importIdSchema, importSchema, toImport } from "../import-schema";
import { createImport, getImport, type ImportFormat, MAX_IMPORT_BYTES } from "../imports";
import type { JobMessage } from "../jobs";
import { accountFor, tags } from "./shared";

const MEDIA: Record<string, ImportFormat> = { "text/csv": "csv", "application/x-ndjson": "ndjson" };

export function registerImportSuppressions(app: App): void {
  route(
    app,
    {
      method: "post",
      path: "/v1/suppressions/imports",
      operationId: "importSuppressions",
      summary: "Import suppressions from a CSV or NDJSON file",
      description:
        "Body `text/csv` (a header row; `email` required; optional `reason` (default `manual`), `topic`, `expires_at`, " +
        "`suppressed_at`, `email_id`; the column spellings of Mailgun, SES, Postmark, SendGrid, Brevo and Telnyx exports " +
        "are accepted, e.g. `address`, `EmailAddress`, `SuppressionReason`, `created_at`) or `application/x-ndjson` " +
        "(one object a line, the same fields), up to 1,000,000 rows and 100 MiB. Answers `202` with the import at once; " +
        "it runs in the background (poll `GET /v1/suppressions/imports/{id}`). A bad row is rejected with its line " +
        "number and the rest are imported; an address already suppressed for that topic keeps its entry, so importing " +
        "the same rows again changes nothing. One import per account at a time (a second: `429` with Retry-After).",
      tags,
      security: BEARER,
      request: {
        query: z.object({ account_id: accountIdParam }),
        body: {
          content: {
            "text/csv": { schema: z.string().meta({ description: "RFC 4180 CSV with a header row" }) },
            "application/x-ndjson": { schema: z.string().meta({ description: "one JSON object a line" }) },
          },
          required: true,
        },
      },
      responses: {
        202: jsonContent(importSchema, "The import, running"),
        ...commonErrors,
        413: jsonContent(errorSchema, "payload_too_large: the file is over 100 MiB"),
        415: jsonContent(
          errorSchema,
          "unsupported_media_type: the body is neither text/csv nor application/x-ndjson",
        ),
      },
    },
    requireScope("suppressions:write"),
    async (c, { query }) => {
      const accountId = accountFor(c, query.account_id);
      const media = (c.req.header("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
      const format = MEDIA[media];
      if (format === undefined) {
        throw new ApiError("unsupported_media_type", "the body must be text/csv or application/x-ndjson");
      }
      const length = Number(c.req.header("content-length") ?? "0");
      if (length > MAX_IMPORT_BYTES)
        throw new ApiError("payload_too_large", "an import file is at most 100 MiB");
      const body = c.req.raw.body;
      if (body === null) throw new ApiError("validation_error", "the file is empty", { param: "body" });
      const row = await createImport(c.env, accountId, format, body, Date.now());
      try {
        await c.env.JOBS_QUEUE.send({ type: "import", id: row.id } satisfies JobMessage, {
          contentType: "json",
        });
      } catch (err) {
        // The import is recorded: the scheduled work starts it (resumes stalled imports).
        log("warn", "import's first chunk not queued; the scheduled work will start it", {
          import_id: row.id,
          ...describeError(err),
        });
      }
      return c.json(toImport(row), 202);
    },
  );

  route(
    app,
    {
      method: "get",
      path: "/v1/suppressions/imports/{id}",
      operationId: "getSuppressionImport",
      summary: "An import's status, counts and first 100 errors",
      description: "When `completed`, every accepted row is in D1 and in the KV mirror.",
      tags,
      security: BEARER,
      request: { params: z.object({ id: importIdSchema }), query: z.object({ account_id: accountIdParam }) },
      responses: { 200: jsonContent(importSchema, "The import"), ...commonErrors, ...notFoundError },
    },
    requireScope("suppressions:read"),
    async (c, { params, query }) => {
      const accountId = accountFor(c, query.account_id);
      return c.json(toImport(await getImport(c.env, accountId, params.id)));
    },
  );
}
