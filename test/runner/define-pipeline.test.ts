import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { OPERATIONS } from "../../contract/operations.ts";
import { executeOperation } from "../../gpu-runner/src/execute.ts";
import { SessionCache } from "../../gpu-runner/src/models/session-cache.ts";
import { PIPELINES } from "../../gpu-runner/src/operations/registry.ts";
import { definePipeline, type ParamsOf } from "../../gpu-runner/src/operations/types.ts";
import { ROOT } from "./helpers.ts";

/**
 * definePipeline: the runtime parses a job's params once with the contract's schema, before any input is decoded,
 * and the pipeline receives them parsed (defaults filled in); bad params are `invalid_params`.
 */
const sessions = new SessionCache({ modelsDir: resolve(ROOT, "models"), executionProviders: ["cpu"] });
const photo = await readFile(resolve(ROOT, "test/fixtures/photo.jpg"));

function execute(pipeline: ReturnType<typeof definePipeline>, params: Record<string, unknown>, inputs: Uint8Array[]) {
  return executeOperation({
    pipeline,
    params,
    inputs,
    maxPixels: OPERATIONS["enhance.lowlight"].limits.max_pixels,
    models: [],
    sessions,
    signal: new AbortController().signal,
  });
}

describe("definePipeline", () => {
  it("hands the pipeline its params parsed by the contract, once, with defaults filled in", async () => {
    const seen: ParamsOf<"enhance.lowlight">[] = [];
    const pipeline = definePipeline("enhance.lowlight", async (ctx) => {
      seen.push(ctx.params);
      // Typed from the contract: `format` is the enum, not unknown.
      const format: "png" | "jpeg" | "webp" = ctx.params.format;
      return { result: { format, width: ctx.inputs[0]?.width ?? null } };
    });
    const out = await execute(pipeline, {}, [photo]);
    expect(seen).toEqual([OPERATIONS["enhance.lowlight"].params.parse({})]);
    expect(out.result).toEqual({ format: "png", width: 512 });
    // Called directly, as tests and benches do, the same parse runs first.
    await pipeline.run({
      params: { format: "webp" },
      inputs: [],
      encoded: [],
      session: () => Promise.reject(),
      timeModel: (f) => f(),
      signal: new AbortController().signal,
    });
    expect(seen.at(-1)).toMatchObject({ format: "webp" });
  });

  it("refuses bad params as invalid_params before it decodes an input, and never runs the pipeline", async () => {
    let runs = 0;
    const pipeline = definePipeline("enhance.lowlight", async () => {
      runs++;
      return { result: {} };
    });
    // The input is not an image: a decode would fail with another code, so invalid_params shows the order.
    const notAnImage = new TextEncoder().encode("not an image");
    await expect(execute(pipeline, { format: "bmp" }, [notAnImage])).rejects.toMatchObject({
      code: "invalid_params",
      message: expect.stringMatching(/^invalid params for enhance\.lowlight: format: /),
    });
    await expect(execute(pipeline, { bogus: 1 }, [photo])).rejects.toMatchObject({ code: "invalid_params" });
    expect(runs).toBe(0);
  });

  it("is what every registered pipeline is made with", () => {
    for (const p of PIPELINES) expect(p.prepare, p.name).toBeTypeOf("function");
  });
});
