import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import * as ort from "onnxruntime-node";
import sharp, { type Sharp } from "sharp";
import { beforeAll, describe, expect, it } from "vitest";
import { decodeImage } from "../../gpu-runner/src/image/decode.ts";
import { encodeImage } from "../../gpu-runner/src/image/encode.ts";
import type { RasterImage } from "../../gpu-runner/src/operations/types.ts";
import { DECODE_READINGS, decode, embed } from "../../gpu-runner/src/operations/watermark.ts";
import { presencePValue } from "../../gpu-runner/src/operations/watermark-code.ts";
import { openEncoder, type EncoderSessions } from "../../gpu-runner/src/operations/watermark-encoder.ts";
import {
  MIN_SIDE,
  READINGS,
  alignmentZ,
  TILE,
  chipGrid,
  fullFrameHypothesis,
  polish,
  readChips,
  softBits,
  tileShift,
  tileSign,
  workingViewOf,
  type Hypothesis,
} from "../../gpu-runner/src/operations/watermark-tiled.ts";
import { decodeChannel } from "../../gpu-runner/src/operations/watermark-code.ts";
import { uniform } from "../../contract/random.ts";
import { mapBoxToCopy, visibleShare, type TiledGeometry } from "../../contract/watermark-geometry.ts";

/**
 * Codec 2 (the tiled mark) through real codecs: crops, reframes, mirrors, rescales and rotations of a marked
 * photo are read back exactly, with the geometry of the copy relative to the original, and the p-value pays for
 * the whole search. The held-out numbers are in models/watermark/CARD.md (models/watermark/eval/evaluate.ts).
 */

const root = (p: string) => fileURLToPath(new URL(`../../${p}`, import.meta.url));
const LIMITS = { maxPixels: 50_000_000 };
const HEX = "0123456789abcdef";
let enc: EncoderSessions;
let dec: ort.InferenceSession;
let marked: RasterImage;
let markedPng: Buffer;
const W = 1200;
const H = 800;

async function photo(width: number, height: number): Promise<RasterImage> {
  const src = await readFile(root("test/fixtures/photo.jpg"));
  // The fixture stretched is one smooth upscale, an easy host: add non-periodic texture (seeded noise at a third
  // of the resolution, smoothed up) so that the host's own detail interferes with the mark as a photo's does.
  const base = await sharp(src).resize(width, height, { fit: "fill" }).toBuffer();
  const next = uniform(7);
  const [nw, nh] = [Math.round(width / 3), Math.round(height / 3)];
  const noise = Buffer.from(Array.from({ length: nw * nh }, () => 96 + Math.round(next() * 64)));
  const texture = await sharp(noise, { raw: { width: nw, height: nh, channels: 1 } })
    .resize(width, height, { fit: "fill", kernel: "cubic" })
    .png()
    .toBuffer();
  return decodeImage(
    await sharp(base)
      .composite([{ input: texture, blend: "soft-light" }])
      .png()
      .toBuffer(),
    LIMITS,
  );
}

async function copyOf(edit: (s: Sharp) => Sharp, format: "png" | "jpeg" = "png", quality = 90): Promise<RasterImage> {
  const s = edit(sharp(markedPng));
  const bytes = format === "png" ? await s.png().toBuffer() : await s.jpeg({ quality }).toBuffer();
  return decodeImage(bytes, LIMITS);
}

beforeAll(async () => {
  enc = await openEncoder(root("models/watermark/weights"), { intraOpNumThreads: 1 });
  dec = await ort.InferenceSession.create(root("models/watermark/weights/decoder.onnx"), { intraOpNumThreads: 1 });
  const out = await embed(enc, await photo(W, H), HEX, 1, dec);
  expect(out.codec).toBe(2);
  expect(out.psnr).toBeGreaterThanOrEqual(40);
  marked = out.image;
  markedPng = await encodeImage(marked, "png");
});

const tiledOf = (g: unknown): TiledGeometry => {
  expect(g).toMatchObject({ codec: 2 });
  return g as TiledGeometry;
};

