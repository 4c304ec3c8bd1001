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
  // The graph's reach is 208 px (gradient of one output pixel, random weights), but with the shipped weights 99.9 % of it
  // lies within 24 px. 384 px tiles of test/fixtures/rainy-garden.jpg against one whole-image pass, largest difference
  // of the image along tile borders (d = 1): 320/144 0.000 levels, 224/96 0.004, 160/64 0.24, 128/48 1.78, 96/32 2.90,
  // 64/24 11.4 (CARD.md, "Tiles and seams"). 224/96 stays 250x under the tests' 1 level with fewer overlapping pixels
  // than streak-vapor's 320/144; at 12 MP (20 tiles against a 1280 px grid) 0.022 levels at most.
  overlap: 224,
  edgeMargin: 96,
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
