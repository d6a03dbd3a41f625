/**
 * The unsubscribe pages: small, self-contained HTML (no scripts, no external resources), sent
 * with headers that keep them out of frames, caches and search engines.
 */
import { escapeHtml } from "../lib/html";

export const PAGE_HEADERS: Record<string, string> = {
  "Content-Type": "text/html; charset=utf-8",
  "Cache-Control": "no-store",
  "Content-Security-Policy":
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "Referrer-Policy": "no-referrer",
  "X-Robots-Tag": "noindex, nofollow",
};

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex, nofollow">
<title>${escapeHtml(title)}</title>
<style>
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa;margin:0}
main{max-width:28rem;margin:12vh auto;padding:2rem;background:#fff;border:1px solid #d0d7de;border-radius:8px}
h1{font-size:1.25rem;margin:0 0 .75rem}
button{font:inherit;padding:.6rem 1.2rem;border:0;border-radius:6px;background:#1f6feb;color:#fff;cursor:pointer}
</style>
</head>
<body><main>
${body}
</main></body>
</html>
`;
}

const what = (topic: string | null) =>
  topic === null ? "emails from this sender" : `“${escapeHtml(topic)}” emails from this sender`;

/** GET /u/{token}: one button that POSTs back; a scanner fetching the link changes nothing. */
export function unsubscribePage(token: string, topic: string | null): string {
  return page(
    "Unsubscribe",
    `<h1>Unsubscribe</h1>
<p>Stop receiving ${what(topic)}?</p>
<form method="post" action="/u/${escapeHtml(token)}">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>`,
  );
}

export function unsubscribedPage(topic: string | null): string {
  return page(
    "Unsubscribed",
    `<h1>You are unsubscribed</h1>
<p>You will no longer receive ${what(topic)}.</p>`,
  );
}

export function invalidLinkPage(): string {
  return page(
    "Link not valid",
    `<h1>This link is not valid</h1>
<p>It may have been copied incompletely. Use the unsubscribe link in the email itself.</p>`,
  );
}

export function tryAgainPage(): string {
  return page(
    "Please try again",
    `<h1>Something went wrong</h1>
<p>Your request was not recorded. Please try again in a moment.</p>`,
  );
}