describe("codec 2: reframed copies are read exactly, with their geometry", () => {
  it("reads the unedited copy: codec 2, identity geometry, p-value = readings x the exact one", async () => {
    const r = await decode(dec, await decodeImage(markedPng, LIMITS));
    expect(r).toMatchObject({ bits: HEX, detected: true, codec: 2 });
    expect(r.p_value).toBeCloseTo(DECODE_READINGS * presencePValue(r.errors!), 12);
    expect(DECODE_READINGS).toBe(READINGS + 9);
    // The whole search still leaves d <= 8 detected: 12 x 8.3e-8 <= 1e-6.
    expect(DECODE_READINGS * presencePValue(8)).toBeLessThanOrEqual(1e-6);
    const g = tiledOf(r.geometry);
    expect(g.flipped).toBe(false);
    expect(Math.abs(g.rotation_deg)).toBeLessThan(0.3);
    expect(g.short_side_px).toBeCloseTo(H, -1); // within 5 px of 800
    expect(Math.abs(g.origin_x)).toBeLessThan(4);
    expect(Math.abs(g.origin_y)).toBeLessThan(4);
  });

  // [name, edit, expected origin of the original in the copy, expected short side in the copy, flipped]
  const cases: [string, (s: Sharp) => Sharp, [number, number], number, boolean][] = [
    ["centre crop 80 %", (s) => s.extract({ left: 120, top: 80, width: 960, height: 640 }), [-120, -80], 800, false],
    [
      "corner crop 90 % (bottom right)",
      (s) => s.extract({ left: 120, top: 80, width: 1080, height: 720 }),
      [-120, -80],
      800,
      false,
    ],
    ["largest centred 1:1", (s) => s.extract({ left: 200, top: 0, width: 800, height: 800 }), [-200, 0], 800, false],
    ["largest centred 16:9", (s) => s.extract({ left: 0, top: 62, width: 1200, height: 675 }), [0, -62], 800, false],
    [
      "off-centre 70 % x 85 % then half size",
      (s) => s.extract({ left: 300, top: 40, width: 840, height: 680 }).resize(420, 340),
      [-150, -20],
      400,
      false,
    ],
    ["mirror", (s) => s.flop(), [1200, 0], 800, true],
    [
      "mirror + centre crop 80 %",
      (s) => s.extract({ left: 120, top: 80, width: 960, height: 640 }).flop(),
      [1080, -80],
      800,
      true,
    ],
  ];
  for (const [name, edit, [ox, oy], short, flipped] of cases)
    it(`${name}: exact bits, origin within 1.5 % of the short side, scale within 1 %`, async () => {
      const r = await decode(dec, await copyOf(edit));
      expect(r, name).toMatchObject({ bits: HEX, detected: true, codec: 2 });
      const g = tiledOf(r.geometry);
      expect(g.flipped).toBe(flipped);
      expect(Math.abs(g.short_side_px / short - 1)).toBeLessThan(0.01);
      expect(Math.abs(g.origin_x - ox), `origin x ${g.origin_x}`).toBeLessThan(0.015 * short);
      expect(Math.abs(g.origin_y - oy), `origin y ${g.origin_y}`).toBeLessThan(0.015 * short);
    });

  it("crop 85 % + 720 px + JPEG q80: exact bits and the copy's scale", async () => {
    const r = await decode(
      dec,
      await copyOf((s) => s.extract({ left: 90, top: 60, width: 1020, height: 680 }).resize(720), "jpeg", 80),
    );
    expect(r).toMatchObject({ bits: HEX, detected: true, codec: 2 });
    const g = tiledOf(r.geometry);
    const k = 720 / 1020;
    expect(Math.abs(g.short_side_px / (800 * k) - 1)).toBeLessThan(0.01);
    expect(Math.abs(g.origin_x + 90 * k)).toBeLessThan(8);
    expect(Math.abs(g.origin_y + 60 * k)).toBeLessThan(8);
  });

  it("a rotation of 2 degrees (cropped back) is read, and reported with its sign (positive = clockwise)", async () => {
    for (const degrees of [2, -2]) {
      const rotated = await sharp(markedPng).rotate(degrees, { background: "#000" }).toBuffer({ resolveWithObject: true });
      const left = Math.floor((rotated.info.width - 1000) / 2);
      const top = Math.floor((rotated.info.height - 640) / 2);
      const copy = await decodeImage(
        await sharp(rotated.data).extract({ left, top, width: 1000, height: 640 }).png().toBuffer(),
        LIMITS,
      );
      const r = await decode(dec, copy);
      expect(r, `${degrees} deg`).toMatchObject({ bits: HEX, detected: true, codec: 2 });
      expect(tiledOf(r.geometry).rotation_deg).toBeCloseTo(degrees, 0);
    }
  });

  it("the geometry maps a box of the original onto the same content in the copy", async () => {
    // A box around the original's pixels (600..720, 300..420); after a 0.8 centre crop it sits at (480.., 220..).
    const r = await decode(dec, await copyOf((s) => s.extract({ left: 120, top: 80, width: 960, height: 640 })));
    const g = tiledOf(r.geometry);
    const box = { x: 600 / W, y: 300 / H, width: 120 / W, height: 120 / H };
    const mapped = mapBoxToCopy(g, { width: W, height: H }, { width: 960, height: 640 }, box);
    expect(mapped.x * 960).toBeCloseTo(480, -1);
    expect(mapped.y * 640).toBeCloseTo(220, -1);
    expect(mapped.width * 960).toBeCloseTo(120, -1);
    expect(visibleShare(mapped)).toBe(1);
    // A box the crop removed (the original's top-left corner) is outside the copy.
    expect(
      visibleShare(
        mapBoxToCopy(g, { width: W, height: H }, { width: 960, height: 640 }, { x: 0, y: 0, width: 0.05, height: 0.05 }),
      ),
    ).toBe(0);
  });
});

