import { resolve } from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { OPERATION_NAMES, OPERATIONS, type OperationName } from "../../contract/operations.ts";
import { KNOWN_CODES, runFuzz } from "../../bench/fuzz.ts";
import { MUTATIONS } from "../../bench/fuzz-corpus.ts";
import { RunnerError } from "../../gpu-runner/src/errors.ts";
import { executeOperation } from "../../gpu-runner/src/execute.ts";
import { decodeImage } from "../../gpu-runner/src/image/decode.ts";
import { SessionCache } from "../../gpu-runner/src/models/session-cache.ts";
import { REGISTRY } from "../../gpu-runner/src/operations/registry.ts";
import { ROOT } from "./helpers.ts";

/**
 * The fast half of the fuzzing campaign (the full one: `npm run bench -- fuzz`, bench/results/fuzz.json): 1,000
 * structure-aware broken images through every operation's input path, then the real face and watermark pipelines
 * (and lowlight's and inspect's) on the worst shapes their limits let through.
 */
describe("fuzzed images through every operation's input path", { timeout: 240_000 }, () => {
  it("1,000 images: no crash, no hang, a stable known code for each rejection", async () => {
    // watermark.embed is left to the bench: its input path is watermark.decode's (same limits and decode) after a
    // params check. Measured on the shared 2-core machine: 47 s at load 5 (all five operations: 36 s at load 2,
    // 92 s at load 6); most of it is the lies of 13-50 MP that the decoder really decodes.
    const operations = ["inspect", "watermark.decode", "face.analyze", "enhance.lowlight"];
    const report = await runFuzz({ seed: 1, count: 1000, timeoutMs: 15_000, operations });
    expect(report.failures).toEqual([]);
    expect(report).toMatchObject({ images: 1000, crashes: 0, hangs: 0, unstable: 0 });
    for (const [op, outcomes] of Object.entries(report.outcomes_by_operation)) {
      for (const code of Object.keys(outcomes)) expect([...KNOWN_CODES, "ok"], `${op}: ${code}`).toContain(code);
      // The corpus reaches past the decoder for every operation: some images are accepted.
      expect(outcomes.ok ?? 0, op).toBeGreaterThan(20);
    }
    // And it exercises what it claims to: every format and mutation, the geometry checks, both animation policies.
    expect(Object.keys(report.images_by_format).sort()).toEqual(["gif", "jpeg", "png", "tiff", "webp"]);
    expect(Object.keys(report.images_by_mutation).sort()).toEqual(Object.keys(MUTATIONS).sort());
    const all = Object.values(report.outcomes_by_operation).flatMap((o) => Object.keys(o));
    for (const code of ["image_too_small", "unsupported_aspect_ratio", "image_too_large", "animated_image_unsupported"])
      expect(all, code).toContain(code);
  });
});

/** Real sessions from models/, as the CLI opens them. */
const sessions = new SessionCache({ modelsDir: resolve(ROOT, "models"), executionProviders: ["cpu"] });

async function run(operation: OperationName, bytes: Buffer, params: Record<string, unknown> = {}) {
  const spec = OPERATIONS[operation];
  return executeOperation({
    pipeline: REGISTRY.get(operation)!,
    params,
    inputs: [bytes],
    maxPixels: spec.limits.max_pixels,
    models: await sessions.refsFor(spec.models),
    sessions,
    signal: new AbortController().signal,
  });
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    return e instanceof RunnerError ? e.code : `threw ${String(e)}`;
  }
}

const photo = (width: number, height: number) =>
  sharp(resolve(ROOT, "test/fixtures/photo.jpg")).resize(width, height, { fit: "fill" }).png().toBuffer();
const flat = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: { r: 90, g: 120, b: 150 } } })
    .png()
    .toBuffer();

describe("the worst shapes each limit lets through, on the real pipelines", { timeout: 240_000 }, () => {
  it("face.analyze: at 16:1 and 32 px it runs, past them it refuses; a 49 MP 16:1 image is analysed", async () => {
    expect(await code(run("face.analyze", await photo(512, 32)))).toBe("ok");
    expect(await code(run("face.analyze", await photo(32, 512)))).toBe("ok");
    expect(await code(run("face.analyze", await photo(544, 32)))).toBe("unsupported_aspect_ratio");
    expect(await code(run("face.analyze", await photo(31, 64)))).toBe("image_too_small");
    expect(await code(run("face.analyze", await flat(20_000, 50)))).toBe("unsupported_aspect_ratio");
    // Huge but allowed: 28000 x 1750 = 49 MP at 16:1 (the detector works on a 2048 x 128 copy).
    const out = await run("face.analyze", await flat(28_000, 1750), { include_descriptor: true, max_faces: 1 });
    expect(out.result).toMatchObject({ faces: [], image: { width: 28_000, height: 1750 } });
  });

  it("watermark: embedded at 16:1 both ways and at 32 x 32, the mark reads back from the artifact", async () => {
    for (const [w, h] of [
      [2048, 128],
      [128, 2048],
      [32, 32],
      [512, 32],
    ] as const) {
      const embedded = await run("watermark.embed", await photo(w, h), { bits: "0123456789abcdef" });
      const read = await run("watermark.decode", embedded.artifacts[0]!.body);
      expect(read.result, `${w}x${h}`).toMatchObject({ bits: "0123456789abcdef", detected: true });
    }
    expect(await code(run("watermark.embed", await photo(544, 32), { bits: "01" }))).toBe("unsupported_aspect_ratio");
    expect(await code(run("watermark.decode", await photo(31, 31)))).toBe("image_too_small");
  });

  it("lowlight and inspect: their smallest and most elongated images run to the end", async () => {
    for (const [w, h] of [
      [1, 1],
      [400, 20],
      [20, 400],
    ] as const) {
      const out = await run("enhance.lowlight", await photo(w, h));
      const image = await decodeImage(out.artifacts[0]!.body, { maxPixels: 1e6 });
      expect([image.width, image.height], `${w}x${h}`).toEqual([w, h]);
    }
    expect(await code(run("enhance.lowlight", await photo(420, 20)))).toBe("unsupported_aspect_ratio");
    for (const [w, h] of [
      [1, 1],
      [2000, 20],
    ] as const)
      expect((await run("inspect", await photo(w, h))).result).toMatchObject({ width: w, height: h });
    expect(await code(run("inspect", await photo(2020, 20)))).toBe("unsupported_aspect_ratio");
  });

  it("every operation in the contract has geometry limits the checks use", () => {
    for (const name of OPERATION_NAMES) {
      const { min_side, max_aspect_ratio } = OPERATIONS[name].limits;
      expect(min_side, name).toBeGreaterThanOrEqual(1);
      expect(max_aspect_ratio, name).toBeGreaterThanOrEqual(1);
    }
  });
});
