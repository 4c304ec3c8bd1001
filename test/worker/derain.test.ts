import { describe, expect, it } from "vitest";
import { importTicketPublicKey, verifyTicket } from "../../contract/ticket.ts";
import { call, expectProblem, leaseJob, pngOf, postImage, postJson, type JobJson } from "./helpers.ts";

/**
 * POST /v1/enhance/derain in workerd: the contract's params as the API takes them (query strings carry strings), the
 * problem+json answer to a method without weights, and the ticket a runner gets (the method's model, and a signed
 * upload URL for each map the job may produce).
 */
describe("POST /v1/enhance/derain", () => {
  it("validates params: a method without weights, dehaze out of 0-1 and a non-boolean maps are 422 invalid_params", async () => {
    for (const [query, path] of [
      ["method=demo-net", "params.method"],
      ["dehaze=1.5", "params.dehaze"],
      ["dehaze=half", "params.dehaze"],
      ["maps=maybe", "params.maps"],
      ["format=bmp", "params.format"],
    ] as const) {
      const body = await expectProblem(await postImage(`/v1/enhance/derain?${query}`), 422, "invalid_params");
      expect(
        body.errors?.map((e) => e.path),
        query,
      ).toContain(path);
    }
  });

  it("takes params from the query string and JSON alike, with the contract's defaults", async () => {
    const res = await postImage("/v1/enhance/derain?maps=true&dehaze=0.5");
    expect(res.status).toBe(202);
    const job = (await res.json()) as JobJson & { params: Record<string, unknown> };
    expect(job).toMatchObject({ operation: "enhance.derain", status: "queued" });
    expect(job.params).toEqual({ method: "heavy-two-branch", format: "png", dehaze: 0.5, maps: true });
    const plain = (await (await postImage("/v1/enhance/derain")).json()) as { params: Record<string, unknown> };
    expect(plain.params).toEqual({ method: "heavy-two-branch", format: "png", dehaze: 1, maps: false });
    const up = (await (await postJson("/v1/uploads", {})).json()) as { upload_id: string; upload_url: string };
    const url = new URL(up.upload_url);
    expect((await call(url.pathname + url.search, { key: null, method: "PUT", body: await pngOf(64, 48) })).status).toBe(201);
    const byJson = await postJson("/v1/enhance/derain", { upload_id: up.upload_id, params: { maps: true, dehaze: 0.25 } });
    expect(byJson.status).toBe(202);
    expect(((await byJson.json()) as { params: Record<string, unknown> }).params).toMatchObject({ maps: true, dehaze: 0.25 });
    await expectProblem(
      await postJson("/v1/enhance/derain", { upload_id: up.upload_id, params: { maps: "yes" } }),
      422,
      "invalid_params",
    );
  });

  it("the runner's ticket names the method's model and has an upload URL for the image and each map", async () => {
    const job = (await (await postImage("/v1/enhance/derain?maps=true")).json()) as JobJson;
    const leased = await leaseJob(job.id, "enhance.derain");
    const keys = new Map([["test-2026", await importTicketPublicKey("ypRq4DZy2ATa503_4HgtL9xKxRIBR5-fbGchEUQVnsY")]]);
    const ticket = await verifyTicket(leased.ticket, keys);
    expect(ticket.models.map((m) => m.id)).toEqual(["derain-streak-vapor", "derain-heavy-two-branch"]);
    expect(ticket.outputs.map((o) => o.name)).toEqual(["image", "transmission", "rain"]);
    expect(ticket.params).toEqual({ method: "heavy-two-branch", format: "png", dehaze: 1, maps: true });
  });

  it("is in the OpenAPI document with its params", async () => {
    const doc = (await (await call("/openapi.json", { key: null })).json()) as {
      paths: Record<string, { post?: { parameters?: { name: string; schema?: { enum?: string[] } }[] } }>;
    };
    const params = doc.paths["/v1/enhance/derain"]!.post!.parameters!;
    expect(params.map((p) => p.name)).toEqual(expect.arrayContaining(["method", "format", "dehaze", "maps"]));
    expect(params.find((p) => p.name === "method")!.schema!.enum).toEqual(["streak-vapor", "heavy-two-branch"]);
  });
});
