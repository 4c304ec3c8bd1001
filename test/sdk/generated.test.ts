import { readFileSync } from "node:fs";
import { describe, expect, inject, it } from "vitest";
import { generate, GENERATED_PATH, type OpenApiDocument } from "../../sdk/scripts/generate.ts";

describe("sdk/src/generated.ts", () => {
  it("is what the generator writes from the /openapi.json the worker serves (run `npm run generate -w sdk` when not)", async () => {
    const doc = (await (await fetch(`${inject("sdkStack").url}/openapi.json`)).json()) as OpenApiDocument;
    const fresh = await generate(doc);
    expect(fresh.length).toBeGreaterThan(1000);
    expect(readFileSync(GENERATED_PATH, "utf8")).toBe(fresh);
  });

  it("has a row for every operation of the document, with its method, path and body kind", async () => {
    const doc = (await (await fetch(`${inject("sdkStack").url}/openapi.json`)).json()) as OpenApiDocument;
    const { OPERATIONS } = await import("@vigil/sdk");
    const fromDoc = Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item).map(([method, op]) => `${op.operationId} ${method.toUpperCase()} ${path}`),
    );
    const fromTable = Object.entries(OPERATIONS).map(([id, row]) => `${id} ${row.method} ${row.path}`);
    expect(fromTable.sort()).toEqual(fromDoc.sort());
    expect(OPERATIONS.postProtect.body).toBe("image");
    expect(OPERATIONS.postWebhookEndpoints.body).toBe("json");
    expect(OPERATIONS.getAdminTenants.auth).toBe("operator");
  });
});