/** The 64 bits read at one hypothesis, or null when no codeword is within d <= 8. */
async function bitsAt(copy: RasterImage, hyp: Hypothesis): Promise<string | null> {
  const r = decodeChannel(softBits(readChips(await workingViewOf(copy), hyp, false).bitStats));
  return r.errors !== null && r.errors <= 8 ? r.bits : null;
}

/** The true hypothesis of a crop (left, top) of the marked W x H original kept at full size, as the view sees it. */
async function trueHypothesis(copy: RasterImage, left: number, top: number): Promise<Hypothesis> {
  const view = await workingViewOf(copy);
  const { cols, rows } = chipGrid(W, H);
  const [cx, cy] = [W / cols, H / rows];
  const [px, py] = [(TILE * cx) / view.scaleX, (TILE * cy) / view.scaleY];
  return {
    lattice: { e1: [px, 0], e2: [0, py] },
    flip: 1,
    ta: (left + view.offsetX) / (TILE * cx),
    tb: (top + view.offsetY) / (TILE * cy),
    z: 0,
  };
}

describe("codec 2: the parts of the search", () => {
  it("the full-frame hypothesis is the original's own grid, plain or mirrored, and reads the payload", async () => {
    const plainView = await workingViewOf(marked);
    const plain = fullFrameHypothesis(plainView);
    const { cols } = chipGrid(W, H);
    expect(plain.flip).toBe(1);
    expect(plain.lattice.e1[0]).toBeCloseTo((TILE * plainView.w) / cols, 6);
    expect([plain.ta, plain.tb]).toEqual([0, 0]);
    expect(await bitsAt(marked, plain)).toBe(HEX);

    const mirrored = await copyOf((s) => s.flop());
    const m = fullFrameHypothesis(await workingViewOf(mirrored));
    expect(m.flip).toBe(-1);
    expect(await bitsAt(mirrored, m)).toBe(HEX);
  });

  it("polishing moves a slightly wrong alignment back to the true one", async () => {
    const copy = await copyOf((s) => s.extract({ left: 120, top: 80, width: 960, height: 640 }));
    const view = await workingViewOf(copy);
    const truth = await trueHypothesis(copy, 120, 80);
    // 0.4 % too large, a third of a chip off in both offsets.
    const k = 1.004;
    const off: Hypothesis = {
      ...truth,
      lattice: { e1: [truth.lattice.e1[0] * k, 0], e2: [0, truth.lattice.e2[1] * k] },
      ta: truth.ta + 1 / (3 * TILE),
      tb: truth.tb - 1 / (3 * TILE),
    };
    const p = polish(view, off);
    expect(Math.abs(p.lattice.e1[0] / truth.lattice.e1[0] - 1)).toBeLessThan(0.0015);
    // Compare where the view's centre lands in the original (chips), the quantity the payload reading depends on.
    const centreChip = (h: Hypothesis) => [
      TILE * (view.w / 2 / h.lattice.e1[0] + h.ta),
      TILE * (view.h / 2 / h.lattice.e2[1] + h.tb),
    ];
    const [tu, tv] = centreChip(truth);
    const [pu, pv] = centreChip(p);
    expect(Math.hypot(pu! - tu!, pv! - tv!)).toBeLessThan(0.2);
    expect(await bitsAt(copy, p)).toBe(HEX);
  });

  it("the alignment z-score separates the true geometry of a crop from wrong ones, marked or not", async () => {
    const copy = await copyOf((s) => s.extract({ left: 120, top: 80, width: 960, height: 640 }));
    const view = await workingViewOf(copy);
    const truth = await trueHypothesis(copy, 120, 80);
    const atTruth = alignmentZ(view, truth);
    // Where the decoder switches on its scale scan: a crop whose geometry is known must clear it.
    expect(atTruth).toBeGreaterThan(7);
    // 3 % off in scale, or half a tile off in offset: no better than noise.
    const wrongScale = {
      ...truth,
      lattice: { e1: [truth.lattice.e1[0] * 1.03, 0], e2: [0, truth.lattice.e2[1] * 1.03] },
    } as Hypothesis;
    expect(Math.abs(alignmentZ(view, wrongScale))).toBeLessThan(5);
    expect(Math.abs(alignmentZ(view, { ...truth, ta: truth.ta + 0.5, tb: truth.tb + 0.5 }))).toBeLessThan(5);
    // The same crop and geometry on the unmarked photo.
    const plainPng = await encodeImage(await photo(W, H), "png");
    const plainCrop = await decodeImage(
      await sharp(plainPng).extract({ left: 120, top: 80, width: 960, height: 640 }).png().toBuffer(),
      LIMITS,
    );
    expect(Math.abs(alignmentZ(await workingViewOf(plainCrop), truth))).toBeLessThan(5);
  });
});

