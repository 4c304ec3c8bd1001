import { DERAIN_METHODS } from "../../../../contract/operations.ts";
import { thumbnailFeed, type TiledRestorationModel } from "../../restoration/tiled.ts";

/**
 * heavy-two-branch (models/derain_heavy_two_branch, after Li, Cheong, Tan, CVPR 2019) inverts the heavy-rain model
 * I = T (J + S) + (1 - T) A inside its graph and refines the result with an SPP stage. The haze-removal degree is
 * the graph's own `dehaze` feed (a [1] scalar from the job's params, the same for every tile): the veil is lifted
 * by T_d = 1 - d (1 - T) and the refinement was trained on random d, so d = 1 is the full restoration and d = 0 the
 * streak-free image under its veil. Maps: `transmission` is the T_d the graph inverted, `rain` its rain-localisation
 * probability (white = streak).
 */
export const heavyTwoBranch: TiledRestorationModel<"enhance.derain"> = {
  model: DERAIN_METHODS["heavy-two-branch"],
  input: "image",
  output: "derained",
  tile: 1024,
  // Measured on this graph (CARD.md, "Tiles and seams"): see the seam tests in test/runner/derain-heavy-two-branch.test.ts.
  overlap: 320,
  edgeMargin: 144,
  // The streak branch has three stride-2 stages: tiles must sample its 1/8 grid as the whole image does.
  align: 8,
  thumbnail: { size: 128, feeds: thumbnailFeed("thumb") },
  perImage: ["atmospheric_light"],
  scalars: ({ dehaze }) => ({ dehaze }),
  rasters: ({ maps }) => ({
    image: { channels: 3, from: "derained" },
    ...(maps && {
      transmission: { channels: 1, from: "transmission" },
      rain: { channels: 1, from: "rain_mask" },
    }),
  }),
};
