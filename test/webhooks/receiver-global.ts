import http from "node:http";
import type { TestProject } from "vitest/node";

/**
 * A real HTTP receiver on 127.0.0.1 for the workerd tests (the Worker's fetch reaches it, nothing is
 * mocked). Each test uses its own path `/hooks/{name}`:
 * - POST /hooks/{name} records the request (headers and body) and answers with the next scripted
 *   response for that name (default 200);
 * - PUT /script/{name} with `[{status, delayMs?, location?}, …]` scripts the next answers;
 * - GET /calls/{name} returns the recorded requests as JSON.
 */
declare module "vitest" {
  interface ProvidedContext {
    receiverPort: number;
  }
}

interface Scripted {
  status: number;
  delayMs?: number;
  location?: string;
}

export default async function setup(project: TestProject) {
  const calls = new Map<string, { headers: http.IncomingHttpHeaders; body: string; at: number }[]>();
  const scripts = new Map<string, Scripted[]>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const [, kind, name = ""] = /^\/([a-z]+)\/([^?]*)/.exec(req.url ?? "") ?? [];
      if (kind === "script" && req.method === "PUT") {
        scripts.set(name, JSON.parse(body) as Scripted[]);
        res.writeHead(204).end();
      } else if (kind === "calls" && req.method === "GET") {
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(calls.get(name) ?? []));
      } else if (kind === "hooks") {
        const list = calls.get(name) ?? [];
        list.push({ headers: req.headers, body, at: Date.now() });
        calls.set(name, list);
        const next = scripts.get(name)?.shift() ?? { status: 200 };
        const answer = () => {
          if (res.destroyed) return;
          res.writeHead(next.status, next.location ? { location: next.location } : {}).end("ok");
        };
        if (next.delayMs) setTimeout(answer, next.delayMs);
        else answer();
      } else {
        res.writeHead(404).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  project.provide("receiverPort", (server.address() as { port: number }).port);
  return () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
}
