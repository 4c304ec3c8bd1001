import type { InferenceSession } from "onnxruntime-node";
import {
  restorePlanar,
  restoreRaster,
  thumbnailFeed,
  tiledRestoration,
  type TiledModel,
  type TiledRunOptions,
} from "../restoration/tiled.ts";
import { definePipeline, type RasterImage } from "./types.ts";

/**
 * Low-light enhancement (models/lowlight/CARD.md): a gamma map from a 128 x 128 thumbnail of the whole photo, sampled
 * in image coordinates (the `roi` feed), so the map is continuous across tiles.
 */
export const MODEL_ID = "lowlight-iagc";
export const THUMB = 128;
export const TILE = 1024;
export const OVERLAP = 32;

export const LOWLIGHT: TiledModel = {
  model: MODEL_ID,
  input: "image",
  output: "enhanced",
  tile: TILE,
  overlap: OVERLAP,
  // The refinement convs (3 layers of 3x3) see zero padding this close to a tile edge; beyond it tiles agree.
  edgeMargin: 4,
  thumbnail: { size: THUMB, feeds: thumbnailFeed("thumb") },
  position: "roi",
};

export const lowlightPipeline = definePipeline(
  "enhance.lowlight",
  tiledRestoration({ operation: "enhance.lowlight", ...LOWLIGHT }),
);

export const enhanceRaster = (session: InferenceSession, input: RasterImage, opts?: TiledRunOptions) =>
  restoreRaster(session, LOWLIGHT, input, opts);

export const enhancePlanar = (
  session: InferenceSession,
  rgb: Float32Array,
  height: number,
  width: number,
  opts?: TiledRunOptions,
) => restorePlanar(session, LOWLIGHT, rgb, height, width, opts);
