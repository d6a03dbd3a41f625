import { afterEach, describe, expect, it, vi } from "vitest";
import { call, freshAccount, mintToken } from "../helpers";

/**
 * Logs name a request by its route template, never its raw path: a path can carry a recipient
 * address or a tracking token (SPEC §13). The Worker's console output is captured as it is written.
 */

function captureLogs(): () => string[] {
  const lines: string[] = [];
  for (const level of ["log", "warn", "error"] as const) {
    vi.spyOn(console, level).mockImplementation((...args: unknown[]) => {
      lines.push(args.map(String).join(" "));
    });
  }
  return () => lines;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe("request logs", () => {
  it("carry the route template, never the address or token of the path", async () => {
    const lines = captureLogs();
    const account = freshAccount();
    const token = await mintToken(account, "suppressions:read suppressions:write");
    const address = "alice.secret@example.com";
    await call("PUT", `/v1/suppressions/${encodeURIComponent(address)}`, { token, body: {} });
    await call("GET", `/v1/suppressions/${encodeURIComponent(address)}`, { token });
    await call("GET", `/v1/suppressions/${encodeURIComponent("nobody.secret@example.com")}`, { token });
    await call("GET", "/u/secret-token-value");
    await call("POST", "/u/secret-token-value");
    await call("GET", "/nowhere/secret-path-value");

    const logged = lines();
    const requests = logged.map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
    expect(requests.map((r) => r.route)).toEqual(
      expect.arrayContaining(["/v1/suppressions/{email}", "/u/{token}", "(unmatched)"]),
    );
    expect(requests.filter((r) => r.route === "/v1/suppressions/{email}").map((r) => r.status)).toEqual(
      expect.arrayContaining([200, 404]),
    );
    const all = logged.join("\n");
    for (const secret of ["alice.secret", "nobody.secret", "secret-token-value", "secret-path-value"])
      expect(all).not.toContain(secret);
  });
});
