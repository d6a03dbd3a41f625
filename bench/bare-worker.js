// The hot path's baseline: a Worker that does nothing but answer what the tracking routes answer,
// the same 43-byte GIF with the same headers for /o/*, a 302 for /c/*. The benchmark serves it in
// its own workerd process next to the real Worker and compares the two under the same load.
const GIF = Uint8Array.from(atob("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw=="), (c) =>
  c.charCodeAt(0),
);
const TARGET = "https://example.com/welcome?utm_source=mailtrail";

export default {
  fetch(request) {
    const path = new URL(request.url).pathname;
    if (path.startsWith("/o/")) {
      return new Response(GIF, {
        headers: {
          "Content-Type": "image/gif",
          "Cache-Control": "no-store, no-cache, must-revalidate, private",
        },
      });
    }
    if (path.startsWith("/c/")) return Response.redirect(TARGET, 302);
    return new Response("not found", { status: 404 });
  },
};
