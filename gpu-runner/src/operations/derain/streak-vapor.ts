import { DERAIN_METHODS } from "../../../../contract/operations.ts";
import { invertScattering, liftVeil } from "../../restoration/scattering.ts";
import { thumbnailFeed, type TileResult, type TiledRestorationModel } from "../../restoration/tiled.ts";

/**
 * streak-vapor (models/derain_streak_vapor) inverts I = J T + (1 - T) A with T = T_s T_v and a floor of 0.1 on T,
 * as its graph does. Dehaze d keeps the streaks removed and lifts only the vapour: T_d = T_s (1 - d (1 - T_v)), so
 * d = 1 is the graph's `derained`. Maps: `transmission` is the T_d inverted, `rain` 1 - T_s.
 */
const lifted = (r: TileResult, d: number) => liftVeil(r.outputs.t_streak!, r.outputs.t_vapor!, d);
const dehazed = (r: TileResult, d: number) => invertScattering(r.input, lifted(r, d), r.outputs.atmospheric_light!, 0.1);

export const streakVapor: TiledRestorationModel<"enhance.derain"> = {
  model: DERAIN_METHODS["streak-vapor"],
  input: "image",
  output: "derained",
  tile: 1024,
  // SNet reaches 192 px (models/derain/README.md, "Serving"): with the retrained weights (step 600), whose SNet
  // removes streaks, 384 px test tiles on the graph's 1/8 grid (three stride-2 stages) are within 1 level of a
  // single pass with a 144 px margin; a 96 px one left 7.4 levels, 64 px 15.3.
  overlap: 320,
  edgeMargin: 144,
  align: 8,
  thumbnail: { size: 128, feeds: thumbnailFeed("thumb") },
  perImage: ["atmospheric_light"],
  rasters: ({ dehaze: d, maps }) => ({
    image: { channels: 3, from: d === 1 ? "derained" : (r) => dehazed(r, d) },
    ...(maps && {
      transmission: { channels: 1, from: d === 1 ? "transmission" : (r) => lifted(r, d) },
      rain: { channels: 1, from: (r) => r.outputs.t_streak!.map((s) => 1 - s) },
    }),
  }),
};
