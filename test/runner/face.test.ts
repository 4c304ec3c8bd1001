import { readFileSync } from "node:fs";
import sharp from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import {
  analyzeFaces,
  REGION_MIN_IOU,
  rotatedChipPixels,
  toRgb8,
  type AnalyzedFace,
  type FaceBox,
} from "../../gpu-runner/src/face/analyze.ts";
import { loadFaceModels } from "../../gpu-runner/src/face/models.ts";
import {
  bitsToHex,
  hammingHex,
  hexToBits,
  IDENTITY_CODE_BITS,
  identityCode,
  projectionMatrix,
} from "../../gpu-runner/src/face/identity-code.ts";
import { faceAnalyzePipeline } from "../../gpu-runner/src/operations/face-analyze.ts";
import type { OperationContext, RasterImage } from "../../gpu-runner/src/operations/types.ts";
import { raster } from "./raster.ts";

const ASTRONAUT = new URL("../fixtures/photo.jpg", import.meta.url).pathname;
const SWAP_LOW_SCORE = new URL("../fixtures/swap-low-score.jpg", import.meta.url).pathname;
const GROUP = new URL("../../node_modules/@vladmandic/face-api/demo/sample1.jpg", import.meta.url).pathname;
const calibration = JSON.parse(readFileSync(new URL("../../models/identity/calibration.json", import.meta.url), "utf8")) as {
  hamming_radius: number;
  code: { bits: number };
};
const RADIUS = calibration.hamming_radius;

function context(inputs: RasterImage[], params: Record<string, unknown> = {}): OperationContext {
  return {
    params,
    inputs,
    encoded: [],
    session: () => Promise.reject(new Error("face.analyze loads no ONNX model")),
    timeModel: (fn) => fn(),
    signal: new AbortController().signal,
  };
}

const code = (f: AnalyzedFace | undefined): string => identityCode(f!.descriptor);

