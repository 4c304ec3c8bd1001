import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parityDiffs, readF32, readParityMeta, sha256File } from "./parity.ts";

/**
 * The streak-vapour derainer's ONNX graph (models/derain_streak_vapor): parity with PyTorch on an odd-sized tile of a
 * held-out photo, tiles of any size, and the promises the serving side relies on (A comes from the thumbnail alone,
 * so every tile of a photo gets the same A; transmission = t_streak * t_vapor).
 */
const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const MODEL = root("models/derain_streak_vapor/weights/derain-streak-vapor.onnx");
const ENTRY = root("models/derain_streak_vapor/manifest_entry.json");
const FIXTURE = root("test/fixtures/derain-streak-vapor-parity");
const THUMB = 128;

let session: ort.InferenceSession;
beforeAll(async () => {
  session = await ort.InferenceSession.create(MODEL, { intraOpNumThreads: 1 });
});
afterAll(async () => {
  await session.release();
});

async function run(image: Float32Array, h: number, w: number, thumb: Float32Array) {
  return session.run({
    image: new ort.Tensor("float32", image, [1, 3, h, w]),
    thumb: new ort.Tensor("float32", thumb, [1, 3, THUMB, THUMB]),
  });
}

/** A deterministic textured tile: smooth colour gradients plus bright near-vertical streaks. */
function tile(h: number, w: number, phase: number): Float32Array {
  const x = new Float32Array(3 * h * w);
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < h; i++)
      for (let j = 0; j < w; j++) {
        const streak = (j * 7 + i + phase) % 23 === 0 ? 0.35 : 0;
        x[(c * h + i) * w + j] = Math.min(1, 0.25 + 0.4 * Math.sin((i + phase) / 9 + c) ** 2 + streak);
      }
  return x;
}

describe("derain-streak-vapor ONNX", () => {
  it("the fixture and the manifest entry describe the committed file", async () => {
    const sha = await sha256File(MODEL);
    expect((await readParityMeta(FIXTURE)).onnx_sha256).toBe(sha);
    expect(existsSync(ENTRY)).toBe(true);
    const entry = JSON.parse(readFileSync(ENTRY, "utf8")) as { id: string; sha256: string };
    expect(entry.id).toBe("derain-streak-vapor");
    expect(entry.sha256).toBe(sha);
  });

  it("matches PyTorch on an odd-sized (75 x 101) tile of a held-out photo", async () => {
    const meta = await readParityMeta(FIXTURE);
    expect(meta.inputs.image).toEqual([1, 3, 75, 101]);
    for (const [name, diff] of Object.entries(await parityDiffs(session, FIXTURE, meta)))
      expect(diff, name).toBeLessThan(meta.tolerance);
  });

  it("takes tiles of any size; A depends on the thumbnail only; transmission = t_streak * t_vapor", async () => {
    const thumb = await readF32(`${FIXTURE}/thumb.f32`);
    const a = await run(tile(33, 47, 0), 33, 47, thumb);
    const b = await run(tile(70, 19, 5), 70, 19, thumb);
    expect(a.derained!.dims).toEqual([1, 3, 33, 47]);
    expect(b.transmission!.dims).toEqual([1, 1, 70, 19]);
    expect(Array.from(a.atmospheric_light!.data as Float32Array)).toEqual(Array.from(b.atmospheric_light!.data as Float32Array));
    const d = a.derained!.data as Float32Array;
    expect(Math.min(...d)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...d)).toBeLessThanOrEqual(1);
    const t = a.transmission!.data as Float32Array;
    const ts = a.t_streak!.data as Float32Array;
    const tv = a.t_vapor!.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < t.length; i++) worst = Math.max(worst, Math.abs(t[i]! - ts[i]! * tv[i]!));
    expect(worst).toBeLessThan(1e-5);
  });
});
