import type { DerainMethod } from "../../../contract/operations.ts";
import { tiledRestorationBy, type TiledRestorationModel } from "../restoration/tiled.ts";
import { heavyTwoBranch } from "./derain/heavy-two-branch.ts";
import { streakVapor } from "./derain/streak-vapor.ts";
import { definePipeline } from "./types.ts";

/**
 * Rain removal (models/derain/README.md, "Serving"): one tiled model entry per method, each in its own module under
 * derain/ (its graph's feeds and outputs, tiling from its receptive field, and how `dehaze` and `maps` map onto its
 * outputs). Adding a method is its module and one line here.
 */
export const DERAIN: Record<DerainMethod, TiledRestorationModel<"enhance.derain">> = {
  "streak-vapor": streakVapor,
  "heavy-two-branch": heavyTwoBranch,
};

export const derainPipeline = definePipeline(
  "enhance.derain",
  tiledRestorationBy("enhance.derain", (params) => DERAIN[params.method]),
);
