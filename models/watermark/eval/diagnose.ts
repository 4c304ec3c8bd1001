/**
 * Where codec 2 loses a copy: per photo and edit, the channel bit errors at the TRUE geometry (known from the edit)
 * and at each hypothesis the decoder reads, with its synchronisation z-score, and how far the nearest lattice
 * candidate is from the true lattice. A reading marked "ok" lies within d <= 8 of a codeword (detected).
 *
 *   npx tsx models/watermark/eval/diagnose.ts [--quiet] [--overlay dots] PHOTO...
 *
 * PHOTO is a file name under models/data/photos/ or a path. --quiet prints only the copies not read, then the
 * tally per edit. --overlay dots first darkens a grid of dots at a period near the tile's (0.6-1.5 x, seeded by
 * the file name): a synthetic structured host, like a chart, a facade or a fabric. The choices in CARD.md
 * ("Choices") were measured with it on the 24 training photos (`splits.json`, split "train").
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import sharp from "sharp";
import { sh, toRaster } from "./raster.ts";
import * as T from "../../../gpu-runner/src/operations/watermark-tiled.ts";
import { applyResidual } from "../../../gpu-runner/src/operations/watermark-residual.ts";
import { channelBits, decodeChannel } from "../../../gpu-runner/src/operations/watermark-code.ts";
import type { RasterImage } from "../../../gpu-runner/src/operations/types.ts";

const { values: args, positionals: files } = parseArgs({
  allowPositionals: true,
  options: { quiet: { type: "boolean", default: false }, overlay: { type: "string" } },
});

type Box = [left: number, top: number, width: number, height: number];
interface Edit {
  name: string;
  box: (w: number, h: number) => Box;
  /** Resize the crop to this size. */
  out?: (w: number, h: number) => [number, number];
  jpeg?: number;
}
const cropAt =
  (kx: number, ky: number, fx = 0.5, fy = 0.5) =>
  (w: number, h: number): Box => {
    const [cw, ch] = [Math.round(w * kx), Math.round(h * ky)];
    return [Math.round((w - cw) * fx), Math.round((h - ch) * fy), cw, ch];
  };
const aspect =
  (a: number) =>
  (w: number, h: number): Box =>
    w / h > a ? cropAt((h * a) / w, 1)(w, h) : cropAt(1, w / a / h)(w, h);
const whole = (w: number, h: number): Box => [0, 0, w, h];
const EDITS: Edit[] = [
  { name: "none", box: whole },
  { name: "jpeg q75", box: whole, jpeg: 75 },
  { name: "centre 80 %", box: cropAt(0.8, 0.8) },
  { name: "70 x 85 %", box: cropAt(0.7, 0.85, 0.2, 0.7) },
  { name: "16:9", box: aspect(16 / 9) },
  { name: "4:5", box: aspect(4 / 5) },
  { name: "50 % area", box: cropAt(Math.SQRT1_2, Math.SQRT1_2, 0.8, 0.3) },
  {
    name: "85 %+720+q80",
    box: cropAt(0.85, 0.85),
    out: (w, h) => [Math.round((w * 720) / Math.max(w, h)), Math.round((h * 720) / Math.max(w, h))],
    jpeg: 80,
  },
];

function dots(img: RasterImage, key: string): RasterImage {
  let seed = [...key].reduce((a, c) => (Math.imul(a, 31) + c.charCodeAt(0)) >>> 0, 7);
  const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  const period = (Math.min(img.width, img.height) / 4) * (0.6 + next() * 0.9);
  const angle = (next() - 0.5) * 0.1;
  const [c, s] = [Math.cos(angle), Math.sin(angle)];
  const out = Uint8Array.from(img.data);
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++) {
      const u = (c * x + s * y) / period;
      const v = (-s * x + c * y) / period;
      if ((u - Math.round(u)) ** 2 + (v - Math.round(v)) ** 2 < 0.04)
        for (let k = 0; k < 3; k++) out[(y * img.width + x) * img.channels + k]! *= 0.3;
    }
  return { ...img, data: out };
}

const sent = channelBits("0123456789abcdef");
const errors = (probs: number[]) => probs.reduce((n, p, i) => n + ((p > 0.5 ? 1 : 0) !== sent[i] ? 1 : 0), 0);
const tally = new Map<string, number>();
for (const file of files) {
  let img = await toRaster(sharp(await readFile(file.includes("/") ? file : `models/data/photos/${file}`)).rotate());
  if (args.overlay === "dots") img = dots(img, file);
  const t = await T.tiledResidual(img, sent, 1);
  const marked = applyResidual(img, t.residual, 1, { cols: t.cols, rows: t.rows }).image;
  const { cols, rows } = T.chipGrid(img.width, img.height);
  for (const e of EDITS) {
    const [left, top, cw, ch] = e.box(img.width, img.height);
    let s = sh(marked).extract({ left, top, width: cw, height: ch });
    const [ow, oh] = e.out ? e.out(cw, ch) : [cw, ch];
    if (e.out) s = s.resize(ow, oh, { fit: "fill" });
    if (e.jpeg) s = sharp(await s.jpeg({ quality: e.jpeg }).toBuffer());
    const view = await T.workingViewOf(await toRaster(s));
    // The true hypothesis: copy pixel -> original pixel is left + (cw / ow) * p; a chip is width / cols px.
    const k = cw / ow;
    const [cx, cy] = [img.width / cols, img.height / rows];
    const [px, py] = [(T.TILE * cx) / (k * view.scaleX), (T.TILE * cy) / (k * view.scaleY)];
    const truth: T.Hypothesis = {
      lattice: { e1: [px, 0], e2: [0, py] },
      flip: 1,
      ta: (left + k * view.offsetX) / (T.TILE * cx),
      tb: (top + k * view.offsetY) / (T.TILE * cy),
      z: 0,
    };
    const trueErrors = errors(T.softBits(T.readChips(view, truth, false).bitStats));
    const nearest = Math.min(...T.latticeCandidates(view).map((l) => Math.hypot(l.e1[0] - px, l.e1[1], l.e2[0], l.e2[1] - py)));
    const readings = T.tiledHypotheses(view).map((h) => {
      const probs = T.softBits(T.readChips(view, h, false).bitStats);
      const d = decodeChannel(probs);
      return { text: `z ${h.z.toFixed(1)} e ${errors(probs)}`, ok: d.errors !== null && d.errors <= 8 };
    });
    const ok = readings.some((r) => r.ok);
    tally.set(e.name, (tally.get(e.name) ?? 0) + (ok ? 1 : 0));
    if (!args.quiet || !ok)
      console.log(
        `${file.split("/").pop()!.slice(0, 30).padEnd(30)} ${e.name.padEnd(13)} true geometry: e ${String(trueErrors).padStart(3)}` +
          `, nearest candidate ${nearest.toFixed(2)} samples | ${readings.map((r) => r.text + (r.ok ? " ok" : "")).join(", ")}`,
      );
  }
}
const total = [...tally.values()].reduce((a, b) => a + b, 0);
console.log(
  [...tally].map(([k, v]) => `${k} ${v}/${files.length}`).join(" | "),
  `| total ${total}/${files.length * EDITS.length}`,
);