// Real nets on a 2-core shared CPU: each analysis takes 0.5-10 s depending on load.
describe("face analysis (real face-api models on tfjs-wasm)", { timeout: 120_000 }, () => {
  let astronaut: AnalyzedFace[];
  beforeAll(async () => {
    astronaut = await analyzeFaces(await raster(ASTRONAUT));
  }, 120_000);

  it("finds the astronaut's face with 68 landmarks inside its box and a 128-d descriptor", () => {
    expect(astronaut.length).toBe(1);
    const [face] = astronaut;
    // Eileen Collins' face sits in the upper middle of the 512x512 portrait.
    const cx = face!.box.x + face!.box.width / 2;
    const cy = face!.box.y + face!.box.height / 2;
    expect(cx).toBeGreaterThan(170);
    expect(cx).toBeLessThan(280);
    expect(cy).toBeGreaterThan(60);
    expect(cy).toBeLessThan(200);
    expect(face!.score).toBeGreaterThan(0.9);
    expect(face!.landmarks).toHaveLength(68);
    const inside = face!.landmarks.filter(
      ([x, y]) =>
        x >= face!.box.x - 10 &&
        x <= face!.box.x + face!.box.width + 10 &&
        y >= face!.box.y - 10 &&
        y <= face!.box.y + face!.box.height + 10,
    );
    expect(inside.length).toBeGreaterThan(60);
    expect(face!.descriptor).toHaveLength(128);
  });

  it("keeps the identity code within the calibrated radius after JPEG q75 and a 0.5x resize", async () => {
    const jpeg = await analyzeFaces(await raster(await sharp(ASTRONAUT).jpeg({ quality: 75 }).toBuffer()));
    const half = await analyzeFaces(await raster(await sharp(ASTRONAUT).resize(256, 256).png().toBuffer()));
    expect(hammingHex(code(jpeg[0]), code(astronaut[0]))).toBeLessThanOrEqual(RADIUS);
    expect(hammingHex(code(half[0]), code(astronaut[0]))).toBeLessThanOrEqual(RADIUS);
  });

  it("puts different people outside the radius and sorts faces by area", async () => {
    const group = await analyzeFaces(await raster(GROUP));
    expect(group.length).toBe(3);
    const areas = group.map((f) => f.box.width * f.box.height);
    expect(areas).toEqual([...areas].sort((a, b) => b - a));
    const people = [...group, astronaut[0]!];
    for (let i = 0; i < people.length; i++) {
      for (let j = i + 1; j < people.length; j++) expect(hammingHex(code(people[i]), code(people[j]))).toBeGreaterThan(RADIUS);
    }
  });

  it("is deterministic: the same photo gives the same descriptor and code", async () => {
    const again = await analyzeFaces(await raster(ASTRONAUT));
    expect(Array.from(again[0]!.descriptor)).toEqual(Array.from(astronaut[0]!.descriptor));
    expect(code(again[0])).toBe(code(astronaut[0]));
  });

  it("reads grey 16-bit rasters as well as RGB 8-bit", async () => {
    const rgb = await raster(ASTRONAUT);
    const grey = new Uint16Array(rgb.width * rgb.height);
    for (let p = 0; p < grey.length; p++) {
      const [r, g, b] = [rgb.data[p * 3]!, rgb.data[p * 3 + 1]!, rgb.data[p * 3 + 2]!];
      grey[p] = Math.round(0.299 * r + 0.587 * g + 0.114 * b) * 257;
    }
    const faces = await analyzeFaces({ ...rgb, channels: 1, bitDepth: 16, data: grey });
    expect(faces).toHaveLength(1);
    await expect(analyzeFaces({ ...rgb, data: rgb.data.subarray(1) })).rejects.toThrow(/samples/);
  });

  it("finds no face in an image without people", async () => {
    const noise = Buffer.from(Array.from({ length: 256 * 256 * 3 }, (_, i) => (i * 2654435761) >>> 24));
    const png = await sharp(noise, { raw: { width: 256, height: 256, channels: 3 } })
      .png()
      .toBuffer();
    expect(await analyzeFaces(await raster(png))).toEqual([]);
  });

  it("gives exactly what face-api's own detect → landmarks → descriptors chain gives on the image tensor", async () => {
    // analyzeFaces crops faces from the RGB bytes instead of slicing the whole-image tensor (faster, same pixels).
    const img = await raster(GROUP);
    const ours = await analyzeFaces(img);
    const faceapi = await loadFaceModels();
    const input = faceapi.tf.tensor3d(toRgb8(img), [img.height, img.width, 3], "int32");
    const reference = await faceapi
      .detectAllFaces(input, new faceapi.SsdMobilenetv1Options({ minConfidence: 0.5, maxResults: 100 }))
      .withFaceLandmarks()
      .withFaceDescriptors();
    input.dispose();
    expect(ours).toHaveLength(3);
    for (const face of ours) {
      const ref = reference.find((r) => r.detection.score === face.score);
      expect(ref).toBeDefined();
      expect(Array.from(face.descriptor)).toEqual(Array.from(ref!.descriptor));
      expect(face.landmarks).toEqual(ref!.landmarks.positions.map((p) => [p.x, p.y]));
    }
  });

  it("describes only the largest faces when asked, with the descriptors the calibration was measured on", async () => {
    const raw = JSON.parse(readFileSync(new URL("../../models/identity/eval-raw-pose.json", import.meta.url), "utf8")) as {
      people: { id: string; descriptor: string }[];
    };
    const stored = raw.people
      .filter((p) => p.id.startsWith("sample1#"))
      .map((p) => Array.from(new Float32Array(Uint8Array.from(Buffer.from(p.descriptor, "base64")).buffer)));
    const all = await analyzeFaces(await raster(GROUP));
    const largest = await analyzeFaces(await raster(GROUP), { maxFaces: 1 });
    expect(largest).toHaveLength(1);
    expect(largest[0]!.box).toEqual(all[0]!.box);
    expect(Array.from(largest[0]!.descriptor)).toEqual(Array.from(all[0]!.descriptor));
    expect(all.map((f) => Array.from(f.descriptor))).toEqual(stored);
  });
});

