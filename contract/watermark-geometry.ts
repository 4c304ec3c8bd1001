import { z } from "zod";

/**
 * Where a watermark decoder found the marked original inside a copy. Both sides read it: the runner's
 * `watermark.decode` reports it, and verify maps the protected face boxes into the copy's frame with it.
 *
 * Codec 2 (the tiled mark, gpu-runner/src/operations/watermark-tiled.ts) is laid on a grid tied to the original's
 * short side S, so a blind decoder recovers the geometry in units of S: `matrix` maps a point of the original,
 * given as (u, v) = (x / S, y / S) in continuous pixel coordinates (pixel centres at +0.5), to continuous pixel
 * coordinates of the copy:
 *
 *   copy_x = m[0][0] u + m[0][1] v + m[0][2],   copy_y = m[1][0] u + m[1][1] v + m[1][2].
 *
 * `short_side_px` is S as it appears in the copy (so the copy's scale relative to the original is
 * short_side_px / S, which needs the original's size: the asset record has it), `origin_x`/`origin_y` are where
 * the original's top-left corner lands (negative when a crop removed it), `rotation_deg` is the copy's rotation
 * relative to the original (positive = clockwise on screen, y pointing down), and `flipped` is a horizontal
 * mirror (applied before the rotation).
 *
 * Codec 1 (the whole-frame mark) has no geometry of its own: it reads the copy as the whole original, so a box
 * in fractions of the original is the same box in fractions of the copy; `rotation_deg` is the derotation its
 * search undid.
 */
export const WholeFrameGeometry = z.object({
  codec: z.literal(1),
  rotation_deg: z.number(),
});

export const TiledGeometry = z.object({
  codec: z.literal(2),
  matrix: z.tuple([z.tuple([z.number(), z.number(), z.number()]), z.tuple([z.number(), z.number(), z.number()])]),
  short_side_px: z.number().positive(),
  origin_x: z.number(),
  origin_y: z.number(),
  rotation_deg: z.number(),
  flipped: z.boolean(),
  /**
   * How sure the decoder is of the whole-tile part of the offset (the mark repeats every quarter of S; a keyed
   * per-tile code tells the repeats apart): the z-score of the winning tile shift over the others. Below about 4,
   * the offset may be off by whole tiles (S / 4).
   */
  position_z: z.number(),
});

export const WatermarkGeometry = z.discriminatedUnion("codec", [WholeFrameGeometry, TiledGeometry]);
export type WatermarkGeometry = z.infer<typeof WatermarkGeometry>;
export type TiledGeometry = z.infer<typeof TiledGeometry>;

export interface Size {
  width: number;
  height: number;
}
/** A box in fractions of its image's width and height. */
export interface NormBox {
  x: number;
  y: number;
  width: number;
  height: number;
}

/** A point of the original (pixels) in the copy (pixels). */
export function originalToCopy(g: TiledGeometry, original: Size, x: number, y: number): { x: number; y: number } {
  const s = Math.min(original.width, original.height);
  const u = x / s;
  const v = y / s;
  const [[a, b, tx], [c, d, ty]] = g.matrix;
  return { x: a * u + b * v + tx, y: c * u + d * v + ty };
}

/**
 * A box given in fractions of the original, as fractions of the copy: the axis-aligned bounds of its four mapped
 * corners, not clipped (a face the crop removed lands partly or wholly outside [0, 1]). Codec 1 returns it as is.
 */
export function mapBoxToCopy(g: WatermarkGeometry, original: Size, copy: Size, box: NormBox): NormBox {
  if (g.codec === 1) return { ...box };
  const corners = [
    [box.x, box.y],
    [box.x + box.width, box.y],
    [box.x, box.y + box.height],
    [box.x + box.width, box.y + box.height],
  ].map(([fx, fy]) => originalToCopy(g, original, fx! * original.width, fy! * original.height));
  const xs = corners.map((p) => p.x / copy.width);
  const ys = corners.map((p) => p.y / copy.height);
  const x0 = Math.min(...xs);
  const y0 = Math.min(...ys);
  return { x: x0, y: y0, width: Math.max(...xs) - x0, height: Math.max(...ys) - y0 };
}

/** The share of a normalised box that lies inside its image (0 when a crop removed it). */
export function visibleShare(box: NormBox): number {
  const w = Math.min(1, box.x + box.width) - Math.max(0, box.x);
  const h = Math.min(1, box.y + box.height) - Math.max(0, box.y);
  if (w <= 0 || h <= 0 || box.width <= 0 || box.height <= 0) return 0;
  return (w * h) / (box.width * box.height);
}

/** The copy's scale relative to the original (copy pixels per original pixel). */
export function copyScale(g: TiledGeometry, original: Size): number {
  return g.short_side_px / Math.min(original.width, original.height);
}
