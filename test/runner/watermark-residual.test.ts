import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import type { RasterImage } from "../../gpu-runner/src/operations/types.ts";
import { applyResidual, applyResidualScalar } from "../../gpu-runner/src/operations/watermark-residual.ts";
import { buildWat } from "../../scripts/build-wasm.ts";

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const SIZE = 128;

/** A deterministic pseudo-random raster (LCG), so failures reproduce. */
function raster(width: number, height: number, channels: 3 | 4, fill?: number): RasterImage {
  let s = 12345;
  const data = new Uint8Array(width * height * channels);
  for (let i = 0; i < data.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    data[i] = fill ?? s >>> 24;
  }
  const source = { format: "png", bytes: data.length, orientation: null, space: "srgb", icc: false, pages: 1 };
  return { width, height, channels, bitDepth: 8, hasAlpha: channels === 4, data, source } as RasterImage;
}

function residual(amplitude: number): Float32Array {
  return Float32Array.from({ length: 3 * SIZE * SIZE }, (_, i) => Math.sin(i * 0.37) * Math.cos(i * 0.011) * amplitude);
}

describe("watermark residual kernel", () => {
  it("the committed .wasm is the build of the committed .wat", async () => {
    const built = await buildWat("gpu-runner/src/operations/watermark-residual.wat");
    expect(Buffer.from(readFileSync(root("gpu-runner/src/operations/watermark-residual.wasm")))).toEqual(Buffer.from(built));
  });

  // Widths that are not multiples of 16 exercise the kernel's scalar tail; 4 channels its alpha handling.
  it.each([
    [1001, 37, 3],
    [129, 130, 4],
    [16, 16, 3],
    [5000, 9, 3],
  ] as const)("SIMD and scalar paths agree on %ix%i x%i", (width, height, channels) => {
    const image = raster(width, height, channels);
    const r = residual(0.02);
    const simd = applyResidual(image, r, 1, SIZE);
    const scalar = applyResidualScalar(image, r, 1, SIZE);
    expect(simd.image.channels).toBe(channels);
    expect(simd.image.data.length).toBe(scalar.image.data.length);
    // f32 in the kernel vs f64 in JavaScript: a sample may land on the other side of a .5 now and then.
    let off = 0;
    for (let i = 0; i < simd.image.data.length; i++) {
      const d = Math.abs(simd.image.data[i]! - scalar.image.data[i]!);
      expect(d).toBeLessThanOrEqual(1);
      off += d;
    }
    expect(off / simd.image.data.length).toBeLessThan(1e-3);
    expect(Math.abs(simd.psnr - scalar.psnr)).toBeLessThan(0.01);
    if (channels === 4) for (let i = 3; i < simd.image.data.length; i += 4) expect(simd.image.data[i]).toBe(image.data[i]);
    // The input is not touched.
    expect(image.data).toEqual(raster(width, height, channels).data);
  });

  it("clips at 0 and 255 and counts only the change that survives", () => {
    for (const fill of [0, 255]) {
      const image = raster(300, 200, 3, fill);
      const r = residual(0.5);
      const simd = applyResidual(image, r, 1, SIZE);
      const scalar = applyResidualScalar(image, r, 1, SIZE);
      expect(simd.image.data).toEqual(scalar.image.data);
      const values = new Set(simd.image.data);
      // Half the residual pushes past the bound and is clipped there; the other half moves the samples.
      expect(values.has(fill)).toBe(true);
      expect(values.size).toBeGreaterThan(50);
      expect(simd.psnr).toBeCloseTo(scalar.psnr, 6);
    }
  });

  // 4.8 MB of samples: more than one band of the kernel's memory.
  it("in place gives the same samples and PSNR, in the input's own buffer", () => {
    const r = residual(0.03);
    const copy = applyResidual(raster(1600, 1000, 3), r, 1, SIZE);
    const image = raster(1600, 1000, 3);
    const own = applyResidual(image, r, 1, SIZE, true);
    expect(own.image.data).toBe(image.data);
    expect(Buffer.from(own.image.data).equals(Buffer.from(copy.image.data))).toBe(true);
    expect(own.psnr).toBe(copy.psnr);
  });

  it("a zero residual changes nothing", () => {
    const image = raster(777, 333, 3);
    const out = applyResidual(image, new Float32Array(3 * SIZE * SIZE), 1, SIZE);
    expect(out.image.data).toEqual(image.data);
    expect(out.psnr).toBe(Infinity);
  });
});