describe("codec 2: presence test and fallbacks", () => {
  it("an unmarked photo and crops of it are not detected, and report no codec or geometry", async () => {
    const plain = await photo(W, H);
    const png = await encodeImage(plain, "png");
    for (const edit of [(s: Sharp) => s, (s: Sharp) => s.extract({ left: 100, top: 50, width: 700, height: 600 })]) {
      const r = await decode(dec, await decodeImage(await edit(sharp(png)).png().toBuffer(), LIMITS));
      expect(r.detected).toBe(false);
      expect(r.p_value).toBeGreaterThan(1e-6);
      expect(r.codec).toBeNull();
      expect(r.geometry).toBeNull();
    }
  });

  it("an image marked with codec 1 (before codec 2) still decodes, as codec 1 with the whole-frame geometry", async () => {
    const { image: v1, codec } = await embed(enc, await photo(1024, 768), HEX, 1, dec, { codec: 1 });
    expect(codec).toBe(1);
    const r = await decode(dec, await decodeImage(await encodeImage(v1, "jpeg", 85), LIMITS));
    expect(r).toMatchObject({ bits: HEX, detected: true, codec: 1, geometry: { codec: 1 } });
    expect(r.p_value).toBeCloseTo(DECODE_READINGS * presencePValue(r.errors!), 12);
  });

  it(`images with a short side under ${MIN_SIDE} px get codec 1`, async () => {
    const out = await embed(enc, await photo(400, 200), HEX, 1, dec);
    expect(out.codec).toBe(1);
    const r = await decode(dec, out.image);
    expect(r).toMatchObject({ bits: HEX, detected: true, codec: 1 });
  });

  it("codec 2 on grey, alpha and 16-bit images and at 16:1 keeps the layout and reads back", async () => {
    const src = await readFile(root("test/fixtures/photo.jpg"));
    for (const [w, h, mode] of [
      [640, 480, "grey"],
      [640, 480, "alpha"],
      [640, 480, "16bit"],
      [4096, 256, "rgb"],
    ] as const) {
      let s = sharp(src).resize(w, h, { fit: "fill" });
      if (mode === "grey") s = s.greyscale();
      if (mode === "alpha") s = s.ensureAlpha(0.8);
      const bytes = mode === "16bit" ? await s.toColourspace("rgb16").png().toBuffer() : await s.png().toBuffer();
      const input = await decodeImage(bytes, LIMITS);
      const out = await embed(enc, input, HEX, 1, dec);
      expect(out.codec, `${w}x${h} ${mode}`).toBe(2);
      expect(out.image.bitDepth).toBe(input.bitDepth);
      expect(out.image.hasAlpha).toBe(input.hasAlpha);
      expect(out.psnr).toBeGreaterThanOrEqual(40);
      if (mode === "grey") {
        // A grey photo gets a luminance-only mark: it stays grey (the chroma part is for colour images).
        const d = out.image.data;
        for (let i = 0; i < d.length; i += out.image.channels) expect(d[i] === d[i + 1] && d[i] === d[i + 2]).toBe(true);
      }
      const r = await decode(dec, await decodeImage(await encodeImage(out.image, "png"), LIMITS));
      expect(r, `${w}x${h} ${mode}`).toMatchObject({ bits: HEX, detected: true, codec: 2 });
    }
  });

  it("the chip grid is 128 chips along the short side, whatever the orientation", () => {
    expect(chipGrid(1200, 800)).toEqual({ cols: 192, rows: 128 });
    expect(chipGrid(800, 1200)).toEqual({ cols: 128, rows: 192 });
    expect(chipGrid(4000, 250)).toEqual({ cols: 2048, rows: 128 });
  });

  it("the position code finds the whole-tile shift from per-tile statistics, and refuses shifts below tile 0", () => {
    // A copy whose tiles (0..2, 0..2) in its own frame are tiles (3..5, 1..3) of a landscape original.
    const tiles = new Map<string, { i: number; j: number; stat: number; weight: number }>();
    for (let i = 0; i < 3; i++)
      for (let j = 0; j < 3; j++) tiles.set(`${i},${j}`, { i, j, stat: 10 * tileSign(i + 3, j + 1), weight: 100 });
    expect(tileShift(tiles)).toMatchObject({ di: 3, dj: 1 });
  });
});