describe("identity code", () => {
  it("is the shipped length and reproducible from the published seed", () => {
    expect(calibration.code.bits).toBe(IDENTITY_CODE_BITS);
    const m = projectionMatrix(IDENTITY_CODE_BITS);
    expect(Array.from(m)).toEqual(Array.from(projectionMatrix(IDENTITY_CODE_BITS)));
    expect(new Set(m)).toEqual(new Set([1, -1]));
    // Rademacher entries: about half are +1.
    const plus = m.filter((v) => v === 1).length / m.length;
    expect(plus).toBeGreaterThan(0.45);
    expect(plus).toBeLessThan(0.55);
    expect(Array.from(projectionMatrix(IDENTITY_CODE_BITS, 1))).not.toEqual(Array.from(m));
  });

  it("round-trips hex and counts Hamming distance", () => {
    const bits = Uint8Array.from({ length: 32 }, (_, i) => ((i * 7) % 3 === 0 ? 1 : 0));
    const hex = bitsToHex(bits);
    expect(hex).toHaveLength(8);
    expect(Array.from(hexToBits(hex, 32))).toEqual(Array.from(bits));
    expect(hammingHex("00000000", "ffffffff")).toBe(32);
    expect(hammingHex("0f0f0f0f", "0f0f0f0e")).toBe(1);
  });

  it("rejects malformed input with a clear error", () => {
    expect(() => identityCode(new Float32Array(127))).toThrow(/128 values/);
    expect(() => identityCode(new Float32Array(128).fill(NaN))).toThrow(/non-finite/);
    expect(() => hammingHex("abc", "abcd")).toThrow(/equal length/);
    expect(() => hexToBits("zz", 8)).toThrow(/hex digits/);
  });
});

