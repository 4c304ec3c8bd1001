import sharp from "sharp";
import { describe, expect, it } from "vitest";
import { analyzeFaces, DETECTOR_MAX_SIDE } from "../../gpu-runner/src/face/analyze.ts";
import { loadFaceModels, loadFaceTf } from "../../gpu-runner/src/face/models.ts";
import { raster } from "./raster.ts";

const ASTRONAUT = new URL("../fixtures/photo.jpg", import.meta.url).pathname;

/** Size of the tfjs wasm heap, which grows to the largest set of live tensors and never shrinks. */
const heapMb = async () =>
  ((await loadFaceTf()).backend() as unknown as { wasm: { HEAPU8: Uint8Array } }).wasm.HEAPU8.length / 2 ** 20;

// Real nets on a 2-core shared CPU; the 48 MP case alone took 4.4 s here (16 s before the cap).
describe("the face detector's working size is capped (DETECTOR_MAX_SIDE)", { timeout: 180_000 }, () => {
  it("a 48 MP photo is analysed without square-padded full-size tensors", async () => {
    await loadFaceModels();
    const big = await raster(
      await sharp({ create: { width: 8000, height: 6000, channels: 3, background: { r: 90, g: 110, b: 130 } } })
        .png()
        .toBuffer(),
    );
    expect(await analyzeFaces(big)).toEqual([]);
    // Measured: 358 MB after it (the same as after a 2048 px image); 2241 MB before the cap, when the int32 input
    // (576 MB) and its 8000 x 8000 float32 padded square (768 MB) were live at once.
    expect(await heapMb()).toBeLessThan(1024);
  });

  it("above the cap, boxes and landmarks map back to the original's pixels", async () => {
    // The same face at the cap (taken at full size) and above it (detected on a copy shrunk to the cap).
    const at = DETECTOR_MAX_SIDE;
    const above = 2560;
    const [a] = await analyzeFaces(await raster(await sharp(ASTRONAUT).resize(at, at).png().toBuffer()));
    const [b] = await analyzeFaces(await raster(await sharp(ASTRONAUT).resize(above, above).png().toBuffer()));
    expect(a && b).toBeTruthy();
    const k = above / at;
    // Measured: the box moved by at most 0.4 px at the cap's scale (0.1 px at the photo's 512 px), under 0.5 % of the face.
    for (const key of ["x", "y", "width", "height"] as const) expect(Math.abs(b!.box[key] / k - a!.box[key])).toBeLessThan(4);
    const err = b!.landmarks.map(([x, y], i) => Math.hypot(x / k - a!.landmarks[i]![0], y / k - a!.landmarks[i]![1]));
    expect(Math.max(...err)).toBeLessThan(8);
    expect(b!.landmarks.every(([x, y]) => x >= 0 && x <= above && y >= 0 && y <= above)).toBe(true);
  });
});
