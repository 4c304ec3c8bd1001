import { describe, expect, it } from "vitest";
import { call } from "./helpers.ts";

/**
 * The error responses routes declare themselves (problemResponses in worker/src/schemas.ts, as opposed to the
 * shared ones of worker/src/docs/openapi.ts) as the served /openapi.json carries them, which is what /docs shows
 * next to each status.
 */

interface Response {
  $ref?: string;
  description?: string;
}
interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, Response> }>>;
}

describe("route-declared error responses", () => {
  it("carry their status's own description: one per status on every route, no two statuses alike, none a bare 'Error'", async () => {
    const doc = (await (await call("/openapi.json", { key: null })).json()) as Doc;
    const byStatus = new Map<string, Set<string>>();
    for (const [path, item] of Object.entries(doc.paths))
      for (const [method, op] of Object.entries(item))
        for (const [status, r] of Object.entries(op.responses)) {
          if (!/^[45]/.test(status) || r.$ref) continue;
          expect(r.description, `${method} ${path} ${status}`).toBeTruthy();
          byStatus.set(status, (byStatus.get(status) ?? new Set()).add(r.description!));
        }
    // 400, 401, 403, 404, 409, 413, 415, 422, 429 and 503 are all declared by some route.
    expect([...byStatus.keys()].sort()).toEqual(["400", "401", "403", "404", "409", "413", "415", "422", "429", "503"]);
    for (const [status, descriptions] of byStatus) {
      expect([...descriptions], status).toHaveLength(1);
      expect([...descriptions][0], status).not.toBe("Error");
    }
    const all = [...byStatus.values()].map((d) => [...d][0]);
    expect(new Set(all).size).toBe(all.length);
    expect(doc.paths["/v1/jobs/{id}"]!.get!.responses["404"]!.description).toBe("Not found: no such object for this tenant");
  });
});