describe("face.analyze pipeline", { timeout: 120_000 }, () => {
  it("returns faces with hex identity codes and no descriptor by default", async () => {
    const out = await faceAnalyzePipeline.run(context([await raster(ASTRONAUT)]));
    const result = out.result as { faces: Record<string, unknown>[]; identity_code_bits: number };
    expect(result.identity_code_bits).toBe(IDENTITY_CODE_BITS);
    expect(result.faces).toHaveLength(1);
    const [face] = result.faces;
    expect(face!.identity_code).toMatch(new RegExp(`^[0-9a-f]{${IDENTITY_CODE_BITS / 4}}$`));
    expect(face!.landmarks).toHaveLength(68);
    expect(face).not.toHaveProperty("descriptor");
    expect(out.images).toBeUndefined();
  });

  it("includes the descriptor on request and honours max_faces", async () => {
    const out = await faceAnalyzePipeline.run(context([await raster(GROUP)], { include_descriptor: true, max_faces: 1 }));
    const faces = (out.result as { faces: { descriptor: number[]; identity_code: string }[] }).faces;
    expect(faces).toHaveLength(1);
    expect(faces[0]!.descriptor).toHaveLength(128);
    expect(identityCode(faces[0]!.descriptor)).toBe(faces[0]!.identity_code);
  });

  it("returns the eye-levelled chip's descriptor on request, the identity code still from face-api's box", async () => {
    const img = await raster(ASTRONAUT);
    const box = await faceAnalyzePipeline.run(context([img], { include_descriptor: true }));
    const rot = await faceAnalyzePipeline.run(context([img], { include_descriptor: true, descriptor_chip: "rotated" }));
    type F = { descriptor: number[]; descriptor_chip: string; identity_code: string };
    const [b] = (box.result as { faces: F[] }).faces;
    const [r] = (rot.result as { faces: F[] }).faces;
    expect([b!.descriptor_chip, r!.descriptor_chip]).toEqual(["box", "rotated"]);
    expect(r!.identity_code).toBe(b!.identity_code);
    expect(identityCode(b!.descriptor)).toBe(b!.identity_code);
    // Another crop of the same face: near, not equal (the astronaut's eyes are almost level).
    const d = Math.sqrt(b!.descriptor.reduce((s, v, i) => s + (v - r!.descriptor[i]!) ** 2, 0));
    expect(d).toBeGreaterThan(0);
    expect(d).toBeLessThan(0.3);
    // Same as analyzeFaces' rotated chip, computed in one pass.
    const [direct] = await analyzeFaces(img, { chip: "rotated" });
    expect(r!.descriptor).toEqual(Array.from(direct!.descriptor, (v) => Number(v.toFixed(6))));
  });

  it("returns the jittered chip's descriptor, with the plain eye-levelled one as an extra, from one analysis", async () => {
    const img = await raster(ASTRONAUT);
    const out = await faceAnalyzePipeline.run(
      context([img], { include_descriptor: true, descriptor_chip: "rotated_jitter", extra_descriptor_chips: ["rotated"] }),
    );
    type F = { descriptor: number[]; descriptor_chip: string; identity_code: string; extra_descriptors: { rotated: number[] } };
    const [f] = (out.result as { faces: F[] }).faces;
    expect(f!.descriptor_chip).toBe("rotated_jitter");
    expect(f!.descriptor).toHaveLength(128);
    // The extra is exactly what a request for the plain chip alone returns (older records compare with it).
    const [direct] = await analyzeFaces(img, { chip: "rotated" });
    expect(f!.extra_descriptors.rotated).toEqual(Array.from(direct!.descriptor, (v) => Number(v.toFixed(6))));
    // The identity code stays on face-api's box chip, whatever chip the descriptor comes from.
    const [boxFace] = await analyzeFaces(img);
    expect(f!.identity_code).toBe(identityCode(boxFace!.descriptor));
    // A mean over nearby chips of the same face: close to the plain chip's descriptor, not equal, same scale.
    const d = Math.sqrt(f!.descriptor.reduce((s, v, i) => s + (v - f!.extra_descriptors.rotated[i]!) ** 2, 0));
    expect(d).toBeGreaterThan(0.005);
    expect(d).toBeLessThan(0.15);
    const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    expect(norm(f!.descriptor) / norm(f!.extra_descriptors.rotated)).toBeCloseTo(1, 1);
  });

  // The record comparison's worst benign probe in the calibration (models/identity/CARD.md section 3): the
  // second face of face-api's sample2.jpg after a x0.7 brightness change, whose landmarks move with the
  // detection box. The jittered chip's descriptor must move much less than the plain chip's.
  it("moves the descriptor of a darkened copy much less with the jittered chip than with the plain one", async () => {
    const path = new URL("../../node_modules/@vladmandic/face-api/demo/sample2.jpg", import.meta.url).pathname;
    const chips = { recordChips: ["rotated", "rotated_jitter"] as const };
    const original = await analyzeFaces(await raster(path), chips);
    const darker = await analyzeFaces(await raster(await sharp(path).linear(0.7, 0).png().toBuffer()), chips);
    const face = original[1]!;
    const iou = (a: AnalyzedFace["box"], b: AnalyzedFace["box"]) => {
      const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
      const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
      return w > 0 && h > 0 ? (w * h) / (a.width * a.height + b.width * b.height - w * h) : 0;
    };
    const same = darker.find((f) => iou(f.box, face.box) > 0.5)!;
    expect(same).toBeDefined();
    const dist = (c: "rotated" | "rotated_jitter") =>
      Math.sqrt(face.chipDescriptors![c]!.reduce((s, v, i) => s + (v - same.chipDescriptors![c]![i]!) ** 2, 0));
    const [plain, jittered] = [dist("rotated"), dist("rotated_jitter")];
    expect(jittered).toBeLessThan(0.7 * plain);
  });

  // The jittered chip's 6 extra landmark crops and its chips run as batched net calls; the calibration
  // threshold (models/identity/calibration.json) was fitted on descriptors from one call per crop and chip.
  // Batching must not move them: measured bit-identical on face-api's sample1-6 (22 faces); 1e-4 is the
  // euclidean margin allowed before the calibration would have to be redone.
  it("gives the same jittered and plain chip descriptors with batched net calls as with one call per chip", async () => {
    const img = await raster(new URL("../../node_modules/@vladmandic/face-api/demo/sample2.jpg", import.meta.url).pathname);
    const dist = (a: Float32Array, b: Float32Array) => Math.sqrt(a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0));
    // Both orders: with "rotated_jitter" first the plain chip rides in the batch, otherwise it is computed alone.
    for (const recordChips of [
      ["rotated_jitter", "rotated"],
      ["rotated", "rotated_jitter"],
    ] as const) {
      const batched = await analyzeFaces(img, { recordChips });
      const perChip = await analyzeFaces(img, { recordChips, batchJitter: false });
      expect(batched.length).toBeGreaterThan(1);
      expect(batched.map((f) => f.box)).toEqual(perChip.map((f) => f.box));
      batched.forEach((f, i) => {
        for (const c of recordChips) expect(dist(f.chipDescriptors![c]!, perChip[i]!.chipDescriptors![c]!)).toBeLessThan(1e-4);
      });
    }
  });

  // rotatedChipPixels is written for speed (it cuts 7 chips per face for the jittered descriptor); this is
  // the straightforward version it replaced, which the calibration's chips came from. Same float
  // expressions, so the chips must be identical, also where the chip reaches outside the image (black).
  it("cuts the eye-levelled chip exactly as the straightforward bilinear reference does", async () => {
    const reference = (rgb: Uint8Array, width: number, height: number, pts: { x: number; y: number }[]) => {
      const centre = (from: number, to: number) => {
        let [x, y] = [0, 0];
        for (let i = from; i < to; i++) [x, y] = [x + pts[i]!.x, y + pts[i]!.y];
        return { x: x / (to - from), y: y / (to - from) };
      };
      const [le, re, mouth] = [centre(36, 42), centre(42, 48), centre(48, 68)];
      const c = { x: (le.x + re.x + mouth.x) / 3, y: (le.y + re.y + mouth.y) / 3 };
      const dist = (a: { x: number; y: number }) => Math.hypot(mouth.x - a.x, mouth.y - a.y);
      const side = Math.floor((dist(le) + dist(re)) / 2 / 0.45);
      const theta = Math.atan2(re.y - le.y, re.x - le.x);
      const [cos, sin] = [Math.cos(theta), Math.sin(theta)];
      const out = new Int32Array(side * side * 3);
      for (let v = 0; v < side; v++) {
        for (let u = 0; u < side; u++) {
          const [ox, oy] = [u - 0.5 * side, v - 0.43 * side];
          const x = c.x + cos * ox - sin * oy;
          const y = c.y + sin * ox + cos * oy;
          const [x0, y0] = [Math.floor(x), Math.floor(y)];
          const [fx, fy] = [x - x0, y - y0];
          for (let k = 0; k < 3; k++) {
            const at = (xi: number, yi: number) =>
              xi < 0 || yi < 0 || xi >= width || yi >= height ? 0 : rgb[(yi * width + xi) * 3 + k]!;
            const top = at(x0, y0) * (1 - fx) + at(x0 + 1, y0) * fx;
            const bottom = at(x0, y0 + 1) * (1 - fx) + at(x0 + 1, y0 + 1) * fx;
            out[(v * side + u) * 3 + k] = Math.round(top * (1 - fy) + bottom * fy);
          }
        }
      }
      return { side, data: out };
    };
    const img = await raster(ASTRONAUT);
    const rgb = toRgb8(img);
    const [face] = await analyzeFaces(img);
    const pts = face!.landmarks.map(([x, y]) => ({ x, y }));
    // As found, and moved so that the chip hangs over the top-left and the bottom-right corners.
    const [dx, dy] = [face!.box.x + 20, face!.box.y + 20];
    for (const shift of [
      { x: 0, y: 0 },
      { x: -dx, y: -dy },
      { x: img.width - dx - 60, y: img.height - dy - 60 },
    ]) {
      const moved = pts.map((p) => ({ x: p.x + shift.x, y: p.y + shift.y }));
      const fast = rotatedChipPixels(rgb, img.width, img.height, moved)!;
      const ref = reference(rgb, img.width, img.height, moved);
      expect(fast.side).toBe(ref.side);
      expect(fast.data).toEqual(ref.data);
    }
  });

  it("reports the analysed image's size, so the worker can store boxes as fractions of it", async () => {
    const out = await faceAnalyzePipeline.run(context([await raster(ASTRONAUT)]));
    expect((out.result as { image: unknown }).image).toEqual({ width: 512, height: 512 });
  });

  // A face swap whose blending dropped the detector's score below the usual 0.5 cut: the e2e evaluation's
  // "inconclusive" case (models/identity/CARD.md section 4). test/fixtures/README.md says how it was made.
  it("finds a low-score swapped face when asked to look at the protected face's place, and nothing elsewhere", async () => {
    const swapped = await raster(SWAP_LOW_SCORE);
    expect(await analyzeFaces(swapped)).toEqual([]);
    // The protected (target) face's box in this 437x631 image, from analysing it before the swap.
    const target = { x: 139.2, y: 145.5, width: 155.2, height: 245.4 };
    const region = {
      x: target.x / swapped.width,
      y: target.y / swapped.height,
      width: target.width / swapped.width,
      height: target.height / swapped.height,
    };
    const out = await faceAnalyzePipeline.run(
      context([swapped], { region, min_score: 0.05, max_faces: 1, include_descriptor: true }),
    );
    const faces = (out.result as { faces: { box: typeof target; score: number; descriptor: number[]; landmarks: number[][] }[] })
      .faces;
    expect(faces).toHaveLength(1);
    const [f] = faces;
    expect(f!.score).toBeGreaterThanOrEqual(0.05);
    expect(f!.score).toBeLessThan(0.5);
    // Whole-image pixels (not the crop's), overlapping the protected box.
    const w = Math.min(f!.box.x + f!.box.width, target.x + target.width) - Math.max(f!.box.x, target.x);
    const h = Math.min(f!.box.y + f!.box.height, target.y + target.height) - Math.max(f!.box.y, target.y);
    expect((w * h) / (f!.box.width * f!.box.height + target.width * target.height - w * h)).toBeGreaterThanOrEqual(
      REGION_MIN_IOU,
    );
    expect(f!.landmarks.every(([x, y]) => x! > target.x - 60 && x! < target.x + target.width + 60 && y! > target.y - 60)).toBe(
      true,
    );
    expect(f!.descriptor).toHaveLength(128);
    // Nothing at a place without a face (the sky above the astronaut), even at the lowest cut.
    const empty = await faceAnalyzePipeline.run(
      context([await raster(ASTRONAUT)], { region: { x: 0.02, y: 0.02, width: 0.15, height: 0.15 }, min_score: 0.05 }),
    );
    expect((empty.result as { faces: unknown[] }).faces).toEqual([]);
  });

  // verify's region look at several protected faces' places in one job (worker/src/identity/flows.ts).
  describe("regions: the region look at several boxes in one job", () => {
    type Out = {
      box: { x: number; y: number; width: number; height: number };
      score: number;
      descriptor: number[];
      region_index?: number;
    };
    const facesOf = (out: { result: unknown }) => (out.result as { faces: Out[] }).faces;
    let group: RasterImage;
    let boxes: { x: number; y: number; width: number; height: number }[];
    const norm = (b: FaceBox, img: RasterImage) => ({
      x: b.x / img.width,
      y: b.y / img.height,
      width: b.width / img.width,
      height: b.height / img.height,
    });
    const overlap = (a: FaceBox, b: FaceBox) => {
      const w = Math.min(a.x + a.width, b.x + b.width) - Math.max(a.x, b.x);
      const h = Math.min(a.y + a.height, b.y + b.height) - Math.max(a.y, b.y);
      return w > 0 && h > 0 ? (w * h) / (a.width * a.height + b.width * b.height - w * h) : 0;
    };
    beforeAll(async () => {
      group = await raster(GROUP);
      // The largest and the smallest of sample1.jpg's three people, in that order.
      const found = await analyzeFaces(group);
      expect(found).toHaveLength(3);
      boxes = [found[0]!.box, found[2]!.box];
    }, 120_000);

    it("gives at most one face per box, tagged with its box's index, the same face a single `region` gives", async () => {
      const params = { include_descriptor: true, max_faces: 10 };
      const out = facesOf(
        await faceAnalyzePipeline.run(context([group], { ...params, regions: boxes.map((b) => norm(b, group)) })),
      );
      expect(out.map((f) => f.region_index)).toEqual([0, 1]);
      for (const [i, box] of boxes.entries()) {
        const [f] = out.filter((o) => o.region_index === i);
        expect(overlap(f!.box, box)).toBeGreaterThanOrEqual(REGION_MIN_IOU);
        // One box's look on its own: the same face, box and descriptor, without a region_index.
        const single = facesOf(await faceAnalyzePipeline.run(context([group], { ...params, region: norm(box, group) })));
        expect(single).toHaveLength(1);
        expect(single[0]).not.toHaveProperty("region_index");
        const { region_index, ...rest } = f!;
        expect(region_index).toBe(i);
        expect(rest).toEqual(single[0]);
      }
      // The two people are different faces (not one face found twice).
      expect(hammingHex(identityCode(out[0]!.descriptor), identityCode(out[1]!.descriptor))).toBeGreaterThan(RADIUS);
    });

    it("finds a low-score face at its box and nothing at a box without a face, in one job", async () => {
      const swapped = await raster(SWAP_LOW_SCORE);
      // The protected face's box in this image (see the single-region case above), then the top-left corner.
      const target = { x: 139.2, y: 145.5, width: 155.2, height: 245.4 };
      const regions = [{ x: 0.01, y: 0.01, width: 0.12, height: 0.08 }, norm(target, swapped)];
      const out = facesOf(
        await faceAnalyzePipeline.run(context([swapped], { regions, min_score: 0.05, include_descriptor: true })),
      );
      expect(out).toHaveLength(1);
      expect(out[0]!.region_index).toBe(1);
      expect(out[0]!.score).toBeLessThan(0.5);
      expect(overlap(out[0]!.box, target)).toBeGreaterThanOrEqual(REGION_MIN_IOU);
    });

    it("refuses `region` and `regions` together, and an empty `regions`", async () => {
      const region = norm(boxes[0]!, group);
      const both = faceAnalyzePipeline.run(context([group], { region, regions: [region] }));
      await expect(both).rejects.toMatchObject({ code: "invalid_params" });
      await expect(both).rejects.toThrow(/regions: region and regions exclude each other/);
      await expect(faceAnalyzePipeline.run(context([group], { regions: [] }))).rejects.toMatchObject({
        code: "invalid_params",
      });
    });
  });

  it("refuses a detector cut below 0.5 over the whole image (it admits non-faces)", async () => {
    await expect(faceAnalyzePipeline.run(context([await raster(ASTRONAUT)], { min_score: 0.1 }))).rejects.toMatchObject({
      code: "invalid_params",
    });
  });

  it("rejects unknown parameters and a missing input", async () => {
    await expect(faceAnalyzePipeline.run(context([], {}))).rejects.toMatchObject({ code: "input_unavailable" });
    await expect(faceAnalyzePipeline.run(context([await raster(ASTRONAUT)], { bogus: 1 }))).rejects.toMatchObject({
      code: "invalid_params",
    });
  });
});
